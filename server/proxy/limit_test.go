package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
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
	refused := bus.Metrics().Counter(events.ConnsRefused, "listener", id.String()).Value()
	if refused != hog-4 {
		t.Errorf("refused-connection counter %d, want %d", refused, hog-4)
	}
}

// TestSlowlorisCut: hundreds of connections from one guest trickling a
// request a byte at a time: past the per-source cap they are closed at
// once, the rest get haproxy's 408 when the request timeout runs out and
// are closed, and another guest is answered at once all along.
func TestSlowlorisCut(t *testing.T) {
	agent := newFakeAgent(t)
	p := New(Options{AgentSocket: agent.sock, Logger: quiet(), RequestTimeout: time.Second})
	addr := serve(t, p, Identity{RouterID: "rA"})
	perSource := store.DefaultConfig().ProxyConnsPerSource

	const slow = 200
	type outcome struct {
		code   int  // 0: no answer
		closed bool // the proxy closed the connection
	}
	results := make(chan outcome, slow)
	stop := make(chan struct{})
	defer close(stop)
	for range slow {
		c := dialGuest(t, addr)
		go func() { // trickle a head that never ends
			head := "GET /latest/ HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 1000)
			for i := 0; i < len(head); i++ {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				if _, err := c.Write([]byte{head[i]}); err != nil {
					return
				}
			}
		}()
		go func() {
			c.SetReadDeadline(time.Now().Add(15 * time.Second))
			br := bufio.NewReader(c)
			o := outcome{}
			if resp, err := http.ReadResponse(br, nil); err == nil {
				o.code = resp.StatusCode
				io.Copy(io.Discard, resp.Body)
			}
			_, err := br.ReadByte()
			o.closed = err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
			results <- o
		}()
	}
	// Another guest, while all of them trickle.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /latest/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the other guest during the slowloris: %v %v", resp, err)
	}
	codes := map[int]int{}
	for range slow {
		o := <-results
		if !o.closed {
			t.Fatalf("a trickling connection was still open after 15 s (answer %d)", o.code)
		}
		codes[o.code]++
	}
	if codes[http.StatusRequestTimeout] != perSource || codes[0] != slow-perSource {
		t.Errorf("answers %v, want %d × 408 (the cap) and %d closed unanswered", codes, perSource, slow-perSource)
	}
}

// TestConnsPerSourceOption: without live settings the cap is the
// setting's default, Options.ConnsPerSource overrides it, negative lifts it.
func TestConnsPerSourceOption(t *testing.T) {
	def := store.DefaultConfig().ProxyConnsPerSource
	for _, tc := range []struct{ opt, want int }{{0, def}, {5, 5}, {-1, 0}} {
		p := New(Options{ConnsPerSource: tc.opt, Logger: quiet()})
		ll := p.limitListener(t.Context(), listen(t), Identity{RouterID: "rA"})
		if got := ll.perSource(); got != tc.want {
			t.Errorf("ConnsPerSource %d: cap %d, want %d", tc.opt, got, tc.want)
		}
		ll.Close()
	}
}
