package proxy

import (
	"net"
	"sync"
)

// limitListener caps accepted-but-open connections at n: past the cap,
// Accept waits for a slot and new connections wait in the kernel's
// backlog, so a guest holding connections cannot exhaust the process. It
// also knows its open connections, so a stop that cannot wait for them
// can close them.
func limitListener(ln net.Listener, n int) *limitedListener {
	return &limitedListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{}), open: make(map[*limitedConn]struct{})}
}

type limitedListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	mu   sync.Mutex
	open map[*limitedConn]struct{}
}

func (l *limitedListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	lc := &limitedConn{Conn: c, l: l}
	l.mu.Lock()
	l.open[lc] = struct{}{}
	l.mu.Unlock()
	return lc, nil
}

func (l *limitedListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

// closeConns closes every connection still open.
func (l *limitedListener) closeConns() {
	l.mu.Lock()
	open := make([]*limitedConn, 0, len(l.open))
	for c := range l.open {
		open = append(open, c)
	}
	l.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
}

type limitedConn struct {
	net.Conn
	once sync.Once
	l    *limitedListener
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.open, c)
		c.l.mu.Unlock()
		<-c.l.sem
	})
	return err
}
