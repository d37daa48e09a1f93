package rig

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Target is one server under test. Targets are plain values so a new one
// (mdctl's API, mdctl's proxy hop, a chain from a lab guest) is added by
// writing a Start function and appending it to the list mdbench runs.
type Target struct {
	Name string
	// Peer names the target this one is judged against in the same run
	// (haproxy for a proxy hop, nova for the API); "" for none.
	Peer string
	// Paths are requested one per run, each in every Mode.
	Paths []string
	// Needs lists the tools the target cannot start without; checked
	// before anything runs so a missing package is reported once, with the
	// command that installs it.
	Needs []Requirement
	// Start launches the server processes through env (which pins them to
	// the server core and stops them afterwards) and returns once they
	// listen. It must not run the server inside the rig's own process:
	// the rig's CPU and memory would be counted, and its core is wrk's.
	Start func(ctx context.Context, env *Env) (*Running, error)
}

// Running is a started target.
type Running struct {
	// PIDs are the roots of the process trees whose CPU time and peak RSS
	// are measured. Helpers a target starts but does not own (the constant
	// backend behind a proxy hop) are spawned through Env but left out, so
	// the figures are the hop's alone.
	PIDs []int
	// URL is the base URL wrk loads, without the path: http://127.0.0.1:8080.
	URL string
	// Headers are "Name: value" lines sent with every request (signatures).
	Headers []string
	// LoadPrefix, when set, is the command wrk and the probes run under:
	// `ip netns exec <guest>` loads the chain from inside a lab guest.
	LoadPrefix []string
	// Findings are figures the target measured while starting (a
	// start-up peak RSS), reported beside the table.
	Findings []Finding
	// Events, when set, is the server's live event stream: the rig
	// measures the target again in interleaved pairs, without and with a
	// consumer reading it (see PairConfig).
	Events *EventStream
}

// Env is what a target's Start gets: a scratch directory, the tools, and a
// way to start processes pinned to the server core that the rig stops when
// the target is done.
type Env struct {
	Dir   string // scratch directory of this target: sockets, configs, logs
	Tools Tools
	Log   *slog.Logger

	mu       sync.Mutex
	procs    []*proc
	cleanups []func()

	// Children die with the rig through Pdeathsig, which Linux ties to
	// the thread that forked them, not the process: a goroutine that
	// locks its thread (netns work) and exits takes its thread along and
	// would kill a child forked there. So every child is forked on one
	// locked thread that lives until Stop.
	spawnOnce sync.Once
	spawnc    chan func()
}

// Tools are the paths the targets use.
type Tools struct {
	Wrk, HAProxy, Python, Taskset string
	Constsrv                      string // built by BuildConstsrv
	ReferenceDir                  string // bench/reference: the reference servers' sources
	// Self is the running mdbench executable: targets whose server is Go
	// code linked into mdbench run it as a child, `Self -child NAME args`.
	Self string
	// ProfileDir, when set, makes mdctl's child servers write a CPU
	// profile there (<child>.prof) while they serve.
	ProfileDir string
	ServerCPU  string // CPU list servers are pinned to (taskset -c)
	LoadCPU    string // CPU list wrk is pinned to
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// NewEnv makes the Env of one target under scratch.
func NewEnv(scratch, name string, tools Tools, log *slog.Logger) (*Env, error) {
	dir := filepath.Join(scratch, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("target %s: scratch dir: %w", name, err)
	}
	return &Env{Dir: dir, Tools: tools, Log: log.With("target", name)}, nil
}

// Spawn starts bin pinned to the server CPU, in its own process group, with
// stdout and stderr in Dir/<name>.log. extraEnv entries are KEY=VALUE. The
// returned PID is the server's own: taskset execs it.
func (e *Env) Spawn(name string, extraEnv []string, bin string, args ...string) (int, error) {
	return e.spawnOn(e.Tools.ServerCPU, name, extraEnv, bin, args...)
}

// SpawnLoad is Spawn pinned to the load CPU, beside wrk: a client of the
// server (an event-stream consumer) whose CPU is the load's, not the
// server's. It is not measured: only Running.PIDs are.
func (e *Env) SpawnLoad(name string, extraEnv []string, bin string, args ...string) (int, error) {
	return e.spawnOn(e.Tools.LoadCPU, name, extraEnv, bin, args...)
}

// SpawnSelfLoad is SpawnSelf pinned to the load CPU (see SpawnLoad).
func (e *Env) SpawnSelfLoad(name string, extraEnv []string, child string, args ...string) (int, error) {
	return e.SpawnLoad(name, extraEnv, e.Tools.Self, append([]string{"-child", child, "--"}, args...)...)
}

func (e *Env) spawnOn(cpu, name string, extraEnv []string, bin string, args ...string) (int, error) {
	argv := append([]string{"-c", cpu, bin}, args...)
	cmd := exec.Command(e.Tools.Taskset, argv...)
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.Dir = e.Dir
	logf, err := os.Create(filepath.Join(e.Dir, name+".log"))
	if err != nil {
		return 0, fmt.Errorf("start %s: log file: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group so Stop reaches grandchildren; die with the rig.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := e.onSpawnThread(cmd.Start); err != nil {
		logf.Close()
		return 0, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	e.Log.Debug("started", "proc", name, "pid", cmd.Process.Pid, "argv", strings.Join(cmd.Args, " "))
	return cmd.Process.Pid, nil
}

// onSpawnThread runs start on the Env's spawning thread (see spawnc).
func (e *Env) onSpawnThread(start func() error) error {
	e.spawnOnce.Do(func() {
		e.spawnc = make(chan func())
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for fn := range e.spawnc {
				fn()
			}
		}()
	})
	errc := make(chan error, 1)
	e.spawnc <- func() { errc <- start() }
	return <-errc
}

// SpawnSelf starts a child server linked into mdbench:
// `Self -child NAME -- args`; mdbench's main hands args to the child func.
// With Tools.ProfileDir set, the child gets -cpuprofile DIR/<name>.prof.
func (e *Env) SpawnSelf(name string, extraEnv []string, child string, args ...string) (int, error) {
	if e.Tools.ProfileDir != "" {
		args = append(slices.Clone(args), "-cpuprofile", filepath.Join(e.Tools.ProfileDir, name+".prof"))
	}
	return e.Spawn(name, extraEnv, e.Tools.Self, append([]string{"-child", child, "--"}, args...)...)
}

// Defer registers fn to run when the target is stopped, after its processes
// are gone (remove a socket, close a store).
func (e *Env) Defer(fn func()) {
	e.mu.Lock()
	e.cleanups = append(e.cleanups, fn)
	e.mu.Unlock()
}

// Exited reports an error if any spawned process has already exited, naming
// it and pointing at its log: a server that died at start-up must say why.
func (e *Env) Exited() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%v); see %s", p.name, p.err, filepath.Join(e.Dir, p.name+".log"))
		default:
		}
	}
	return nil
}

