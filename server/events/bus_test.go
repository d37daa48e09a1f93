package events

import (
	"fmt"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

func ev(hop, inst string, status int) Event {
	return Event{Time: time.Now(), RequestID: "req-1", Hop: hop, InstanceID: inst, InstanceName: "vm-" + inst,
		Method: "GET", Path: "/openstack/latest/meta_data.json", Status: status, Duration: time.Millisecond}
}

// A subscriber that never reads must not hold up Publish; what it
// misses is counted, per subscriber and bus-wide.
func TestPublishNeverBlocksOnStuckSubscriber(t *testing.T) {
	b := NewBus()
	stuck := b.Subscribe(Filter{}, 2)
	defer stuck.Close()
	live := b.Subscribe(Filter{}, 1000)
	defer live.Close()

	done := make(chan struct{})
	go func() {
		for i := 0; i < 100; i++ {
			b.Publish(ev(HopAPI, "a", 200))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked behind a subscriber that never reads")
	}
	if got := stuck.Dropped(); got != 98 {
		t.Errorf("stuck subscriber dropped %d, want 98", got)
	}
	if got := live.Dropped(); got != 0 {
		t.Errorf("reading subscriber dropped %d, want 0", got)
	}
	if got := len(live.C); got != 100 {
		t.Errorf("reading subscriber has %d events, want 100", got)
	}
	if got := b.Metrics().Drops(); got != 98 {
		t.Errorf("bus drops %d, want 98", got)
	}
}

func TestFilter(t *testing.T) {
	tests := []struct {
		name string
		f    Filter
		e    Event
		want bool
	}{
		{"empty matches all", Filter{}, ev(HopProxy, "a", 200), true},
		{"hop", Filter{Hop: HopAgent}, ev(HopProxy, "a", 200), false},
		{"hop same", Filter{Hop: HopAgent}, ev(HopAgent, "a", 200), true},
		{"instance by id", Filter{Instance: "a"}, ev(HopAPI, "a", 200), true},
		{"instance by name", Filter{Instance: "vm-a"}, ev(HopAPI, "a", 200), true},
		{"other instance", Filter{Instance: "b"}, ev(HopAPI, "a", 200), false},
		{"exact status", Filter{Status: "404"}, ev(HopAPI, "a", 404), true},
		{"exact status differs", Filter{Status: "404"}, ev(HopAPI, "a", 200), false},
		{"class", Filter{Status: "5xx"}, ev(HopAPI, "a", 503), true},
		{"class differs", Filter{Status: "5xx"}, ev(HopAPI, "a", 404), false},
		{"error status", Filter{Status: "error"}, ev(HopAPI, "a", 500), true},
		{"error text", Filter{Status: "error"}, Event{Status: 200, Error: "relay"}, true},
		{"not error", Filter{Status: "error"}, ev(HopAPI, "a", 404), false},
		{"all fields", Filter{Hop: HopAPI, Instance: "a", Status: "2xx"}, ev(HopAPI, "a", 200), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.Match(tt.e); got != tt.want {
				t.Errorf("%+v.Match(%+v) = %v, want %v", tt.f, tt.e, got, tt.want)
			}
		})
	}
}

func TestSubscriptionFilterAndClose(t *testing.T) {
	b := NewBus()
	s := b.Subscribe(Filter{Hop: HopAgent}, 10)
	b.Publish(ev(HopProxy, "a", 200))
	b.Publish(ev(HopAgent, "a", 404))
	if got := len(s.C); got != 1 {
		t.Fatalf("got %d events, want 1 (only the agent's)", got)
	}
	if e := <-s.C; e.Hop != HopAgent || e.Status != 404 {
		t.Errorf("got %+v", e)
	}
	s.Close()
	s.Close() // twice is fine
	select {
	case <-s.Done():
	default:
		t.Error("Done not closed after Close")
	}
	b.Publish(ev(HopAgent, "a", 200))
	if got := len(s.C); got != 0 {
		t.Errorf("closed subscription got %d events", got)
	}
	if b.Subscribers() != 0 {
		t.Errorf("Subscribers = %d after Close", b.Subscribers())
	}
}

// Subscribing and closing while others publish is race-free (go test -race).
func TestConcurrentSubscribePublish(t *testing.T) {
	b := NewBus()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < 500; j++ {
				b.Publish(ev(HopProxy, "a", 200))
			}
		}()
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				s := b.Subscribe(Filter{}, 1)
				s.Close()
			}
		}()
	}
	wg.Wait()
	if total, _ := b.Metrics().Requests(HopProxy); total != 2000 {
		t.Errorf("counted %d proxy requests, want 2000", total)
	}
}

func TestNilBusAndCounters(t *testing.T) {
	var b *Bus
	b.Publish(ev(HopAPI, "a", 200)) // must not panic
	c := b.Metrics().Counter(ReconcileErrors)
	c.Inc()
	if c.Value() != 0 || b.Subscribers() != 0 {
		t.Error("nil bus counted something")
	}
}

func TestPathClass(t *testing.T) {
	for p, want := range map[string]string{
		"/":                                 "root",
		"/openstack":                        "openstack",
		"/openstack/latest/meta_data.json":  "openstack",
		"/openstack/2013-04-04/password":    "password",
		"/latest/meta-data/":                "ec2",
		"/2009-04-04/meta-data/instance-id": "ec2",
		"/2009-04-04":                       "ec2",
		"/2009-04-0x":                       "other",
		"/healthz":                          "health",
		"/healthcheck":                      "health",
		"/etc/passwd":                       "other",
		"/openstackfoo":                     "other",
	} {
		if got := PathClass(p); got != want {
			t.Errorf("PathClass(%q) = %q, want %q", p, got, want)
		}
	}
}

