package proxy

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// opener opens one loopback listener per call and remembers its address.
type opener struct {
	t     *testing.T
	calls atomic.Int32
	addr  atomic.Value // string
	fail  bool
}

func (o *opener) open() ([]net.Listener, error) {
	o.calls.Add(1)
	if o.fail {
		return nil, errors.New("namespace gone")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	o.addr.Store(ln.Addr().String())
	return []net.Listener{ln}, nil
}

func (o *opener) address() string { s, _ := o.addr.Load().(string); return s }

func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

func TestManagerSync(t *testing.T) {
	agent := newFakeAgent(t)
	m := NewManager(New(Options{AgentSocket: agent.sock, Logger: quiet()}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()

	r1, n1 := &opener{t: t}, &opener{t: t}
	want := map[string]Listen{
		"router:r1":  {ID: Identity{RouterID: "r1"}, Open: r1.open},
		"network:n1": {ID: Identity{NetworkID: "n1"}, Open: n1.open},
	}
	if err := m.Sync(want); err != nil {
		t.Fatal(err)
	}
	if got := m.Running(); !slices.Equal(got, []string{"network:n1", "router:r1"}) {
		t.Fatalf("running %v", got)
	}
	if code, _ := get(t, r1.address(), "/"); code != 200 {
		t.Fatalf("router proxy answered %d", code)
	}
	if agent.last(t).Get("X-Neutron-Router-ID") != "r1" {
		t.Fatal("router proxy sent the wrong id")
	}
	if code, _ := get(t, n1.address(), "/"); code != 200 || agent.last(t).Get("X-Neutron-Network-ID") != "n1" {
		t.Fatalf("network proxy answered %d", code)
	}

	// The same set again: nothing reopens.
	if err := m.Sync(want); err != nil {
		t.Fatal(err)
	}
	if r1.calls.Load() != 1 || n1.calls.Load() != 1 {
		t.Fatalf("idempotent Sync reopened: %d, %d", r1.calls.Load(), n1.calls.Load())
	}

	// Remove the network: its listener closes, the router's stays.
	oldNet := n1.address()
	delete(want, "network:n1")
	if err := m.Sync(want); err != nil {
		t.Fatal(err)
	}
	if !refused(oldNet) {
		t.Fatal("removed proxy still accepts connections")
	}
	if code, _ := get(t, r1.address(), "/"); code != 200 {
		t.Fatal("remaining proxy stopped")
	}

	// A changed identity under the same key restarts it.
	want["router:r1"] = Listen{ID: Identity{RouterID: "r1b"}, Open: r1.open}
	if err := m.Sync(want); err != nil {
		t.Fatal(err)
	}
	if r1.calls.Load() != 2 {
		t.Fatalf("changed identity opened %d times, want 2", r1.calls.Load())
	}
	get(t, r1.address(), "/")
	if agent.last(t).Get("X-Neutron-Router-ID") != "r1b" {
		t.Fatal("restarted proxy kept the old id")
	}

	// Open failures are reported and retried by the next Sync.
	bad := &opener{t: t, fail: true}
	want["router:bad"] = Listen{ID: Identity{RouterID: "bad"}, Open: bad.open}
	if err := m.Sync(want); err == nil {
		t.Fatal("Sync hid an open failure")
	}
	m.Sync(want)
	if bad.calls.Load() != 2 {
		t.Fatalf("failed open tried %d times, want 2", bad.calls.Load())
	}
	if got := m.Running(); !slices.Equal(got, []string{"router:r1"}) {
		t.Fatalf("running %v", got)
	}

	// Cancelling Run stops everything.
	last := r1.address()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil
	if !refused(last) {
		t.Fatal("proxy still accepts after Run ended")
	}
	if err := m.Sync(want); err == nil {
		t.Fatal("Sync after Run ended started proxies")
	}
}

func TestManagerRejectsBadIdentity(t *testing.T) {
	m := NewManager(New(Options{AgentSocket: "/nonexistent", Logger: quiet()}))
	o := &opener{t: t}
	err := m.Sync(map[string]Listen{"x": {ID: Identity{RouterID: "r", NetworkID: "n"}, Open: o.open}})
	if err == nil || o.calls.Load() != 0 {
		t.Fatalf("Sync with a two-sided identity: %v, opened %d", err, o.calls.Load())
	}
}
