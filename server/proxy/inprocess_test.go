package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/inprocess"
	"github.com/mdctl/mdctl/store"
)

// countingReader counts the store's generation reads: how often settings
// were looked at.
type countingReader struct {
	store.Reader
	gens atomic.Int32
}

func (r *countingReader) Generation(ctx context.Context) (uint64, error) {
	r.gens.Add(1)
	return r.Reader.Generation(ctx)
}

// TestInProcessAgent: through Options.AgentTransport the agent's handler
// gets the same scrubbed request the socket would carry, with the body,
// and the settings the proxy read (no second read of the store).
func TestInProcessAgent(t *testing.T) {
	reader := &countingReader{Reader: openStore(t, map[string]string{kEnabled: "true", kBurstMax: "1000", kBaseMax: "1000"})}
	live := store.NewLive(reader, nil)
	type seen struct {
		h          http.Header
		uri, body  string
		gensBefore int32
		gensAfter  int32
		gen        uint64
	}
	got := make(chan seen, 1)
	agent := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		before := reader.gens.Load()
		snap, err := live.Snapshot(r.Context())
		if err != nil {
			t.Error(err)
		}
		got <- seen{h: r.Header, uri: r.RequestURI, body: string(b), gensBefore: before, gensAfter: reader.gens.Load(), gen: snap.Generation}
		w.Header().Set("Connection", "close")
		w.Header().Set("X-Agent", "yes")
		fmt.Fprint(w, "agent answer")
	})
	p := New(Options{AgentTransport: inprocess.Transport{Handler: agent}, Live: live, Logger: quiet()})
	addr := serve(t, p, Identity{RouterID: "rA"})
	head := "POST /openstack/latest/password?x=1 HTTP/1.1\r\nHost: 169.254.169.254\r\nContent-Length: 6\r\n" +
		strings.Join(forged, "\r\n") + "\r\n\r\nsecret"
	resp, body, _ := exchange(t, addr, "POST", head)
	if resp == nil || resp.StatusCode != 200 || body != "agent answer" || resp.Header.Get("X-Agent") != "yes" || resp.Close {
		t.Fatalf("got %v %q", resp, body)
	}
	if resp.Header.Get("Date") == "" {
		t.Error("no Date on an in-process answer (RFC 9110 §6.6.1)")
	}
	s := <-got
	if s.uri != "/openstack/latest/password?x=1" || s.body != "secret" {
		t.Errorf("agent got %q with body %q", s.uri, s.body)
	}
	if s.gensAfter != s.gensBefore {
		t.Error("the agent re-read the settings the proxy had read")
	}
	rid := s.h.Get("X-Request-Id")
	if !strings.HasPrefix(rid, "req-") || rid == "req-forged" {
		t.Errorf("agent got X-Request-Id %q", rid)
	}
	checkIdentity(t, s.h, newListenerID(Identity{RouterID: "rA"}), "127.0.0.1", rid, head)
}

// TestInProcessGuestHangUp: a guest that goes away while the in-process
// agent works cancels the agent's request.
func TestInProcessGuestHangUp(t *testing.T) {
	started, cancelled := make(chan struct{}), make(chan struct{})
	agent := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(20 * time.Second):
		}
	})
	addr := serve(t, New(Options{AgentTransport: inprocess.Transport{Handler: agent}, Logger: quiet()}), Identity{RouterID: "rA"})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /latest/ HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	c.Close()
	select {
	case <-cancelled:
	case <-time.After(15 * time.Second):
		t.Fatal("the agent's request was not cancelled when its guest went away")
	}
}

// TestInProcessPanic: a panicking agent handler costs its guest a 502,
// not the process; the next request is served.
func TestInProcessPanic(t *testing.T) {
	var once sync.Once
	agent := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { panic("agent bug") })
		fmt.Fprint(w, "fine")
	})
	addr := serve(t, New(Options{AgentTransport: inprocess.Transport{Handler: agent}, Logger: quiet()}), Identity{RouterID: "rA"})
	if code, body := get(t, addr, "/latest/"); code != 502 || body != haproxyPages[502] {
		t.Fatalf("panic: got %d %q", code, body)
	}
	if code, body := get(t, addr, "/latest/"); code != 200 || body != "fine" {
		t.Fatalf("after the panic: got %d %q", code, body)
	}
}
