// Command mdbench is the side-by-side load rig behind `make bench`: it runs
// every target under the same wrk load, prints one table of ratios, and
// writes it to bench/results/<date>-<host>.md. See bench/README.md.
//
// It installs nothing: when a tool is missing it says which apt-get to run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mdctl/mdctl/bench/rig"
	"github.com/mdctl/mdctl/bench/targets"
)

type options struct {
	duration, warmup time.Duration
	quick            bool
	pairs            rig.PairConfig
	passes           int
	targets          string
	scenarios        string
	mdctl            string
	profileDir       string
	modes            string
	threads, conns   int
	serverCPU        string
	loadCPU          string
	reference        string
	outDir           string
	keep             bool
	verbose          bool
	child            string
	childArgs        []string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mdbench:", err)
		var usage usageError
		if errors.As(err, &usage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("mdbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured run per target, mode and path")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured run before each measured one")
	fs.BoolVar(&o.quick, "quick", false, "smoke run: 2 s runs after a 1 s warm-up")
	fs.DurationVar(&o.pairs.Duration, "events-duration", 2*time.Second, "each run of the with/without event-stream pairs of mdctl-api and chain (0: no pairs)")
	fs.IntVar(&o.passes, "passes", 1, "run the target list this many times in turn; each row is the run with the median req/s")
	fs.IntVar(&o.pairs.Rounds, "events-rounds", 2, "interleaved without/with rounds per mode and path of those pairs")
	fs.StringVar(&o.targets, "targets", "", "comma-separated targets to run (default: all of bare,haproxy,nova,mdctl-proxy,mdctl-api,nova-haproxy,chain)")
	fs.StringVar(&o.scenarios, "scenarios", "storm,hammer,vmstorm,propagate", "comma-separated scenarios to run after the targets (\"\" for none)")
	fs.StringVar(&o.mdctl, "mdctl", "", "the mdctl binary `make bench` built: its version goes in the results (serve runs linked into mdbench, the same code)")
	fs.StringVar(&o.modes, "modes", "keepalive,close", "connection modes: keepalive, close")
	fs.IntVar(&o.threads, "threads", 1, "wrk threads")
	fs.IntVar(&o.conns, "connections", 64, "wrk connections")
	fs.StringVar(&o.serverCPU, "server-cpu", "0", "CPU list servers are pinned to")
	fs.StringVar(&o.loadCPU, "load-cpu", "1", "CPU list wrk is pinned to")
	fs.StringVar(&o.reference, "reference", filepath.Join("bench", "reference"), "directory of the reference servers' sources (constsrv, nova's runner); run from the repository root")
	fs.StringVar(&o.outDir, "out", "bench/results", "directory for the Markdown results file (\"\" to skip)")
	fs.StringVar(&o.profileDir, "cpuprofile-dir", "", "write CPU profiles of mdctl's servers here (<child>.prof), for go tool pprof")
	fs.BoolVar(&o.keep, "keep", false, "keep the scratch directory (server logs) after the run")
	fs.BoolVar(&o.verbose, "v", false, "debug logs")
	fs.StringVar(&o.child, "child", "", "internal: run the named child server (see bench/README.md)")
	if err := fs.Parse(args); err != nil {
		return o, usageError{err}
	}
	if o.quick {
		o.duration, o.warmup = 2*time.Second, time.Second
		if !flagSet(fs, "events-duration") {
			o.pairs.Duration = time.Second
		}
	}
	if o.passes < 1 {
		return o, usageError{fmt.Errorf("-passes %d: want at least 1", o.passes)}
	}
	if o.pairs.Rounds < 1 {
		return o, usageError{fmt.Errorf("-events-rounds %d: want at least 1", o.pairs.Rounds)}
	}
	// A pair's warm-up only lets the consumer's stream settle: a second.
	o.pairs.Warmup = min(o.warmup, time.Second)
	if o.child != "" {
		o.childArgs = fs.Args()
		return o, nil
	}
	if fs.NArg() > 0 {
		return o, usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	// The reference servers start in their own scratch directories, so a
	// relative -reference (the default) must not be resolved from there.
	abs, err := filepath.Abs(o.reference)
	if err != nil {
		return o, usageError{fmt.Errorf("-reference: %w", err)}
	}
	o.reference = abs
	return o, nil
}

// flagSet reports whether name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if o.child != "" {
		return runChild(ctx, o.child, o.childArgs, log)
	}

	all := targets.All()
	chosen, err := choose(all, o.targets)
	if err != nil {
		return usageError{err}
	}
	scens, err := chooseScenarios(targets.Scenarios(), o.scenarios)
	if err != nil {
		return usageError{err}
	}
	modes, err := parseModes(o.modes)
	if err != nil {
		return usageError{err}
	}
	reqs := []rig.Requirement{
		rig.NeedBinary("wrk", rig.InstallWrkHAProxy),
		rig.NeedBinary("taskset", "apt-get install -y util-linux"),
		rig.NeedBinary("go", "install Go 1.26 (https://go.dev/dl/)"),
	}
	for _, t := range chosen {
		reqs = append(reqs, t.Needs...)
	}
	for _, sc := range scens {
		reqs = append(reqs, sc.Needs...)
	}
	if err := rig.CheckRequirements(reqs); err != nil {
		return err
	}

	scratch, err := os.MkdirTemp("", "mdbench-")
	if err != nil {
		return fmt.Errorf("scratch dir: %w", err)
	}
	if o.keep {
		log.Info("keeping scratch dir", "dir", scratch)
	} else {
		defer os.RemoveAll(scratch)
	}
	constsrv, err := rig.BuildConstsrv(ctx, filepath.Join(o.reference, "constsrv"), scratch)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	tools := rig.Tools{
		Wrk: lookPath("wrk"), HAProxy: lookPath("haproxy"), Python: rig.Python, Taskset: lookPath("taskset"),
		Constsrv: constsrv, ReferenceDir: o.reference, Self: self, ProfileDir: o.profileDir,
		ServerCPU: o.serverCPU, LoadCPU: o.loadCPU,
	}
	cfg := rig.Config{
		Duration: o.duration, Warmup: o.warmup, Threads: o.threads, Connections: o.conns,
		Modes: modes, Scratch: scratch, Tools: tools, Proc: rig.Proc{Root: "/proc"},
		ClockTicks: rig.ClockTicks(), Log: log, Pairs: o.pairs, Passes: o.passes,
	}
	started, loadBefore := time.Now(), rig.LoadAvg()
	rows, finds, fails := rig.RunPasses(ctx, cfg, chosen, o.passes)
	sfinds, sfails := rig.RunScenarios(ctx, cfg, scens)
	loadAfter := rig.LoadAvg()
	lines := rig.Lines(rows)
	finds = append(append(finds, sfinds...), targets.Goals(lines)...)
	fails = append(fails, sfails...)
	if err := rig.WriteText(stdout, lines); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	if err := rig.WriteFindings(stdout, finds); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "load average: %s before, %s after\n", loadBefore, loadAfter)
	for _, f := range fails {
		fmt.Fprintf(stdout, "not measured: %s: %v\n", f.Target, f.Err)
	}
	if o.outDir != "" {
		path, err := writeResults(o.outDir, rig.Report{
			When: started, Machine: rig.ReadMachine(versions(tools, o.mdctl)), Config: cfg, Lines: lines, Findings: finds, Failures: fails,
			LoadBefore: loadBefore, LoadAfter: loadAfter,
		})
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, "results:", path)
	}
	if len(fails) > 0 {
		return fmt.Errorf("%d target(s) not measured", len(fails))
	}
	return nil
}

