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
			row, err := measure(ctx, cfg, env, running, mode, path)
			if err != nil {
				return rows, finds, fmt.Errorf("%s %s: %w", mode, path, err)
			}
			row.Target, row.Peer = t.Name, t.Peer
			cfg.Log.Info("measured", "target", t.Name, "mode", mode, "path", path,
				"req/s", int(row.Wrk.ReqPerSec), "cpu_us_per_req", fmt.Sprintf("%.1f", row.CPUPerReq))
			rows = append(rows, row)
		}
	}
	return rows, finds, nil
}

// measure runs the warm-up, then the measured run between two CPU samples
// and a peak-RSS reset/read.
func measure(ctx context.Context, cfg Config, env *Env, r *Running, mode Mode, path string) (Row, error) {
	script := filepath.Join(cfg.Scratch, "wrk-"+string(mode)+".lua")
	if err := os.WriteFile(script, []byte(LuaScript(mode)), 0o644); err != nil {
		return Row{}, fmt.Errorf("write wrk script: %w", err)
	}
	url := r.URL + path
	if cfg.Warmup > 0 {
		if _, err := runWrk(ctx, cfg, r.LoadPrefix, script, r.Headers, url, cfg.Warmup); err != nil {
			return Row{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	if err := cfg.Proc.ResetPeakRSS(r.PIDs); err != nil {
		return Row{}, err
	}
	before, err := cfg.Proc.TreeTicks(r.PIDs)
	if err != nil {
		return Row{}, fmt.Errorf("CPU before: %w", err)
	}
	res, err := runWrk(ctx, cfg, r.LoadPrefix, script, r.Headers, url, cfg.Duration)
	if err != nil {
		return Row{}, err
	}
	after, err := cfg.Proc.TreeTicks(r.PIDs)
	if err != nil {
		return Row{}, fmt.Errorf("CPU after: %w", err)
	}
	rss, err := cfg.Proc.PeakRSS(r.PIDs)
	if err != nil {
		return Row{}, fmt.Errorf("peak RSS: %w", err)
	}
	if err := env.Exited(); err != nil {
		return Row{}, err
	}
	row := Row{Mode: mode, Path: path, Wrk: res, PeakRSS: rss}
	if res.Requests > 0 && after >= before {
		row.CPUPerReq = float64(after-before) * 1e6 / float64(cfg.ClockTicks) / float64(res.Requests)
	}
	return row, nil
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
