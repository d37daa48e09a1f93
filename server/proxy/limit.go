package proxy

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mdctl/mdctl/server/events"
)

// limitListener wraps one listener of id with the listener's cap and the
// per-source cap in force (metadata_proxy_conns_per_source, read per
// connection so a change applies at once), logging refusals as 429s are.
func (p *Proxy) limitListener(ctx context.Context, ln net.Listener, id Identity) *limitedListener {
	log := newRefusalKind(p.log, p.opts.Events, "connection closed: source at its connection cap", events.ConnsRefused, id, func() time.Time { return p.now() })
	perSource := func() int {
		if snap := p.settings(ctx); snap != nil {
			return snap.Config.ProxyConnsPerSource
		}
		if n := p.opts.ConnsPerSource; n != 0 {
			return max(n, 0)
		}
		return p.defaults.ProxyConnsPerSource
	}
	return limitListener(ln, p.opts.MaxConns, perSource, func(src netip.Addr) { log.add(src, "cap", perSource()) })
}

// limitListener caps accepted-but-open connections at n: past the cap,
// Accept waits for a slot and new connections wait in the kernel's
// backlog, so a guest holding connections cannot exhaust the process. It
// also knows its open connections, so a stop that cannot wait for them
// can close them.
//
// perSource caps one source address's open connections well below n
// (haproxy's `tcp-request connection reject if { src_conn_cur gt N }`):
// past it a new connection is closed at once, without an answer and
// without taking a slot, so one guest holding hundreds of slow
// connections cannot keep its router's other guests waiting in the
// backlog. perSource returns the cap in force (0: none); refused, when
// set, hears of each connection closed so.
func limitListener(ln net.Listener, n int, perSource func() int, refused func(netip.Addr)) *limitedListener {
	return &limitedListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{}),
		open: make(map[*limitedConn]struct{}), perSource: perSource, refused: refused, bySource: make(map[netip.Addr]int)}
}

type limitedListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	perSource func() int
	refused   func(netip.Addr)

	mu       sync.Mutex
	open     map[*limitedConn]struct{}
	bySource map[netip.Addr]int // open connections per source; no zero entries
}

func (l *limitedListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.sem
			return nil, err
		}
		if lc := l.admit(c); lc != nil {
			return lc, nil
		}
	}
}

// admit registers c, or closes it when its source is at its cap.
func (l *limitedListener) admit(c net.Conn) *limitedConn {
	src, _ := remoteIP(c.RemoteAddr()) // the zero Addr for a non-IP peer: one bucket
	capN := 0
	if l.perSource != nil {
		capN = l.perSource()
	}
	l.mu.Lock()
	if capN > 0 && l.bySource[src] >= capN {
		l.mu.Unlock()
		c.Close()
		if l.refused != nil {
			l.refused(src)
		}
		return nil
	}
	lc := &limitedConn{Conn: c, l: l, src: src}
	l.open[lc] = struct{}{}
	l.bySource[src]++
	l.mu.Unlock()
	return lc
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
	src  netip.Addr
}

func (c *limitedConn) inner() net.Conn { return c.Conn }

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.open, c)
		if c.l.bySource[c.src]--; c.l.bySource[c.src] <= 0 {
			delete(c.l.bySource, c.src)
		}
		c.l.mu.Unlock()
		<-c.l.sem
	})
	return err
}
