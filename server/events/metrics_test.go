package events

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func gather(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(&buf)
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, buf.String())
	}
	return fams
}

func sample(mt *dto.Metric) float64 {
	switch {
	case mt.Counter != nil:
		return mt.GetCounter().GetValue()
	case mt.Gauge != nil:
		return mt.GetGauge().GetValue()
	case mt.Histogram != nil:
		return float64(mt.GetHistogram().GetSampleCount())
	}
	return -1
}

// Every family an operator alerts on is exported at 0 before its first
// event, with the label values known up front.
func TestFreshMetricsAtZero(t *testing.T) {
	fams := gather(t, NewMetrics())
	want := []string{"mdctl_requests_total", "mdctl_request_duration_seconds", "mdctl_probe_requests_total",
		"mdctl_events_dropped_total", "go_goroutines", "process_cpu_seconds_total"}
	for name, f := range families {
		if len(f.labels) == 0 || len(f.preset) > 0 {
			want = append(want, name)
		}
	}
	for _, name := range want {
		f, ok := fams[name]
		if !ok || len(f.GetMetric()) == 0 {
			t.Errorf("no %s on fresh metrics", name)
			continue
		}
		if name[:6] != "mdctl_" {
			continue
		}
		for _, mt := range f.GetMetric() {
			if v := sample(mt); v != 0 {
				t.Errorf("%s%v = %v on fresh metrics, want 0", name, mt.GetLabel(), v)
			}
		}
	}
	for name, f := range families {
		if got := len(fams[name].GetMetric()); len(f.labels) > 0 && got != len(f.preset) {
			t.Errorf("%s has %d series, want its %d presets", name, got, len(f.preset))
		}
	}
	bi := fams["mdctl_build_info"].GetMetric()
	if len(bi) != 1 || sample(bi[0]) != 1 || label(bi[0], "version") != Version || label(bi[0], "goversion") == "" {
		t.Errorf("mdctl_build_info = %v", bi)
	}
	// A 429 alert needs its series before the first 429: hops × classes ×
	// the codes hops answer, proxy 429 among them.
	found := false
	for _, mt := range fams["mdctl_requests_total"].GetMetric() {
		found = found || (label(mt, "hop") == HopProxy && label(mt, "code") == "429" && label(mt, "class") == "openstack")
	}
	if !found {
		t.Error(`no mdctl_requests_total{hop="proxy",code="429"} at 0`)
	}
}

func TestGaugeAndUnknownCode(t *testing.T) {
	m := NewMetrics()
	m.Gauge(DataplaneWanted, "kind", KindProxy).Set(3)
	m.Gauge(LastReconcile).Set(1.7e9)
	m.observe(&Event{Hop: HopAPI, Path: "/", Status: 418, Duration: time.Millisecond})
	fams := gather(t, m)
	check := func(name string, labels map[string]string, want float64) {
		t.Helper()
	next:
		for _, mt := range fams[name].GetMetric() {
			for k, v := range labels {
				if label(mt, k) != v {
					continue next
				}
			}
			if got := sample(mt); got != want {
				t.Errorf("%s%v = %v, want %v", name, labels, got, want)
			}
			return
		}
		t.Errorf("no %s%v", name, labels)
	}
	check(DataplaneWanted, map[string]string{"kind": KindProxy}, 3)
	check(DataplaneWanted, map[string]string{"kind": KindDnsmasq}, 0)
	check(LastReconcile, nil, 1.7e9)
	check("mdctl_requests_total", map[string]string{"hop": HopAPI, "class": "root", "code": "418"}, 1)
	if total, _ := m.Requests(HopAPI); total != 1 {
		t.Errorf("Requests(api) = %d, want 1", total)
	}
}

// A path trace marked is a probe: its events say so, and they are counted
// apart from guest requests; the same path unmarked, or after the mark
// expired, is guest traffic again.
func TestProbeMarkedAndCountedApart(t *testing.T) {
	b := NewBus()
	sub := b.Subscribe(Filter{}, 8)
	defer sub.Close()
	b.MarkProbe("/openstack/probe1", time.Minute)
	b.MarkProbe("/openstack/gone", -time.Second) // already expired
	b.Publish(Event{Hop: HopProxy, Path: "/openstack/probe1", Status: 404})
	b.Publish(Event{Hop: HopProxy, Path: "/openstack/gone", Status: 404})
	b.Publish(Event{Hop: HopProxy, Path: "/openstack/x", Status: 200, Probe: false})
	var marks []bool
	for range 3 {
		marks = append(marks, (<-sub.C).Probe)
	}
	if marks[0] != true || marks[1] || marks[2] {
		t.Errorf("probe marks = %v, want [true false false]", marks)
	}
	if total, _ := b.Metrics().Requests(HopProxy); total != 2 {
		t.Errorf("guest requests = %d, want 2 (the probe left out)", total)
	}
	if n := b.Metrics().probes[hopIndex(HopProxy)].Load(); n != 1 {
		t.Errorf("probe requests = %d, want 1", n)
	}
	pe := Event{Hop: HopProxy, Probe: true}
	line := pe.AppendJSON(nil)
	e, err := DecodeJSON(line)
	if err != nil || !e.Probe || !bytes.Contains(line, []byte(`"probe":true`)) {
		t.Errorf("probe lost in JSON: %s → %+v, %v", line, e, err)
	}
}

// A hop's request log marks a probe's line, and only its.
func TestProbeLog(t *testing.T) {
	b := NewBus()
	b.MarkProbe("/openstack/p", time.Minute)
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b.ProbeLog(l, "/openstack/p").Debug("metadata request")
	b.ProbeLog(l, "/openstack/guest").Debug("metadata request")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "probe=true") || strings.Contains(lines[1], "probe") {
		t.Errorf("log lines:\n%s\nwant probe=true on the first only", buf.String())
	}
}
