package proxy

import (
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mdctl/mdctl/store"
)

// ttlListener records each accepted connection's IP TTL as it closes.
type ttlListener struct {
	net.Listener
	mu   sync.Mutex
	ttls []int
}

func (l *ttlListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &ttlConn{Conn: c, l: l}, nil
}

func (l *ttlListener) last() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ttls) == 0 {
		return -1
	}
	return l.ttls[len(l.ttls)-1]
}

type ttlConn struct {
	net.Conn
	l    *ttlListener
	once sync.Once
}

func (c *ttlConn) inner() net.Conn { return c.Conn }

func (c *ttlConn) Close() error {
	c.once.Do(func() {
		ttl := ipTTL(c.Conn)
		c.l.mu.Lock()
		c.l.ttls = append(c.l.ttls, ttl)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// TestTokenPut: a token PUT with X-Forwarded-For in any spelling is
// refused with 403 before the agent; a token's answer leaves with the hop
// limit in force and ends its connection; other answers keep the default
// TTL.
func TestTokenPut(t *testing.T) {
	sock := rawAgent(t, func(r *http.Request) string {
		return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Aws-Ec2-Metadata-Token-Ttl-Seconds: 60\r\n\r\ntoken"
	})
	db := openStore(t, map[string]string{"metadata_token_hop_limit": "3"})
	kl := &ttlListener{Listener: listen(t)}
	addr := serveOn(t, New(Options{AgentSocket: sock, Live: store.NewLive(db, nil), Logger: quiet()}), Identity{RouterID: "rA"}, kl)

	for _, xff := range []string{"X-Forwarded-For: 10.0.0.9", "x-forwarded-for: 10.0.0.9", "X_Forwarded_For: 10.0.0.9"} {
		resp, body, _ := exchange(t, addr, "PUT", "PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\n"+xff+"\r\n\r\n")
		if resp == nil || resp.StatusCode != 403 || body != haproxyPages[403] {
			t.Errorf("%s: got %v %q, want haproxy's 403", xff, resp, body)
		}
	}
	resp, body, closed := exchange(t, addr, "PUT", "PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\n\r\n")
	if resp == nil || resp.StatusCode != 200 || body != "token" || !closed {
		t.Fatalf("token PUT: %v %q closed=%v, want the token and a closed connection", resp, body, closed)
	}
	if ttl := waitTTL(kl, 1); ttl != 3 {
		t.Errorf("token answer left with TTL %d, want metadata_token_hop_limit 3", ttl)
	}
	exchange(t, addr, "GET", "GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if ttl := waitTTL(kl, 2); ttl == 3 || ttl < 0 {
		t.Errorf("a metadata answer left with the token's TTL %d", ttl)
	}
}

// waitTTL waits (bounded) until n connections after the 403s closed and
// returns the last one's TTL.
func waitTTL(l *ttlListener, n int) int {
	for range 500 {
		l.mu.Lock()
		k := len(l.ttls)
		l.mu.Unlock()
		if k >= 3+n { // the three refused PUTs first
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return l.last()
}

// ipTTL is the socket's IP TTL, -1 when it cannot be read.
func ipTTL(c net.Conn) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	ttl := -1
	rc.Control(func(fd uintptr) {
		if v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL); err == nil {
			ttl = v
		}
	})
	return ttl
}
