package proxy

import (
	"testing"
	"time"

	"github.com/mdctl/mdctl/server/events"
)

// Each request yields one proxy event carrying the id the agent was sent.
func TestProxyPublishesEvent(t *testing.T) {
	a := newFakeAgent(t)
	bus := events.NewBus()
	sub := bus.Subscribe(events.Filter{}, 10)
	defer sub.Close()
	p := New(Options{AgentSocket: a.sock, Events: bus, Logger: quiet()})

	tests := []struct {
		id   Identity
		mode string
	}{
		{Identity{NetworkID: "net-1", Namespace: "qdhcp-net-1"}, events.ModeDHCP},
		{Identity{RouterID: "r-1", Namespace: "qrouter-r-1"}, events.ModeRouter},
	}
	for _, tt := range tests {
		addr := serve(t, p, tt.id)
		code, body := get(t, addr, "/openstack/latest")
		if code != 200 {
			t.Fatalf("%v: status %d", tt.id, code)
		}
		var e events.Event
		select {
		case e = <-sub.C: // published before the answer is written
		case <-time.After(10 * time.Second):
			t.Fatalf("%v: no event", tt.id)
		}
		if len(sub.C) != 0 {
			t.Fatalf("%v: %d more events, want 1 in all", tt.id, len(sub.C))
		}
		want := a.last(t).Get("X-Request-ID")
		if e.Hop != events.HopProxy || e.Mode != tt.mode || e.Namespace != tt.id.Namespace || e.RequestID != want || e.SourceIP != "127.0.0.1" ||
			e.Status != 200 || e.Bytes != int64(len(body)) || e.Path != "/openstack/latest" || e.Method != "GET" {
			t.Errorf("%v: event %+v (agent got request id %q, body %d bytes)", tt.id, e, want, len(body))
		}
	}
}
