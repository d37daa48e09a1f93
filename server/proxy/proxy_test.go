package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAgent is an HTTP server on a unix socket recording what reached it.
type fakeAgent struct {
	sock    string
	srv     *httptest.Server
	mu      sync.Mutex
	headers []http.Header
	hold    chan struct{} // when set, requests wait on it
}

func newFakeAgent(t *testing.T) *fakeAgent {
	t.Helper()
	a := &fakeAgent{sock: filepath.Join(t.TempDir(), "metadata_proxy")}
	ln, err := net.Listen("unix", a.sock)
	if err != nil {
		t.Fatal(err)
	}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.headers = append(a.headers, r.Header.Clone())
		hold := a.hold
		a.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
			}
		}
		w.Header().Set("X-Request-ID", r.Header.Get("X-Request-ID"))
		fmt.Fprintf(w, "agent ok %s", r.URL.RequestURI())
	}))
	a.srv.Listener.Close()
	a.srv.Listener = ln
	a.srv.Start()
	t.Cleanup(a.srv.Close)
	return a
}

func (a *fakeAgent) last(t *testing.T) http.Header {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.headers) == 0 {
		t.Fatal("no request reached the agent")
	}
	return a.headers[len(a.headers)-1]
}

func (a *fakeAgent) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.headers)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// serve runs p.Serve for id on a fresh loopback listener and returns its
// address; it stops with the test.
func serve(t *testing.T, p *Proxy, id Identity) string {
	t.Helper()
	return serveOn(t, p, id, listen(t))
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func serveOn(t *testing.T, p *Proxy, id Identity, ln net.Listener) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln, id) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// rawGet sends a request written byte for byte (so header case and
// duplicates are the test's) and returns the status and body.
func rawGet(t *testing.T, addr, head string) (int, string) {
	t.Helper()
	resp, body, _ := exchange(t, addr, "GET", head)
	if resp == nil {
		t.Fatal("connection closed without an answer")
	}
	return resp.StatusCode, body
}

// dialGuest connects to addr as a guest; the connection closes with the
// test and gives up after 30 s.
func dialGuest(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	return rawGet(t, addr, "GET "+path+" HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n")
}

// forged is every identity header a guest might try, in several spellings.
var forged = []string{
	"X-Forwarded-For: 10.90.1.99",
	"x-forwarded-for: 10.90.1.98",
	"X-FORWARDED-FOR: 10.90.1.97",
	"X_Forwarded_For: 10.90.1.96",
	"X-Instance-ID: 33333333-3333-4333-8333-333333333333",
	"x-instance-id-signature: deadbeef",
	"X-Tenant-ID: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
	"X-Neutron-Router-ID: rEvil",
	"X-Neutron-Router-ID: rEvil2",
	"x-neutron-network-id: netEvil",
	"X_Neutron_Network_ID: netEvil2",
	"X-Neutron-Anything: x",
	"X-Metadata-Provider: lb-evil",
	"X-Metadata-Provider-Signature: abc",
	"X-OVN-Network-ID: ovnEvil",
	"X-Request-ID: req-forged",
	"Forwarded: for=10.90.1.95",
	"X-Real-IP: 10.90.1.94",
	"Connection: keep-alive, X-Neutron-Router-ID",
}

func TestSpoofedHeadersRemoved(t *testing.T) {
	for _, id := range []Identity{{RouterID: "rA"}, {NetworkID: "netA1"}} {
		t.Run(id.String(), func(t *testing.T) {
			agent := newFakeAgent(t)
			addr := serve(t, New(Options{AgentSocket: agent.sock, Logger: quiet()}), id)
			head := "GET /latest/meta-data/?x=1 HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: cloud-init/24.1\r\nAccept: */*\r\n" +
				strings.Join(forged, "\r\n") + "\r\n\r\n"
			code, body := rawGet(t, addr, head)
			if code != 200 || body != "agent ok /latest/meta-data/?x=1" {
				t.Fatalf("got %d %q", code, body)
			}
			h := agent.last(t)
			if got := h.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "127.0.0.1" {
				t.Errorf("X-Forwarded-For = %q, want the peer 127.0.0.1", got)
			}
			wantRouter, wantNet := []string(nil), []string(nil)
			if id.RouterID != "" {
				wantRouter = []string{id.RouterID}
			} else {
				wantNet = []string{id.NetworkID}
			}
			if got := h.Values("X-Neutron-Router-ID"); fmt.Sprint(got) != fmt.Sprint(wantRouter) {
				t.Errorf("X-Neutron-Router-ID = %q, want %q", got, wantRouter)
			}
			if got := h.Values("X-Neutron-Network-ID"); fmt.Sprint(got) != fmt.Sprint(wantNet) {
				t.Errorf("X-Neutron-Network-ID = %q, want %q", got, wantNet)
			}
			if rid := h.Values("X-Request-ID"); len(rid) != 1 || rid[0] == "req-forged" || !strings.HasPrefix(rid[0], "req-") {
				t.Errorf("X-Request-ID = %q, want one fresh req- id", rid)
			}
			for k := range h {
				switch http.CanonicalHeaderKey(k) {
				case "X-Forwarded-For", "X-Neutron-Router-Id", "X-Neutron-Network-Id", "X-Request-Id":
					continue
				}
				if isForbidden(k) {
					t.Errorf("forged header %s: %q reached the agent", k, h[k])
				}
			}
			if h.Get("User-Agent") != "cloud-init/24.1" || h.Get("Accept") != "*/*" {
				t.Errorf("ordinary headers lost: %v", h)
			}
		})
	}
}

