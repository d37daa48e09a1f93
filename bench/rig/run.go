package rig

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// Config is the load every target gets, identical for all of them.
type Config struct {
	Duration    time.Duration // measured run, per target × mode × path
	Warmup      time.Duration // unmeasured run just before it
	Threads     int
	Connections int
	Modes       []Mode
	Scratch     string // temp dir for scripts, sockets, logs
	Tools       Tools
	Proc        Proc
	ClockTicks  uint64 // USER_HZ
	Log         *slog.Logger
	// Pairs sets the with/without-consumer runs of targets that have an
	// event stream (Running.Events).
	Pairs PairConfig
	// Passes is how many times the target list ran (RunPasses), for the
	// report; 0 or 1: once.
	Passes int
}

// Row is one measured run.
type Row struct {
	Target, Peer string
	Mode         Mode
	Path         string
	Wrk          WrkResult
	CPUPerReq    float64 // µs of server CPU (utime+stime) per completed request
	PeakRSS      uint64  // bytes, VmHWM summed over the measured tree
}

// Failure is a target that could not be measured, with why.
type Failure struct {
	Target string
	Err    error
}

// Run starts each target in turn, loads each of its paths in each mode, and
// stops it. A target that fails is recorded and the next one runs: one broken
// server must not cost the figures of the others.
func Run(ctx context.Context, cfg Config, targets []Target) ([]Row, []Finding, []Failure) {
	var rows []Row
	var finds []Finding
	var fails []Failure
	for _, t := range targets {
		if ctx.Err() != nil {
			fails = append(fails, Failure{t.Name, ctx.Err()})
			continue
		}
		r, f, err := runTarget(ctx, cfg, t)
		rows = append(rows, r...)
		finds = append(finds, f...)
		if err != nil {
			cfg.Log.Error("target failed", "target", t.Name, "err", err)
			fails = append(fails, Failure{t.Name, err})
		}
	}
	return rows, finds, fails
}

func runTarget(ctx context.Context, cfg Config, t Target) ([]Row, []Finding, error) {
	env, err := NewEnv(cfg.Scratch, t.Name, cfg.Tools, cfg.Log)
	if err != nil {
		return nil, nil, err
	}
	defer env.Stop()
	cfg.Log.Info("starting", "target", t.Name)
	running, err := t.Start(ctx, env)
	if err != nil {
		return nil, nil, fmt.Errorf("start: %w", err)
	}
	if len(running.PIDs) == 0 {
		return nil, nil, errNoPIDs
	}
	finds := running.Findings
	client := &http.Client{Timeout: 5 * time.Second}
	for _, p := range t.Paths {
		if err := ProbeIn(ctx, running.LoadPrefix, client, running.URL+p, running.Headers); err != nil {
			return nil, finds, fmt.Errorf("probe before load: %w", err)
		}
	}
	var rows []Row
	for _, mode := range cfg.Modes {
		for _, path := range t.Paths {
			row, _, err := measure(ctx, cfg, env, running, mode, path)
			if err != nil {
				return rows, finds, fmt.Errorf("%s %s: %w", mode, path, err)
			}
			row.Target, row.Peer = t.Name, t.Peer
			cfg.Log.Info("measured", "target", t.Name, "mode", mode, "path", path,
				"req/s", int(row.Wrk.ReqPerSec), "cpu_us_per_req", fmt.Sprintf("%.1f", row.CPUPerReq))
			rows = append(rows, row)
		}
	}
	if running.Events != nil && cfg.Pairs.Duration > 0 {
		prows, pfinds, err := measurePairs(ctx, cfg, env, t, running)
		rows, finds = append(rows, prows...), append(finds, pfinds...)
		if err != nil {
			return rows, finds, fmt.Errorf("event stream pairs: %w", err)
		}
	}
	return rows, finds, nil
}

// measurePairs measures each mode and path again in cfg.Pairs.Rounds
// rounds of (without consumer, with consumer) on the running server, so
// drift on a shared machine hits both sides alike; it returns the mean
// rows and one finding per mode and path.
func measurePairs(ctx context.Context, cfg Config, env *Env, t Target, r *Running) ([]Row, []Finding, error) {
	pc := cfg
	pc.Duration, pc.Warmup = cfg.Pairs.Duration, cfg.Pairs.Warmup
	rounds := max(cfg.Pairs.Rounds, 1)
	var rows []Row
	var finds []Finding
	for _, mode := range cfg.Modes {
		for _, path := range t.Paths {
			p := Pair{Target: t.Name, Peer: t.Peer, Mode: mode, Path: path, LoadCPU: cfg.Tools.LoadCPU}
			for range rounds {
				off, _, err := measure(ctx, pc, env, r, mode, path)
				if err != nil {
					return rows, finds, fmt.Errorf("%s %s without consumer: %w", mode, path, err)
				}
				p.Off = append(p.Off, off)
				if err := measureOn(ctx, pc, env, r, &p); err != nil {
					return rows, finds, fmt.Errorf("%s %s with consumer: %w", mode, path, err)
				}
			}
			off, on := p.Rows()
			cfg.Log.Info("measured pair", "target", t.Name, "mode", mode, "path", path,
				"ratio", fmt.Sprintf("%.3f", p.RateRatio()), "events", p.Received, "dropped", p.Dropped)
			rows = append(rows, off, on)
			finds = append(finds, p.Finding())
		}
	}
	return rows, finds, nil
}

