package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingAgent is an agent on a unix socket that counts the connections
// it accepted and echoes what it got: method, URI, body, Content-Length.
type countingAgent struct {
	sock  string
	srv   *httptest.Server
	mu    sync.Mutex
	conns int
}

func newCountingAgent(t *testing.T, keepAlive bool) *countingAgent {
	t.Helper()
	a := &countingAgent{sock: filepath.Join(t.TempDir(), "agent.sock")}
	ln, err := net.Listen("unix", a.sock)
	if err != nil {
		t.Fatal(err)
	}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Seen-TE", r.Header.Get("Transfer-Encoding")+"|"+strings.Join(r.TransferEncoding, ","))
		fmt.Fprintf(w, "%s %s len=%d body=%q conn=%q", r.Method, r.URL.RequestURI(), r.ContentLength, b, r.Header.Get("X-Hop"))
	}))
	a.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			a.mu.Lock()
			a.conns++
			a.mu.Unlock()
		}
	}
	a.srv.Config.SetKeepAlivesEnabled(keepAlive)
	a.srv.Listener.Close()
	a.srv.Listener = ln
	a.srv.Start()
	t.Cleanup(a.srv.Close)
	return a
}

func (a *countingAgent) connections() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.conns
}

// TestAgentConnectionsReused: sequential requests ride one keep-alive
// connection to the agent instead of dialing per request.
func TestAgentConnectionsReused(t *testing.T) {
	agent := newCountingAgent(t, true)
	addr := serve(t, New(Options{AgentSocket: agent.sock, Logger: quiet()}), Identity{RouterID: "rA"})
	for i := range 20 {
		code, body := get(t, addr, fmt.Sprintf("/latest/meta-data/?n=%d", i))
		if want := fmt.Sprintf(`GET /latest/meta-data/?n=%d len=0 body="" conn=""`, i); code != 200 || body != want {
			t.Fatalf("request %d: got %d %q, want %q", i, code, body, want)
		}
	}
	if n := agent.connections(); n != 1 {
		t.Fatalf("agent saw %d connections for 20 sequential requests, want 1", n)
	}
}

// TestAgentClosedIdleConnection: when the agent closes every connection
// after answering, each request still succeeds (the stale pooled
// connection is retried on a fresh one, never answered with a 502).
func TestAgentClosedIdleConnection(t *testing.T) {
	agent := newCountingAgent(t, true)
	p := New(Options{AgentSocket: agent.sock, Logger: quiet()})
	addr := serve(t, p, Identity{RouterID: "rA"})
	for i := range 5 {
		if code, body := get(t, addr, "/latest/"); code != 200 {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
		agent.srv.CloseClientConnections() // the agent drops the idle connection
		time.Sleep(10 * time.Millisecond)  // let the close reach the socket (not a timing assertion)
	}
	if n := agent.connections(); n != 5 {
		t.Fatalf("agent saw %d connections, want one per request (5)", n)
	}
}

// TestBodiesForwardedExactly: a password POST reaches the agent byte for
// byte, with a length or chunked, and hop-by-hop headers (also those the
// guest's Connection header names) do not cross.
func TestBodiesForwardedExactly(t *testing.T) {
	agent := newCountingAgent(t, true)
	addr := serve(t, New(Options{AgentSocket: agent.sock, Logger: quiet()}), Identity{RouterID: "rA"})
	tests := []struct {
		name, head, want string
	}{
		{"length", "POST /openstack/latest/password HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n\r\nsecr\x00ts",
			`POST /openstack/latest/password len=7 body="secr\x00ts" conn=""`},
		{"chunked", "POST /openstack/latest/password HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
			`POST /openstack/latest/password len=-1 body="abcde" conn=""`},
		{"empty post", "POST /openstack/latest/password HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
			`POST /openstack/latest/password len=0 body="" conn=""`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := rawGet(t, addr, tc.head)
			if code != 200 || body != tc.want {
				t.Fatalf("got %d %q, want %q", code, body, tc.want)
			}
		})
	}
}

// TestAnswerHopHeadersDropped: the agent's hop-by-hop headers stay on the
// agent's hop; the rest of its head and its body reach the guest as sent.
func TestAnswerHopHeadersDropped(t *testing.T) {
	agent := newCountingAgent(t, true)
	addr := serve(t, New(Options{AgentSocket: agent.sock, Logger: quiet()}), Identity{RouterID: "rA"})
	c := dialGuest(t, addr)
	io.WriteString(c, "GET /latest/ HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("agent's Keep-Alive reached the guest: %q", resp.Header.Get("Keep-Alive"))
	}
	if resp.Header.Get("X-Seen-Te") != "|" {
		t.Errorf("agent saw transfer coding %q on a GET", resp.Header.Get("X-Seen-Te"))
	}
	if want := `GET /latest/ len=0 body="" conn=""`; string(b) != want || resp.ContentLength != int64(len(want)) {
		t.Errorf("body %q (length %d), want %q", b, resp.ContentLength, want)
	}
}

func TestRequestIDsUniqueAndShaped(t *testing.T) {
	g := newRequestIDs()
	seen := map[string]bool{}
	for range 10000 {
		id := g.next()
		if len(id) != len("req-")+36 || !strings.HasPrefix(id, "req-") || id[4+14] != '4' || !strings.ContainsRune("89ab", rune(id[4+19])) {
			t.Fatalf("id %q is not req-<uuid v4>", id)
		}
		if seen[id] {
			t.Fatalf("id %q repeated", id)
		}
		seen[id] = true
	}
	a, b := newRequestIDs(), newRequestIDs()
	if a.next() == b.next() {
		t.Fatal("two proxies made the same first id")
	}
}
