package proxy

import (
	"context"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// guestCheck is how long an in-process request runs before the proxy
// starts looking whether its guest hung up, and how often it looks again.
const guestCheck = 250 * time.Millisecond

// watchGuest returns ctx cancelled when the guest on c hangs up while the
// in-process agent still works on its request, so a guest that goes away
// cancels the whole chain (net/http's server did it by reading every
// connection in the background, which costs a goroutine hand-off and a
// read per request). Here the connection is only peeked, and only once a
// request has run for guestCheck: a quick request costs a timer. stop
// must be called when the request is done.
func watchGuest(parent context.Context, c net.Conn) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	rc := rawConn(c)
	if rc == nil {
		return ctx, cancel
	}
	w := &guestWatch{ctx: ctx, cancel: cancel, rc: rc}
	w.mu.Lock()
	w.t = time.AfterFunc(guestCheck, w.check)
	w.mu.Unlock()
	return ctx, func() {
		w.mu.Lock()
		w.t.Stop()
		w.mu.Unlock()
		cancel()
	}
}

type guestWatch struct {
	ctx    context.Context
	cancel context.CancelFunc
	rc     syscall.RawConn
	mu     sync.Mutex
	t      *time.Timer
}

func (w *guestWatch) check() {
	if w.ctx.Err() != nil {
		return
	}
	if hungUp(w.rc) {
		w.cancel()
		return
	}
	w.mu.Lock()
	w.t.Reset(guestCheck)
	w.mu.Unlock()
}

// rawConn is the socket under a guest connection, nil when there is none.
func rawConn(c net.Conn) syscall.RawConn {
	for {
		w, ok := c.(interface{ inner() net.Conn })
		if !ok {
			break
		}
		c = w.inner()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// hungUp peeks at the socket without waiting or consuming: end of stream
// or an error means the guest is gone; pending bytes (a pipelined request)
// or nothing yet mean it is still there.
func hungUp(rc syscall.RawConn) bool {
	gone := false
	err := rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		gone = (n == 0 && err == nil) || (err != nil && err != unix.EAGAIN && err != unix.EINTR)
		return true
	})
	return gone || err != nil
}
