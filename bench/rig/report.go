package rig

import (
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// BareTarget is the name of the limit every row is compared with.
const BareTarget = "bare"

// Machine describes where the figures were taken; ratios are only
// comparable within one report.
type Machine struct {
	Host, CPUModel, Kernel string
	NProc                  int
	GoVersion              string
	Versions               map[string]string // tool -> version line
}

// ReadMachine gathers the machine section from /proc and the tools.
func ReadMachine(versions map[string]string) Machine {
	host, _ := os.Hostname()
	m := Machine{Host: host, NProc: runtime.NumCPU(), GoVersion: runtime.Version(), Versions: versions}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = CPUModel(string(b))
	}
	return m
}

// CPUModel returns the first "model name" of /proc/cpuinfo.
func CPUModel(cpuinfo string) string {
	for _, l := range strings.Split(cpuinfo, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// Line is a Row with its ratios worked out, ready to print.
type Line struct {
	Row
	VsBare    float64 // req/s of this row ÷ req/s of bare, same mode (0: none)
	PeerRate  float64 // req/s ÷ peer's req/s, same mode and path (0: none)
	PeerCPU   float64 // CPU µs/req ÷ peer's CPU µs/req (0: none)
	PeerLabel string
}

// Lines pairs each row with bare and with its peer in the same mode. The
// peer row is the one with the same path, else the peer's first path.
func Lines(rows []Row) []Line {
	find := func(target string, mode Mode, path string) *Row {
		var first *Row
		for i := range rows {
			r := &rows[i]
			if r.Target != target || r.Mode != mode {
				continue
			}
			if r.Path == path {
				return r
			}
			if first == nil {
				first = r
			}
		}
		return first
	}
	out := make([]Line, 0, len(rows))
	for _, r := range rows {
		l := Line{Row: r}
		if r.Target != BareTarget {
			if b := find(BareTarget, r.Mode, r.Path); b != nil && b.Wrk.ReqPerSec > 0 {
				l.VsBare = r.Wrk.ReqPerSec / b.Wrk.ReqPerSec
			}
		}
		if r.Peer != "" {
			if p := find(r.Peer, r.Mode, r.Path); p != nil {
				l.PeerLabel = r.Peer
				if p.Wrk.ReqPerSec > 0 {
					l.PeerRate = r.Wrk.ReqPerSec / p.Wrk.ReqPerSec
				}
				if p.CPUPerReq > 0 {
					l.PeerCPU = r.CPUPerReq / p.CPUPerReq
				}
			}
		}
		out = append(out, l)
	}
	return out
}

var header = []string{"target", "mode", "path", "req/s", "p50", "p99", "CPU µs/req", "peak RSS MiB", "× bare req/s", "× peer req/s", "× peer CPU/req", "errors"}

func (l Line) cells() []string {
	ratio := func(v float64) string {
		if v == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f×", v)
	}
	peer := func(v float64) string {
		if v == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f× %s", v, l.PeerLabel)
	}
	return []string{
		l.Target, string(l.Mode), l.Path,
		fmt.Sprintf("%.0f", l.Wrk.ReqPerSec),
		FormatLatency(l.Wrk.P50), FormatLatency(l.Wrk.P99),
		fmt.Sprintf("%.1f", l.CPUPerReq),
		fmt.Sprintf("%.1f", float64(l.PeakRSS)/(1<<20)),
		ratio(l.VsBare), peer(l.PeerRate), peer(l.PeerCPU),
		fmt.Sprintf("%d", l.Wrk.Errors()),
	}
}

// FormatLatency prints µs below a millisecond, ms with two decimals above.
func FormatLatency(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}

// WriteText prints the table for a terminal.
func WriteText(w io.Writer, lines []Line) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	for _, l := range lines {
		fmt.Fprintln(tw, strings.Join(l.cells(), "\t")+"\t")
	}
	return tw.Flush()
}

// Report is everything the results file holds.
type Report struct {
	When     time.Time
	Machine  Machine
	Config   Config
	Lines    []Line
	Findings []Finding
	Failures []Failure
	// LoadBefore and LoadAfter are /proc/loadavg's 1/5/15-minute figures
	// around the run: other work on the machine is what makes ratios drift.
	LoadBefore, LoadAfter string
}

// LoadAvg returns the first three fields of /proc/loadavg ("?" if unreadable).
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// WriteMarkdown writes the results file.
func WriteMarkdown(w io.Writer, r Report) error {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# mdbench %s on %s\n\n", r.When.Format("2006-01-02 15:04 MST"), m.Host)
	fmt.Fprintf(&b, "- machine: %d CPUs, %s, kernel %s\n", m.NProc, m.CPUModel, m.Kernel)
	fmt.Fprintf(&b, "- go: %s\n", m.GoVersion)
	for _, k := range slices.Sorted(maps.Keys(m.Versions)) {
		fmt.Fprintf(&b, "- %s: %s\n", k, m.Versions[k])
	}
	c := r.Config
	fmt.Fprintf(&b, "- load: wrk -t%d -c%d, %v per run after a %v warm-up; servers on CPU %s, wrk on CPU %s\n",
		c.Threads, c.Connections, c.Duration, c.Warmup, c.Tools.ServerCPU, c.Tools.LoadCPU)
	if c.Passes > 1 {
		fmt.Fprintf(&b, "- passes: the target list ran %d times in turn; each row is the run with the median req/s for its target, mode and path (all its figures from that one run), so a noisy minute on this shared machine spoils one pass of every target, not one target; pairs and start-up findings are the last pass's\n", c.Passes)
	}
	if p := c.Pairs; p.Duration > 0 {
		fmt.Fprintf(&b, "- event-stream pairs (targets with one: mdctl-api, chain): after its own rows, the same running server again in %d interleaved rounds per mode and path of %v without, then %v with a consumer reading `/events` on its admin socket (pinned to CPU %s, not measured), each after a %v warm-up; rows `<target>%s` and `<target>%s` are the means, the latter's × peer columns are with ÷ without\n",
			max(p.Rounds, 1), p.Duration, p.Duration, c.Tools.LoadCPU, p.Warmup, PairOff, PairOn)
	}
	if r.LoadBefore != "" {
		fmt.Fprintf(&b, "- load average (1/5/15 min): %s before, %s after\n", r.LoadBefore, r.LoadAfter)
	}
	b.WriteString("- CPU µs/req: utime+stime (with reaped children) of the measured process tree over the run ÷ requests; peak RSS: VmHWM after clear_refs=5. A proxy hop's figures are the hop's alone (its constant backend is not counted).\n\n")
	b.WriteString("| " + strings.Join(header, " | ") + " |\n")
	b.WriteString("|" + strings.Repeat("---|", len(header)) + "\n")
	for _, l := range r.Lines {
		b.WriteString("| " + strings.Join(l.cells(), " | ") + " |\n")
	}
	if len(r.Findings) > 0 {
		b.WriteString("\n## Targets and scenarios\n\n")
		b.WriteString("| " + strings.Join(findingHeader, " | ") + " |\n")
		b.WriteString("|" + strings.Repeat("---|", len(findingHeader)) + "\n")
		for _, f := range r.Findings {
			b.WriteString("| " + strings.Join(f.cells(), " | ") + " |\n")
		}
	}
	if len(r.Failures) > 0 {
		b.WriteString("\n## Not measured\n\n")
		for _, f := range r.Failures {
			fmt.Fprintf(&b, "- %s: %v\n", f.Target, f.Err)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Finding is one figure outside the wrk table (a boot storm's duration, a
// start-up RSS) or one target checked against the table, with its verdict.
type Finding struct {
	Name   string // what was measured: "storm: 200 guests, last answer"
	Value  string // the figure, formatted
	Goal   string // the target it is judged against ("" for none)
	Met    Verdict
	Detail string // how it was measured, what bounds it
}

// Verdict says whether a finding meets its goal.
type Verdict int

// Verdicts.
const (
	NoGoal Verdict = iota
	Met
	Missed
)

func (v Verdict) String() string {
	switch v {
	case Met:
		return "met"
	case Missed:
		return "MISSED"
	}
	return "–"
}

// Judge is Met when ok, else Missed.
func Judge(ok bool) Verdict {
	if ok {
		return Met
	}
	return Missed
}

var findingHeader = []string{"figure", "value", "target", "verdict", "detail"}

func (f Finding) cells() []string {
	goal := f.Goal
	if goal == "" {
		goal = "–"
	}
	return []string{f.Name, f.Value, goal, f.Met.String(), f.Detail}
}

// WriteFindings prints the findings for a terminal.
func WriteFindings(w io.Writer, finds []Finding) error {
	if len(finds) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(findingHeader, "\t")+"\t")
	for _, f := range finds {
		fmt.Fprintln(tw, strings.Join(f.cells(), "\t")+"\t")
	}
	return tw.Flush()
}
