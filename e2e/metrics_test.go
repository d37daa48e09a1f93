package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/events"
)

// scrape parses the serve's /metrics as Prometheus would.
func scrape(t *testing.T, dir string) map[string]*dto.MetricFamily {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(dir, admin.SocketName))
		},
	}}
	resp, err := c.Get("http://admin/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value is the sample of name whose labels include want; ok is false when
// there is none.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
next:
	for _, m := range fams[name].GetMetric() {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || l.GetName() == want[i] && l.GetValue() == want[i+1]
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// TestFreshServeMetrics: a fresh serve exports what an operator alerts on
// before the first event, at 0, with the build, Go and process families,
// and its data-plane gauges agree that what the plan wants runs.
func TestFreshServeMetrics(t *testing.T) {
	w := testworld.New(t, testworld.RoutedTopo)
	w.StartServe(testworld.ServeOptions{})
	w.LabUp()
	waitServing(t, w.GuestNS("vm1"))
	listener := "router:" + w.Router("r1").ID
	zero := []struct {
		name   string
		labels []string
	}{
		{events.RateLimited, []string{"listener", listener}},
		{events.ConnsRefused, []string{"listener", listener}},
		{"mdctl_requests_total", []string{"hop", events.HopProxy, "code", "429"}},
		{"mdctl_requests_total", []string{"hop", events.HopAgent, "code", "404"}},
		{"mdctl_probe_requests_total", []string{"hop", events.HopProxy}},
		{events.LookupFailures, []string{"reason", events.ReasonNoPort}},
		{events.LookupFailures, []string{"reason", events.ReasonSeveralPorts}},
		{events.SignatureMismatches, nil},
		{events.APIErrors, []string{"kind", events.KindUnreachable}},
		{events.APIErrors, []string{"kind", events.KindTimeout}},
		{events.APIErrors, []string{"kind", events.KindError}},
		{events.CacheLookups, []string{"cache", "agent", "result", events.ResultHit}},
		{events.DataplaneRepairs, nil},
		{"mdctl_events_dropped_total", nil},
	}
	fams := scrape(t, w.Dir)
	for _, z := range zero {
		if v, ok := value(fams, z.name, z.labels...); !ok || v != 0 {
			t.Errorf("%s%v = %v (exported: %v), want 0 on a fresh serve", z.name, z.labels, v, ok)
		}
	}
	for _, name := range []string{"mdctl_build_info", "go_goroutines", "process_resident_memory_bytes", events.ReconcileErrors, events.CacheLookups} {
		if _, ok := value(fams, name); !ok {
			t.Errorf("no %s", name)
		}
	}
	if v, _ := value(fams, "mdctl_build_info"); v != 1 {
		t.Errorf("mdctl_build_info = %v, want 1", v)
	}
	testworld.WaitFor(t, 10*time.Second, "data-plane gauges: wanted = actual", func() error {
		fams := scrape(t, w.Dir)
		if v, _ := value(fams, events.LastReconcile); v < float64(time.Now().Add(-time.Hour).Unix()) {
			return fmt.Errorf("%s = %v", events.LastReconcile, v)
		}
		for _, kind := range []string{events.KindNamespace, events.KindProxy, events.KindDnsmasq} {
			want, _ := value(fams, events.DataplaneWanted, "kind", kind)
			got, _ := value(fams, events.DataplaneActual, "kind", kind)
			if want != got || (kind != events.KindDnsmasq && want == 0) {
				return fmt.Errorf("%s: wanted %v, actual %v", kind, want, got)
			}
		}
		return nil
	})
}
