package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mdctl/mdctl/diag"
	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/server/metadata"
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
	recent := recentEvents(t, w, "vm1")
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

// recentEvents reads instance's last requests from w's serve (/recent).
func recentEvents(t *testing.T, w *testworld.World, instance string) []events.Event {
	t.Helper()
	c, err := admin.NewClient(filepath.Join(w.Dir, admin.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	recent, err := c.Recent(t.Context(), w.Instance(instance).ID)
	if err != nil {
		t.Fatal(err)
	}
	return recent
}

// TestTraceTokenProbeIsNotGuestTraffic: with session tokens required, the
// token PUT of trace's probe (to the path every guest PUTs) is marked as
// trace's by its query: at the proxy /metrics counts it among the probe's
// requests, not the guests' ec2 ones, and the agent's events mark it and
// no other token PUT.
func TestTraceTokenProbeIsNotGuestTraffic(t *testing.T) {
	w := testworld.New(t, testworld.RoutedTopo)
	w.Set("metadata_tokens", "required")
	addr, _ := w.StartServe(testworld.ServeOptions{})
	w.LabUp()
	o := diag.Options{Store: w.Store, DataDir: w.Dir, Dataplane: w.Dataplane, APIURLs: []string{"http://" + addr}}
	testworld.WaitFor(t, 10*time.Second, "a green trace", func() error {
		if r := diag.Trace(context.Background(), o, "vm1"); !r.OK {
			return fmt.Errorf("failed hop %q", r.FailedHop)
		}
		return nil
	})

	before := scrape(t, w.Dir)
	r := diag.Trace(context.Background(), o, "vm1")
	if r.Probe == nil || r.Probe.Error != "" || r.Probe.Status == 0 || r.Probe.Status == http.StatusUnauthorized {
		t.Fatalf("probe %+v: want it answered (its path is not found) with its token", r.Probe)
	}
	after := scrape(t, w.Dir)
	b, _ := value(before, "mdctl_probe_requests_total", "hop", events.HopProxy)
	a, _ := value(after, "mdctl_probe_requests_total", "hop", events.HopProxy)
	if a-b != 2 {
		t.Errorf("probe requests at the proxy: %v → %v, want two more (the token PUT and the GET)", b, a)
	}
	ec2 := []string{"hop", events.HopProxy, "class", "ec2", "code", "200"}
	b, _ = value(before, "mdctl_requests_total", ec2...)
	a, _ = value(after, "mdctl_requests_total", ec2...)
	if a != b {
		t.Errorf("guest requests %v: %v → %v, the probe's token PUT counted as guest traffic", ec2, b, a)
	}
	recent := recentEvents(t, w, "vm1")
	marked, puts := 0, 0
	for _, e := range recent {
		if e.Method == http.MethodPut && e.Path == metadata.TokenPath {
			puts++
			if e.Probe {
				marked++
			}
		}
	}
	t.Logf("token PUTs at the agent: %d, marked as the probe's: %d", puts, marked)
	if marked == 0 || marked == puts {
		t.Errorf("%d of %d token PUTs at the agent marked probe: want the probe's only (the hop checks' are not marked)", marked, puts)
	}
}