// Stop ends every process this Env started (SIGTERM to its group, SIGKILL
// after 5 s), newest first, then runs the deferred cleanups.
func (e *Env) Stop() {
	e.mu.Lock()
	procs, cleanups := e.procs, e.cleanups
	e.procs, e.cleanups = nil, nil
	e.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop()
	}
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	e.mu.Lock()
	if e.spawnc != nil {
		close(e.spawnc)
		e.spawnc = nil
	}
	e.mu.Unlock()
}

// StopPID ends one process this Env started, before the target is done
// (a consumer that runs for one measured run), and forgets it, so Exited
// does not take its end for a crash. Its error is how it exited, naming
// its log; an unknown pid is an error.
func (e *Env) StopPID(pid int) error {
	e.mu.Lock()
	i := slices.IndexFunc(e.procs, func(p *proc) bool { return p.cmd.Process.Pid == pid })
	if i < 0 {
		e.mu.Unlock()
		return fmt.Errorf("stop pid %d: not started by this target", pid)
	}
	p := e.procs[i]
	e.procs = slices.Delete(e.procs, i, i+1)
	e.mu.Unlock()
	p.stop()
	if p.err != nil {
		return fmt.Errorf("%s exited (%v); see %s", p.name, p.err, filepath.Join(e.Dir, p.name+".log"))
	}
	return nil
}

// stop sends SIGTERM to the process group, SIGKILL after 5 s, and waits.
func (p *proc) stop() {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// WaitReady polls GET url until it answers 200 (with headers), a spawned
// process exits, or timeout passes.
func (e *Env) WaitReady(ctx context.Context, url string, headers []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		if err := e.Exited(); err != nil {
			return err
		}
		last = Probe(ctx, client, url, headers)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %w", url, timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ProbeIn is Probe from where the load runs: with a prefix, curl runs
// under it (inside a guest namespace, where mdbench's own client cannot
// go); without one it is Probe.
func ProbeIn(ctx context.Context, prefix []string, client *http.Client, url string, headers []string) error {
	if len(prefix) == 0 {
		return Probe(ctx, client, url, headers)
	}
	argv := append(slices.Clone(prefix), "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5")
	for _, h := range headers {
		argv = append(argv, "-H", h)
	}
	argv = append(argv, url)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
	if err != nil {
		return fmt.Errorf("GET %s via %s: %w", url, strings.Join(prefix, " "), err)
	}
	if code := strings.TrimSpace(string(out)); code != "200" {
		return fmt.Errorf("GET %s via %s: status %s", url, strings.Join(prefix, " "), code)
	}
	return nil
}

// WaitReadyIn is WaitReady from under a load prefix (see ProbeIn).
func (e *Env) WaitReadyIn(ctx context.Context, prefix []string, url string, headers []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		if err := e.Exited(); err != nil {
			return err
		}
		if last = ProbeIn(ctx, prefix, client, url, headers); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %w", url, timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Probe does one GET with headers and wants 200: the rig refuses to load a
// path that answers anything else (a wrong signature would be measured as a
// fast 403).
func Probe(ctx context.Context, client *http.Client, url string, headers []string) error {
	_, err := Get(ctx, client, url, headers)
	return err
}

// Get does one GET with headers ("Name: value" lines) and returns the body
// of its 200; any other status is an error.
func Get(ctx context.Context, client *http.Client, url string, headers []string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return "", fmt.Errorf("header %q is not Name: value", h)
		}
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	return string(body), nil
}

// FreeAddr is FreePort as a 127.0.0.1:port address.
func FreeAddr() (string, error) {
	port, err := FreePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(port), nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// PortFree fails if something already listens on addr (a fixed port in a
// reference config, e.g. haproxy's 9697).
func PortFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s is taken (another server or a bench run still up?): %w", addr, err)
	}
	return ln.Close()
}

// errNoPIDs is returned when a target starts nothing to measure.
var errNoPIDs = errors.New("target returned no PIDs to measure")
