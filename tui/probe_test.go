package tui

import (
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/server/events"
)

// A row of trace's own probe says so; a guest's row does not.
func TestProbeRowMarked(t *testing.T) {
	for _, probe := range []bool{false, true} {
		e := events.Event{Hop: events.HopProxy, Method: "GET", Path: "/openstack/x", Status: 404, Probe: probe}
		r := &request{ID: "r", First: time.Now(), Hops: map[string]events.Event{events.HopProxy: e}}
		row := (&requestsPane{}).row(r)
		if got := strings.Contains(strings.Join(row, " "), "trace probe"); got != probe {
			t.Errorf("probe=%v: row %q marked %v", probe, row, got)
		}
	}
}