func choose(all []rig.Target, list string) ([]rig.Target, error) {
	if list == "" {
		return all, nil
	}
	var out []rig.Target
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(all, func(t rig.Target) bool { return t.Name == name })
		if i < 0 {
			var names []string
			for _, t := range all {
				names = append(names, t.Name)
			}
			return nil, fmt.Errorf("unknown target %q (have: %s)", name, strings.Join(names, ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}

func chooseScenarios(all []rig.Scenario, list string) ([]rig.Scenario, error) {
	var out []rig.Scenario
	for _, name := range strings.Split(list, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		i := slices.IndexFunc(all, func(s rig.Scenario) bool { return s.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("unknown scenario %q", name)
		}
		out = append(out, all[i])
	}
	return out, nil
}

func parseModes(s string) ([]rig.Mode, error) {
	var out []rig.Mode
	for _, m := range strings.Split(s, ",") {
		switch mode := rig.Mode(strings.TrimSpace(m)); mode {
		case rig.KeepAlive, rig.Close:
			out = append(out, mode)
		default:
			return nil, fmt.Errorf("unknown mode %q (keepalive, close)", m)
		}
	}
	return out, nil
}

func lookPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return name
}

func versions(t rig.Tools, mdctl string) map[string]string {
	v := map[string]string{
		"wrk":     rig.ToolVersion(t.Wrk, "-v"),
		"haproxy": rig.ToolVersion(t.HAProxy, "-v"),
		"nova":    "python3-nova " + rig.ToolVersion("dpkg-query", "-W", "-f", "${Version}", "python3-nova"),
		"python":  rig.ToolVersion(t.Python, "--version"),
	}
	if mdctl != "" {
		v["mdctl"] = rig.ToolVersion(mdctl, "version")
	}
	return v
}

func writeResults(dir string, r rig.Report) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("results dir: %w", err)
	}
	path := filepath.Join(dir, r.When.Format("2006-01-02")+"-"+r.Machine.Host+".md")
	f, err := os.Create(path)
	if err != nil {
		return "", fmt.Errorf("results file: %w", err)
	}
	if err := rig.WriteMarkdown(f, r); err != nil {
		f.Close()
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, f.Close()
}

// runChild runs a server linked into mdbench, started by a target through
// rig.Env.SpawnSelf so that it is its own process, pinned to the server CPU.
func runChild(ctx context.Context, name string, args []string, log *slog.Logger) error {
	fn, ok := targets.Children()[name]
	if !ok {
		return usageError{fmt.Errorf("unknown child server %q", name)}
	}
	return fn(ctx, args, log.With("child", name))
}
