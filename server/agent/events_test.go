package agent

import (
	"net/http"
	"testing"

	"github.com/mdctl/mdctl/server/events"
)

// Each request yields one agent event with what the agent resolved, under
// the request id the proxy sent.
func TestAgentPublishesEvents(t *testing.T) {
	h := newHarness(t, topology(t))
	bus := events.NewBus()
	h.agent.opts.Events = bus // before any request
	h.agent.m = newAgentMetrics(bus.Metrics())
	sub := bus.Subscribe(events.Filter{}, 10)
	defer sub.Close()

	withID := func(hdr map[string][]string, id string) map[string][]string {
		hdr["X-Request-ID"] = []string{id}
		return hdr
	}
	tests := []struct {
		name string
		hdr  map[string][]string
		want events.Event
	}{
		{"router guest", withID(router("rA", "10.90.1.5"), "req-1"),
			events.Event{RequestID: "req-1", Mode: events.ModeRouter, SourceIP: "10.90.1.5", InstanceID: instA, ProjectID: projA, Status: 200}},
		{"same guest again (cached)", withID(router("rA", "10.90.1.5"), "req-2"),
			events.Event{RequestID: "req-2", Mode: events.ModeRouter, SourceIP: "10.90.1.5", InstanceID: instA, ProjectID: projA, Status: 200}},
		{"dhcp guest unknown", withID(network("netB", "10.90.1.77"), "req-3"),
			events.Event{RequestID: "req-3", Mode: events.ModeDHCP, SourceIP: "10.90.1.77", Status: http.StatusNotFound}},
		{"no scope", map[string][]string{"X-Request-ID": {"req-4"}},
			events.Event{RequestID: "req-4", Status: http.StatusBadRequest}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := h.do(t, "GET", "/latest/meta-data/", tt.hdr, nil)
			if len(sub.C) != 1 {
				t.Fatalf("%d events, want 1", len(sub.C))
			}
			e := <-sub.C
			if e.Hop != events.HopAgent || e.RequestID != tt.want.RequestID || e.Mode != tt.want.Mode ||
				e.SourceIP != tt.want.SourceIP || e.InstanceID != tt.want.InstanceID || e.ProjectID != tt.want.ProjectID ||
				e.Status != tt.want.Status || e.Status != res.code || e.Bytes != int64(len(res.body)) ||
				e.Path != "/latest/meta-data/" || e.Method != "GET" {
				t.Errorf("event %+v, want %+v (answer %d, %d bytes)", e, tt.want, res.code, len(res.body))
			}
		})
	}
	m := bus.Metrics()
	if hits := m.Counter(events.CacheLookups, "cache", "agent", "result", events.ResultHit).Value(); hits != 1 {
		t.Errorf("agent cache hits = %d, want 1", hits)
	}
	if misses := m.Counter(events.CacheLookups, "cache", "agent", "result", events.ResultMiss).Value(); misses != 1 {
		t.Errorf("agent cache misses = %d, want 1", misses)
	}
	// The unknown DHCP guest is a lookup failure with no port.
	for reason, want := range map[string]uint64{events.ReasonNoPort: 1, events.ReasonSeveralPorts: 0} {
		if n := m.Counter(events.LookupFailures, "reason", reason).Value(); n != want {
			t.Errorf("lookup failures %s = %d, want %d", reason, n, want)
		}
	}
}