// measureOn is one run with a consumer reading the stream from before the
// warm-up to after the measured run; it adds the row and the stream's
// counts to p.
func measureOn(ctx context.Context, cfg Config, env *Env, r *Running, p *Pair) error {
	dropped0, err := r.Events.Dropped(ctx)
	if err != nil {
		return err
	}
	stop, err := r.Events.Consume(ctx, env)
	if err != nil {
		return fmt.Errorf("start consumer: %w", err)
	}
	row, warm, err := measure(ctx, cfg, env, r, p.Mode, p.Path)
	received, serr := stop()
	if err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("consumer: %w", serr)
	}
	dropped1, err := r.Events.Dropped(ctx)
	if err != nil {
		return err
	}
	p.On = append(p.On, row)
	p.Received += received
	p.OnRequests += warm + row.Wrk.Requests
	if dropped1 >= dropped0 {
		p.Dropped += dropped1 - dropped0
	}
	return nil
}

// measure runs the warm-up, then the measured run between two CPU samples
// and a peak-RSS reset/read. It also returns the warm-up's request count.
func measure(ctx context.Context, cfg Config, env *Env, r *Running, mode Mode, path string) (Row, uint64, error) {
	script := filepath.Join(cfg.Scratch, "wrk-"+string(mode)+".lua")
	if err := os.WriteFile(script, []byte(LuaScript(mode)), 0o644); err != nil {
		return Row{}, 0, fmt.Errorf("write wrk script: %w", err)
	}
	url := r.URL + path
	var warm WrkResult
	if cfg.Warmup > 0 {
		var err error
		if warm, err = runWrk(ctx, cfg, r.LoadPrefix, script, r.Headers, url, cfg.Warmup); err != nil {
			return Row{}, 0, fmt.Errorf("warm-up: %w", err)
		}
	}
	if err := cfg.Proc.ResetPeakRSS(r.PIDs); err != nil {
		return Row{}, 0, err
	}
	before, err := cfg.Proc.TreeTicks(r.PIDs)
	if err != nil {
		return Row{}, 0, fmt.Errorf("CPU before: %w", err)
	}
	res, err := runWrk(ctx, cfg, r.LoadPrefix, script, r.Headers, url, cfg.Duration)
	if err != nil {
		return Row{}, 0, err
	}
	after, err := cfg.Proc.TreeTicks(r.PIDs)
	if err != nil {
		return Row{}, 0, fmt.Errorf("CPU after: %w", err)
	}
	rss, err := cfg.Proc.PeakRSS(r.PIDs)
	if err != nil {
		return Row{}, 0, fmt.Errorf("peak RSS: %w", err)
	}
	if err := env.Exited(); err != nil {
		return Row{}, 0, err
	}
	row := Row{Mode: mode, Path: path, Wrk: res, PeakRSS: rss}
	if res.Requests > 0 && after >= before {
		row.CPUPerReq = float64(after-before) * 1e6 / float64(cfg.ClockTicks) / float64(res.Requests)
	}
	return row, warm.Requests, nil
}

// runWrk runs wrk pinned to the load CPU (under prefix, when set) and
// parses its output.
func runWrk(ctx context.Context, cfg Config, prefix []string, script string, headers []string, url string, d time.Duration) (WrkResult, error) {
	secs := int(d.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	args := []string{"-c", cfg.Tools.LoadCPU, cfg.Tools.Wrk,
		"-t", strconv.Itoa(cfg.Threads), "-c", strconv.Itoa(cfg.Connections),
		"-d", strconv.Itoa(secs) + "s", "--timeout", "5s", "--latency", "-s", script}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	args = append(args, url)
	argv := append(append(slices.Clone(prefix), cfg.Tools.Taskset), args...)
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return WrkResult{}, fmt.Errorf("wrk %s: %w: %s", url, err, truncate(string(out)))
	}
	return ParseWrk(string(out))
}

// Scenario is a measurement that is not a wrk run of one server (a boot
// storm of lab guests): it gets an Env like a target and returns its
// figures as findings.
type Scenario struct {
	Name  string
	Needs []Requirement
	Run   func(ctx context.Context, env *Env) ([]Finding, error)
}

// RunScenarios runs each scenario in turn with its own Env, stopped after
// it; a failed one is recorded and the next runs.
func RunScenarios(ctx context.Context, cfg Config, scens []Scenario) ([]Finding, []Failure) {
	var finds []Finding
	var fails []Failure
	for _, s := range scens {
		if ctx.Err() != nil {
			fails = append(fails, Failure{s.Name, ctx.Err()})
			continue
		}
		f, err := runScenario(ctx, cfg, s)
		finds = append(finds, f...)
		if err != nil {
			cfg.Log.Error("scenario failed", "scenario", s.Name, "err", err)
			fails = append(fails, Failure{s.Name, err})
		}
	}
	return finds, fails
}

func runScenario(ctx context.Context, cfg Config, s Scenario) ([]Finding, error) {
	env, err := NewEnv(cfg.Scratch, s.Name, cfg.Tools, cfg.Log)
	if err != nil {
		return nil, err
	}
	defer env.Stop()
	cfg.Log.Info("starting", "scenario", s.Name)
	return s.Run(ctx, env)
}
