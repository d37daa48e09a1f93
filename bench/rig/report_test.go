package rig

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func row(target, peer string, mode Mode, path string, rps, cpu float64) Row {
	return Row{Target: target, Peer: peer, Mode: mode, Path: path, Wrk: WrkResult{ReqPerSec: rps}, CPUPerReq: cpu}
}

func TestLines(t *testing.T) {
	rows := []Row{
		row("bare", "", KeepAlive, "/a", 100000, 10),
		row("bare", "", Close, "/a", 50000, 20),
		row("nova", "", KeepAlive, "/md", 4000, 250),
		row("nova", "", KeepAlive, "/id", 5000, 200),
		row("api", "nova", KeepAlive, "/md", 40000, 25),
		row("api", "nova", KeepAlive, "/id", 50000, 10),
		row("api", "nova", Close, "/md", 20000, 50), // nova has no close row
		row("hop", "haproxy", KeepAlive, "/a", 30000, 30),
	}
	want := []struct{ vsBare, peerRate, peerCPU float64 }{
		{0, 0, 0},
		{0, 0, 0},
		{0.04, 0, 0},
		{0.05, 0, 0},
		{0.4, 10, 0.1},  // same path /md
		{0.5, 10, 0.05}, // same path /id
		{0.4, 0, 0},     // close: bare close is the reference, no nova close
		{0.3, 0, 0},     // peer not run
	}
	got := Lines(rows)
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d", len(got), len(want))
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	for i, w := range want {
		g := got[i]
		if !near(g.VsBare, w.vsBare) || !near(g.PeerRate, w.peerRate) || !near(g.PeerCPU, w.peerCPU) {
			t.Errorf("line %d (%s %s %s): vsBare %v peer %v/%v, want %v %v/%v",
				i, g.Target, g.Mode, g.Path, g.VsBare, g.PeerRate, g.PeerCPU, w.vsBare, w.peerRate, w.peerCPU)
		}
	}
	// A peer row with another path is used when the path matches nothing.
	l := Lines([]Row{row("nova", "", KeepAlive, "/md", 4000, 250), row("api", "nova", KeepAlive, "/other", 8000, 100)})
	if !near(l[1].PeerRate, 2) || l[1].PeerLabel != "nova" {
		t.Errorf("fallback to the peer's first path: %+v", l[1])
	}
}

func TestWriteMarkdown(t *testing.T) {
	rows := []Row{row("bare", "", KeepAlive, "/a", 100000, 9.5), row("haproxy", "", KeepAlive, "/a", 25000, 40)}
	rows[1].Wrk.P50 = 1500 * time.Microsecond
	rows[1].Wrk.P99 = 800 * time.Microsecond
	rows[1].PeakRSS = 15 << 20
	var b strings.Builder
	err := WriteMarkdown(&b, Report{
		When:       time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC),
		Machine:    Machine{Host: "vm", NProc: 2, CPUModel: "Xeon", Kernel: "6.1", GoVersion: "go1.26", Versions: map[string]string{"wrk": "wrk 4.1.0", "haproxy": "2.6"}},
		Config:     Config{Duration: 10 * time.Second, Warmup: 2 * time.Second, Threads: 1, Connections: 64, Tools: Tools{ServerCPU: "0", LoadCPU: "1"}},
		Lines:      Lines(rows),
		Failures:   []Failure{{Target: "nova", Err: errors.New("missing python3-nova")}},
		LoadBefore: "0.50 0.40 0.30", LoadAfter: "1.10 0.60 0.35",
	})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"# mdbench 2026-11-23 18:00 UTC on vm",
		"- machine: 2 CPUs, Xeon, kernel 6.1",
		"- haproxy: 2.6\n- wrk: wrk 4.1.0\n", // sorted
		"wrk -t1 -c64, 10s per run after a 2s warm-up; servers on CPU 0, wrk on CPU 1",
		"| haproxy | keepalive | /a | 25000 | 1.50ms | 800µs | 40.0 | 15.0 | 0.25× | – | – | 0 |",
		"- load average (1/5/15 min): 0.50 0.40 0.30 before, 1.10 0.60 0.35 after",
		"## Not measured\n\n- nova: missing python3-nova",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckRequirements(t *testing.T) {
	ok := Requirement{What: "sh", Install: "-", Check: func() error { return nil }}
	wrk := Requirement{What: "wrk", Install: InstallWrkHAProxy, Check: func() error { return errors.New("not found") }}
	hap := Requirement{What: "haproxy", Install: InstallWrkHAProxy, Check: func() error { return errors.New("not found") }}
	nova := Requirement{What: "python3-nova", Install: InstallNova, Check: func() error { return errors.New("no module") }}
	if err := CheckRequirements([]Requirement{ok, ok}); err != nil {
		t.Errorf("all present: %v", err)
	}
	err := CheckRequirements([]Requirement{ok, wrk, hap, nova, wrk})
	if err == nil {
		t.Fatal("missing tools: no error")
	}
	msg := err.Error()
	if strings.Count(msg, InstallWrkHAProxy) != 1 || !strings.Contains(msg, InstallNova) ||
		strings.Count(msg, "wrk (") != 1 || !strings.Contains(msg, "haproxy (not found)") {
		t.Errorf("message does not list each tool once with its install command:\n%s", msg)
	}
}

func TestMarkdownFindings(t *testing.T) {
	var b strings.Builder
	err := WriteMarkdown(&b, Report{Findings: []Finding{
		{Name: "storm", Value: "3.1 s, 0 errors", Goal: "< 5 s, 0 errors", Met: Met, Detail: "released"},
		{Name: "chain p99", Value: "9ms", Goal: "< 5 ms", Met: Missed},
		{Name: "baseline", Value: "0.2 s"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"## Targets and scenarios",
		"| storm | 3.1 s, 0 errors | < 5 s, 0 errors | met | released |",
		"| chain p99 | 9ms | < 5 ms | MISSED |  |",
		"| baseline | 0.2 s | – | – |  |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in:\n%s", want, b.String())
		}
	}
}
