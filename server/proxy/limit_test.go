package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/store"
)

// TestPerSourceConnectionCap: a guest holding many silent connections gets
// only metadata_proxy_conns_per_source of them; the rest are closed at
// once without taking a slot, so a second guest is still served while the
// first holds more connections than the listener's cap.
func TestPerSourceConnectionCap(t *testing.T) {
	db := openStore(t, map[string]string{"metadata_proxy_conns_per_source": "4"})
	agent := newFakeAgent(t)
	bus := events.NewBus()
	p := New(Options{AgentSocket: agent.sock, Live: store.NewLive(db, nil), Logger: quiet(), MaxConns: 8, Events: bus})
	id := Identity{RouterID: "rA"}
	addr := serve(t, p, id)

	const hog = 20 // more than the listener's cap of 8
	closed := 0
	for range hog {
		c := dialGuest(t, addr)
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); errors.Is(err, io.EOF) {
			closed++ // refused: closed at once, without an answer
		}
	}
	if closed != hog-4 {
		t.Errorf("%d of %d connections from one source closed at once, want %d (cap 4)", closed, hog, hog-4)
	}
	// Another guest (another loopback address) is served at once.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /latest/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("second guest while the first holds %d connections: %v %v", hog, resp, err)
	}
	refused := bus.Metrics().Counter(events.ConnsRefused, "", "listener", id.String()).Value()
	if refused != hog-4 {
		t.Errorf("refused-connection counter %d, want %d", refused, hog-4)
	}
}