// isForbidden is the test's own statement of the identity headers, kept
// apart from the code's list on purpose.
func isForbidden(name string) bool {
	n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
	for _, exact := range []string{"x-forwarded-for", "x-instance-id", "x-instance-id-signature", "x-tenant-id", "x-request-id"} {
		if n == exact {
			return true
		}
	}
	for _, p := range []string{"x-neutron-", "x-metadata-provider", "x-ovn-"} {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

func TestAgentDown(t *testing.T) {
	dir := t.TempDir()
	refused := filepath.Join(dir, "refused")
	ln, err := net.Listen("unix", refused)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the socket file stays, nobody accepts
	for name, sock := range map[string]string{"missing socket": filepath.Join(dir, "none"), "refused": refused} {
		t.Run(name, func(t *testing.T) {
			addr := serve(t, New(Options{AgentSocket: sock, Logger: quiet()}), Identity{RouterID: "rA"})
			code, body := get(t, addr, "/latest/meta-data/")
			if code != http.StatusServiceUnavailable || !strings.Contains(body, "503 Service Unavailable") {
				t.Fatalf("got %d %q", code, body)
			}
		})
	}
}

func TestAgentTimeoutIs504(t *testing.T) {
	agent := newFakeAgent(t)
	agent.hold = make(chan struct{})
	t.Cleanup(func() { close(agent.hold) })
	p := New(Options{AgentSocket: agent.sock, Logger: quiet()})
	p.transport.ResponseHeaderTimeout = 50 * time.Millisecond // haproxy's 32 s, shortened
	addr := serve(t, p, Identity{RouterID: "rA"})
	code, body := get(t, addr, "/latest/meta-data/")
	if code != http.StatusGatewayTimeout || !strings.Contains(body, "504 Gateway Time-out") {
		t.Fatalf("got %d %q", code, body)
	}
}

func TestServeRejectsBadIdentity(t *testing.T) {
	p := New(Options{AgentSocket: "/nonexistent", Logger: quiet()})
	for _, id := range []Identity{{}, {RouterID: "r", NetworkID: "n"}} {
		if err := p.Serve(context.Background(), listen(t), id); err == nil {
			t.Errorf("Serve accepted identity %+v", id)
		}
	}
}

// notifyListener reports each accepted connection.
type notifyListener struct {
	net.Listener
	accepted chan struct{}
}

func (l *notifyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted <- struct{}{}
	}
	return c, err
}

func TestConnectionCap(t *testing.T) {
	agent := newFakeAgent(t)
	p := New(Options{AgentSocket: agent.sock, Logger: quiet(), MaxConns: 2})
	nl := &notifyListener{Listener: listen(t), accepted: make(chan struct{}, 10)}
	addr := serveOn(t, p, Identity{RouterID: "rA"}, nl)

	// Two silent guests take both slots.
	var hogs []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		hogs = append(hogs, c)
		<-nl.accepted
	}
	// A third guest's request must wait for a slot.
	type res struct {
		code int
		body string
	}
	got := make(chan res, 1)
	go func() {
		code, body := get(t, addr, "/latest/")
		got <- res{code, body}
	}()
	select {
	case <-nl.accepted:
		t.Fatal("a third connection was accepted past the cap of 2")
	case r := <-got:
		t.Fatalf("a third request was served past the cap: %d %q", r.code, r.body)
	case <-time.After(300 * time.Millisecond):
	}
	hogs[0].Close() // a slot frees
	r := <-got
	if r.code != 200 {
		t.Fatalf("after a slot freed: %d %q", r.code, r.body)
	}
}

func TestPeerIP(t *testing.T) {
	tests := map[string]string{
		"10.90.1.5:1234":          "10.90.1.5",
		"[::ffff:10.90.1.5]:1234": "10.90.1.5",
		"[fe80::1%qr-abc]:80":     "fe80::1",
		"[fd00:90::20]:4444":      "fd00:90::20",
	}
	for in, want := range tests {
		ip, err := peerIP(in)
		if err != nil || ip.String() != want {
			t.Errorf("peerIP(%q) = %v, %v; want %s", in, ip, err, want)
		}
	}
	if _, err := peerIP("@"); err == nil {
		t.Error("peerIP accepted a unix address")
	}
}

// TestServeReportsDeadListener: a listener closed under Serve (its
// namespace went away) is an error, so the manager restarts the proxy.
func TestServeReportsDeadListener(t *testing.T) {
	ln := listen(t)
	done := make(chan error, 1)
	go func() {
		done <- New(Options{AgentSocket: "/nonexistent", Logger: quiet()}).Serve(context.Background(), ln, Identity{RouterID: "rA"})
	}()
	if code, _ := get(t, ln.Addr().String(), "/"); code != http.StatusServiceUnavailable {
		t.Fatalf("before the close: %d", code)
	}
	ln.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Serve returned nil for a listener closed under it")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its listener closed")
	}
}

// TestServeStopsWithRequestInFlight: ending Serve's context stops it
// (nil) within its grace even while a request waits on the agent; the
// listener and the waiting guest's connection are closed.
func TestServeStopsWithRequestInFlight(t *testing.T) {
	agent := newFakeAgent(t)
	agent.hold = make(chan struct{})
	t.Cleanup(func() { close(agent.hold) })
	ln := listen(t)
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- New(Options{AgentSocket: agent.sock, Logger: quiet()}).Serve(ctx, ln, Identity{RouterID: "rA"})
	}()
	c := dialGuest(t, addr)
	io.WriteString(c, "GET /latest/ HTTP/1.1\r\nHost: x\r\n\r\n")
	for i := 0; agent.count() == 0; i++ {
		if i == 1000 {
			t.Fatal("the request never reached the agent")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("the waiting guest's connection is still open")
	}
	if !refused(addr) {
		t.Error("the listener still accepts")
	}
}
