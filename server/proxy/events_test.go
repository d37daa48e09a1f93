package proxy

import (
	"net/http/httptest"
	"testing"

	"github.com/mdctl/mdctl/server/events"
)

// Each request yields one proxy event carrying the id the agent was sent.
func TestProxyPublishesEvent(t *testing.T) {
	a := newFakeAgent(t)
	bus := events.NewBus()
	sub := bus.Subscribe(events.Filter{}, 10)
	defer sub.Close()
	p := New(Options{AgentSocket: a.sock, Events: bus})

	tests := []struct {
		id   Identity
		mode string
	}{
		{Identity{NetworkID: "net-1", Namespace: "qdhcp-net-1"}, events.ModeDHCP},
		{Identity{RouterID: "r-1", Namespace: "qrouter-r-1"}, events.ModeRouter},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		p.Handler(tt.id).ServeHTTP(rec, httptest.NewRequest("GET", "/openstack/latest", nil))
		if len(sub.C) != 1 {
			t.Fatalf("%v: %d events, want 1", tt.id, len(sub.C))
		}
		e := <-sub.C
		want := a.last(t).Get("X-Request-ID")
		if e.Hop != events.HopProxy || e.Mode != tt.mode || e.Namespace != tt.id.Namespace || e.RequestID != want || e.SourceIP != "192.0.2.1" ||
			e.Status != 200 || e.Bytes != int64(rec.Body.Len()) || e.Path != "/openstack/latest" || e.Method != "GET" {
			t.Errorf("%v: event %+v (agent got request id %q, body %d bytes)", tt.id, e, want, rec.Body.Len())
		}
	}
}