// The exposition must parse with Prometheus's own parser and say what was
// counted: requests by hop/class/status, histograms per hop, drops, and
// the counters components bump.
func TestMetricsParseWithExpfmt(t *testing.T) {
	b := NewBus()
	s := b.Subscribe(Filter{}, 1)
	defer s.Close()
	b.Publish(ev(HopProxy, "a", 200))
	b.Publish(ev(HopProxy, "a", 200)) // dropped: buffer of one (as is the next)
	e := ev(HopAPI, "a", 404)
	e.Path = "/2009-04-04/meta-data/x"
	e.Duration = 3 * time.Second
	b.Publish(e)
	m := b.Metrics()
	m.Counter(CacheLookups, "cache", "api", "result", ResultHit).Add(3)
	m.Counter(CacheLookups, "result", ResultHit, "cache", "agent").Inc()
	m.Counter(RateLimited, "listener", "router:r1").Inc()
	m.Counter(ReconcileErrors).Add(2)

	fams := gather(t, m)
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		f, ok := fams[name]
		if !ok {
			t.Fatalf("no family %s", name)
		}
	next:
		for _, mt := range f.Metric {
			for k, v := range labels {
				if label(mt, k) != v {
					continue next
				}
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				return mt.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(mt.GetHistogram().GetSampleCount())
			}
		}
		t.Fatalf("%s%v not found", name, labels)
		return 0
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"mdctl_requests_total", map[string]string{"hop": "proxy", "class": "openstack", "code": "200"}, 2},
		{"mdctl_requests_total", map[string]string{"hop": "api", "class": "ec2", "code": "404"}, 1},
		{"mdctl_request_duration_seconds", map[string]string{"hop": "proxy"}, 2},
		{"mdctl_request_duration_seconds", map[string]string{"hop": "api"}, 1},
		{"mdctl_request_duration_seconds", map[string]string{"hop": "agent"}, 0},
		{"mdctl_events_dropped_total", nil, 2},
		{CacheLookups, map[string]string{"cache": "api", "result": "hit"}, 3},
		{CacheLookups, map[string]string{"cache": "agent", "result": "hit"}, 1},
		{CacheLookups, map[string]string{"cache": "agent", "result": "miss"}, 0},
		{RateLimited, map[string]string{"listener": "router:r1"}, 1},
		{ReconcileErrors, nil, 2},
	}
	for _, c := range checks {
		if got := value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// The 3 s API request lands in the 5 s bucket, not the 2.5 s one.
	for _, mt := range fams["mdctl_request_duration_seconds"].Metric {
		if label(mt, "hop") != "api" {
			continue
		}
		for _, bk := range mt.GetHistogram().GetBucket() {
			want := uint64(0)
			if bk.GetUpperBound() >= 5 {
				want = 1
			}
			if bk.GetCumulativeCount() != want {
				t.Errorf("api bucket le=%v = %d, want %d", bk.GetUpperBound(), bk.GetCumulativeCount(), want)
			}
		}
		if s := mt.GetHistogram().GetSampleSum(); s < 2.9 || s > 3.1 {
			t.Errorf("api latency sum = %v, want 3", s)
		}
	}
	if fams[ReconcileErrors].GetHelp() != families[ReconcileErrors].help {
		t.Errorf("help = %q", fams[ReconcileErrors].GetHelp())
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func BenchmarkPublish(b *testing.B) {
	for _, subs := range []int{0, 1} {
		b.Run(fmt.Sprintf("subscribers=%d", subs), func(b *testing.B) {
			bus := NewBus()
			done := make(chan struct{})
			var wg sync.WaitGroup
			for i := 0; i < subs; i++ {
				s := bus.Subscribe(Filter{}, 0)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-s.C:
						case <-done:
							s.Close()
							return
						}
					}
				}()
			}
			e := ev(HopAPI, "a", 200)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					bus.Publish(e)
				}
			})
			b.StopTimer()
			close(done)
			wg.Wait()
		})
	}
}

// TestIsProbeQuery: a probe marked with its query (path?query) is told
// from the same path without it, or with another query.
func TestIsProbeQuery(t *testing.T) {
	b := NewBus()
	const path, query = "/latest/api/token", "mdctl-probe=trace-1"
	if b.IsProbeQuery(path, query) {
		t.Error("a probe before any was marked")
	}
	b.MarkProbe(path+"?"+query, time.Minute)
	for _, c := range []struct {
		path, query string
		want        bool
	}{
		{path, query, true},
		{path, "", false},
		{path, "mdctl-probe=trace-2", false},
		{"/latest/meta-data/", query, false},
	} {
		if got := b.IsProbeQuery(c.path, c.query); got != c.want {
			t.Errorf("IsProbeQuery(%q, %q) = %v, want %v", c.path, c.query, got, c.want)
		}
	}
	if b.IsProbe(path) {
		t.Error("the token path alone is marked: every guest's token PUT would count as the probe's")
	}
	var nilBus *Bus
	if nilBus.IsProbeQuery(path, query) {
		t.Error("a nil bus marks probes")
	}
}
