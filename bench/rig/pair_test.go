package rig

import (
	"math"
	"strings"
	"testing"
	"time"
)

func run(rps, cpu float64, reqs uint64, p50, p99 time.Duration, rss uint64, errs uint64) Row {
	return Row{Wrk: WrkResult{ReqPerSec: rps, Requests: reqs, P50: p50, P99: p99, ErrStatus: errs}, CPUPerReq: cpu, PeakRSS: rss}
}

func TestMeanRow(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		in   []Row
		want Row
	}{
		{name: "none", in: nil, want: Row{}},
		{name: "one", in: []Row{run(1000, 20, 3000, ms, 4*ms, 10, 1)}, want: run(1000, 20, 3000, ms, 4*ms, 10, 1)},
		{
			name: "means of rates, CPU and percentiles; totals of requests and errors; highest RSS",
			in:   []Row{run(1000, 20, 3000, ms, 4*ms, 30, 1), run(3000, 40, 9000, 3*ms, 8*ms, 10, 2)},
			want: run(2000, 30, 12000, 2*ms, 6*ms, 30, 3),
		},
	}
	for _, tt := range tests {
		got := MeanRow(tt.in)
		if got.Wrk.ReqPerSec != tt.want.Wrk.ReqPerSec || got.CPUPerReq != tt.want.CPUPerReq ||
			got.Wrk.Requests != tt.want.Wrk.Requests || got.Wrk.P50 != tt.want.Wrk.P50 || got.Wrk.P99 != tt.want.Wrk.P99 ||
			got.PeakRSS != tt.want.PeakRSS || got.Wrk.Errors() != tt.want.Wrk.Errors() {
			t.Errorf("%s: MeanRow = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestPairRowsAndLines(t *testing.T) {
	p := Pair{Target: "chain", Peer: "nova-haproxy", Mode: KeepAlive, Path: "/md",
		Off: []Row{run(5000, 200, 10000, 0, 0, 0, 0), run(4000, 220, 8000, 0, 0, 0, 0)},
		On:  []Row{run(4800, 230, 9600, 0, 0, 0, 0), run(3750, 240, 7500, 0, 0, 0, 0)},
	}
	off, on := p.Rows()
	if off.Target != "chain+events:off" || off.Peer != "nova-haproxy" || on.Target != "chain+events:on" || on.Peer != off.Target {
		t.Fatalf("rows named %q (peer %q) and %q (peer %q)", off.Target, off.Peer, on.Target, on.Peer)
	}
	if off.Mode != KeepAlive || on.Path != "/md" {
		t.Errorf("rows lost mode or path: %+v %+v", off, on)
	}
	// The table's × peer columns of the on row are the pair's ratios.
	lines := Lines([]Row{row("nova-haproxy", "", KeepAlive, "/md", 1000, 800), off, on})
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if l := lines[2]; !near(l.PeerRate, p.RateRatio()) || !near(l.PeerCPU, p.CPURatio()) || l.PeerLabel != off.Target {
		t.Errorf("on line: peer %q %v/%v, want %v/%v", l.PeerLabel, l.PeerRate, l.PeerCPU, p.RateRatio(), p.CPURatio())
	}
	if l := lines[1]; !near(l.PeerRate, 4.5) {
		t.Errorf("off line × nova-haproxy = %v, want 4.5", l.PeerRate)
	}
}

func TestPairFinding(t *testing.T) {
	off := []Row{run(10000, 20, 20000, 0, 0, 0, 0), run(9000, 22, 18000, 0, 0, 0, 0)}
	tests := []struct {
		name       string
		on         []Row
		received   uint64
		onRequests uint64
		dropped    uint64
		value      string
		met        Verdict
		detail     []string
	}{
		{
			name:     "small drop is met",
			on:       []Row{run(9700, 21, 19400, 0, 0, 0, 0), run(8620, 23, 17240, 0, 0, 0, 0)},
			received: 45000, onRequests: 45000,
			value: "0.964× (-3.6 %); CPU/req 1.05×", met: Met,
			detail: []string{"2 interleaved rounds", "10000→9700, 9000→8620", "differ by 11 %", "45000 events received (1.00 per request", "0 dropped", "CPU 1"},
		},
		{
			name:     "drop past 5 % is missed, drops are reported",
			on:       []Row{run(9000, 25, 18000, 0, 0, 0, 0), run(8000, 27, 16000, 0, 0, 0, 0)},
			received: 100000, onRequests: 40000, dropped: 12,
			value: "0.895× (-10.5 %); CPU/req 1.24×", met: Missed,
			detail: []string{"2.50 per request", "12 dropped"},
		},
		{
			name:  "a gain is met",
			on:    []Row{run(10500, 20, 21000, 0, 0, 0, 0), run(9500, 21, 19000, 0, 0, 0, 0)},
			value: "1.053× (+5.3 %); CPU/req 0.98×", met: Met,
			detail: []string{"0 events received (– per request"},
		},
		{name: "no with-runs", on: nil, value: "no figures", met: Missed},
	}
	for _, tt := range tests {
		p := Pair{Target: "mdctl-api", Mode: KeepAlive, Path: "/id", Off: off, On: tt.on,
			Received: tt.received, OnRequests: tt.onRequests, Dropped: tt.dropped, LoadCPU: "1"}
		f := p.Finding()
		if f.Name != "mdctl-api keepalive /id: event stream consumed, req/s ÷ without" || f.Goal != "drop ≤ 5 % (≥ 0.95×)" {
			t.Errorf("%s: name %q goal %q", tt.name, f.Name, f.Goal)
		}
		if f.Value != tt.value || f.Met != tt.met {
			t.Errorf("%s: value %q %v, want %q %v", tt.name, f.Value, f.Met, tt.value, tt.met)
		}
		for _, d := range tt.detail {
			if !strings.Contains(f.Detail, d) {
				t.Errorf("%s: detail lacks %q: %s", tt.name, d, f.Detail)
			}
		}
	}
}

func TestSpread(t *testing.T) {
	tests := []struct {
		rps  []float64
		want float64
	}{
		{nil, 0},
		{[]float64{1000}, 0},
		{[]float64{900, 1100}, 0.2},
		{[]float64{1000, 1000, 1000}, 0},
		{[]float64{0, 0}, 0},
	}
	for _, tt := range tests {
		var rows []Row
		for _, r := range tt.rps {
			rows = append(rows, run(r, 0, 0, 0, 0, 0, 0))
		}
		if got := Spread(rows); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("Spread(%v) = %v, want %v", tt.rps, got, tt.want)
		}
	}
}

func TestMarkdownPairsLine(t *testing.T) {
	var b strings.Builder
	cfg := Config{Duration: 10 * time.Second, Warmup: 2 * time.Second, Threads: 1, Connections: 64,
		Tools: Tools{ServerCPU: "0", LoadCPU: "1"}, Pairs: PairConfig{Duration: 3 * time.Second, Warmup: time.Second, Rounds: 2}}
	if err := WriteMarkdown(&b, Report{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	want := "in 2 interleaved rounds per mode and path of 3s without, then 3s with a consumer reading `/events` on its admin socket (pinned to CPU 1, not measured), each after a 1s warm-up; rows `<target>+events:off` and `<target>+events:on`"
	if !strings.Contains(b.String(), want) {
		t.Errorf("markdown lacks the pairs line %q:\n%s", want, b.String())
	}
	b.Reset()
	cfg.Pairs.Duration = 0
	if err := WriteMarkdown(&b, Report{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "event-stream pairs") {
		t.Errorf("pairs line without pairs:\n%s", b.String())
	}
}
