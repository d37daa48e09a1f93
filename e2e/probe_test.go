package e2e

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/mdctl/mdctl/diag"
	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/events"
)

// TestTraceProbeIsNotGuestTraffic: trace's end-to-end probe, sent from the
// guest's own namespace, reaches every hop marked as trace's: its events
// carry probe, and /metrics counts it in mdctl_probe_requests_total, not
// in the guest requests (the probe's path class, openstack, is unchanged).
func TestTraceProbeIsNotGuestTraffic(t *testing.T) {
	w := testworld.New(t, testworld.RoutedTopo)
	addr, _ := w.StartServe(testworld.ServeOptions{})
	w.LabUp()
	waitServing(t, w.GuestNS("vm1"))
	o := diag.Options{Store: w.Store, DataDir: w.Dir, Dataplane: w.Dataplane, APIURLs: []string{"http://" + addr}}

	before := scrape(t, w.Dir)
	r := diag.Trace(context.Background(), o, "vm1")
	if r.Probe == nil || r.Probe.Status == 0 || len(r.Probe.Statuses) != len(events.Hops) {
		t.Fatalf("probe %+v: want an answer seen by every hop", r.Probe)
	}
	after := scrape(t, w.Dir)
	for _, hop := range events.Hops {
		b, _ := value(before, "mdctl_probe_requests_total", "hop", hop)
		a, _ := value(after, "mdctl_probe_requests_total", "hop", hop)
		if a-b != 1 {
			t.Errorf("probe requests at %s: %v → %v, want one more", hop, b, a)
		}
		code := []string{"hop", hop, "class", "openstack", "code", strconv.Itoa(r.Probe.Statuses[hop])}
		b, _ = value(before, "mdctl_requests_total", code...)
		a, _ = value(after, "mdctl_requests_total", code...)
		if a != b {
			t.Errorf("guest requests %v: %v → %v, the probe counted as guest traffic", code, b, a)
		}
	}
	c, err := admin.NewClient(filepath.Join(w.Dir, admin.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	recent, err := c.Recent(t.Context(), w.Instance("vm1").ID)
	if err != nil {
		t.Fatal(err)
	}
	marked := 0
	for _, e := range recent {
		if e.Path == r.Probe.Path && e.Probe {
			marked++
		} else if e.Probe {
			t.Errorf("guest request %s %s marked as a probe", e.Method, e.Path)
		}
	}
	if marked == 0 {
		t.Errorf("no event of the probe %s marked probe among %d recent events", r.Probe.Path, len(recent))
	}
}
