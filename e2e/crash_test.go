package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/dataplane"
)

// Crashes and restarts of the real binary: serve runs as its own process,
// as systemd runs it, so that kill -9 leaves what a crash leaves (orphaned
// dnsmasq, a held lock, half-written state) and the next start must cope.

// serveProc is one `mdctl serve` process on a World's data dir.
type serveProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set when done closes
	log  string
}

// freeAPIAddr is a free port on 127.0.0.1 for serve's --api-listen; the
// store's nova_metadata_port is set to it so that the agent finds the API.
func freeAPIAddr(t *testing.T, w *testworld.World) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	w.Set("nova_metadata_port", testworld.Port(addr))
	return addr
}

// binWorld is a routed World for serve as its own process: the binary
// and the API address serve is to listen on. Rate limits are off: the
// tests' load is many times a guest's boot, and 429s are not what they
// measure.
func binWorld(t *testing.T) (w *testworld.World, bin, apiAddr string) {
	t.Helper()
	w = testworld.New(t, testworld.RoutedTopo)
	bin = buildMdctl(t)
	apiAddr = freeAPIAddr(t, w)
	w.Set("metadata_rate_limiting.rate_limit_enabled", "false")
	return w, bin, apiAddr
}

// startServeBin starts `mdctl serve` on w's data dir. The process is
// stopped (SIGTERM, then SIGKILL) when the test ends, before the World
// tears down, and its log goes to t.Log if the test failed.
func startServeBin(t *testing.T, w *testworld.World, bin, apiAddr string, args ...string) *serveProc {
	t.Helper()
	return startServeArgs(t, bin, append([]string{"--data-dir", w.Dir, "serve", "--api-listen", apiAddr}, args...)...)
}

// startServeArgs starts bin with argv (a serve), stopped and its log
// reported as startServeBin's.
func startServeArgs(t *testing.T, bin string, argv ...string) *serveProc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "serve.log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: exec.Command(bin, argv...), done: make(chan struct{}), log: logPath}
	p.cmd.Stdout, p.cmd.Stderr = lf, lf
	if err := p.cmd.Start(); err != nil {
		lf.Close()
		t.Fatalf("start mdctl serve: %v", err)
	}
	go func() { p.err = p.cmd.Wait(); lf.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM, 15*time.Second)
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("serve pid %d log:\n%s", p.cmd.Process.Pid, tail(string(b), 4000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// stop sends sig and waits up to grace for the process to exit, then
// kills it. It reports how long the exit took and whether it came within
// grace.
func (p *serveProc) stop(sig syscall.Signal, grace time.Duration) (took time.Duration, inGrace bool) {
	start := time.Now()
	select {
	case <-p.done:
		return 0, true
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return time.Since(start), true
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return time.Since(start), false
	}
}

// load keeps every guest fetching meta_data.json until stop; it counts
// answers by outcome.
type load struct {
	ok, failed atomic.Int64
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(namespaces []string, perGuest int) *load {
	l := &load{stop: make(chan struct{})}
	for _, ns := range namespaces {
		c := nsHTTPClient(ns)
		c.Timeout = 3 * time.Second
		for range perGuest {
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				for {
					select {
					case <-l.stop:
						return
					default:
					}
					resp, err := c.Get("http://169.254.169.254/openstack/latest/meta_data.json")
					if err == nil {
						resp.Body.Close()
					}
					if err == nil && resp.StatusCode == 200 {
						l.ok.Add(1)
					} else {
						l.failed.Add(1)
						time.Sleep(20 * time.Millisecond)
					}
				}
			}()
		}
	}
	return l
}

func (l *load) end() { close(l.stop); l.wg.Wait() }

// worldNamespaces lists the namespaces of w's data plane: its segment,
// guests, and the router and DHCP namespaces of what its store holds.
func worldNamespaces(t *testing.T, w *testworld.World) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	ids := map[string]bool{}
	ctx := context.Background()
	routers, _ := w.Store.ListRouters(ctx)
	for _, r := range routers {
		ids[dataplane.RouterNSPrefix+r.ID] = true
	}
	networks, _ := w.Store.ListNetworks(ctx)
	for _, n := range networks {
		ids[dataplane.DHCPNSPrefix+n.ID] = true
	}
	var mine []string
	for _, l := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(l), " ")
		if name == "" {
			continue
		}
		if ids[name] || name == w.Dataplane.SegmentNamespace || strings.HasPrefix(name, w.Dataplane.GuestPrefix) {
			mine = append(mine, name)
		}
	}
	slices.Sort(mine)
	return mine
}

// dnsmasqPids lists the dnsmasq processes that serve w's networks: those
// whose command line names w's DHCP state dir, wherever they run.
func dnsmasqPids(t *testing.T, w *testworld.World) []int {
	t.Helper()
	return dnsmasqPidsIn(t, w.Dataplane.DHCPStateDir())
}

// dnsmasqPidsIn lists the dnsmasq processes whose command line names the
// DHCP state dir dir.
func dnsmasqPidsIn(t *testing.T, dir string) []int {
	t.Helper()
	return pidsWhere(t, func(argv []string, cmdline string) bool {
		return filepath.Base(argv[0]) == "dnsmasq" && strings.Contains(cmdline, dir)
	})
}

// pidsWhere lists, sorted, the processes whose command line ok accepts
// (argv has at least one element).
func pidsWhere(t *testing.T, ok func(argv []string, cmdline string) bool) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		if ok(strings.Split(string(cmdline), "\x00"), string(cmdline)) {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids
}

// assertNoDuplicateRules fails when iptables-save of ns holds a rule twice.
func assertNoDuplicateRules(t *testing.T, ns string) string {
	t.Helper()
	dump := ruleDump(t, ns)
	seen := map[string]bool{}
	table := ""
	for _, l := range strings.Split(dump, "\n") {
		if strings.HasPrefix(l, "*") {
			table = l
		}
		if strings.HasPrefix(l, "-A ") && seen[table+l] {
			t.Errorf("%s: rule twice in %s: %s", ns, table, l)
		}
		seen[table+l] = true
	}
	return dump
}

// postPassword posts pw as the guest's password through the chain.
func postPassword(t *testing.T, ns, pw string) {
	t.Helper()
	c := nsHTTPClient(ns)
	c.Timeout = 10 * time.Second
	resp, err := c.Post("http://169.254.169.254/openstack/latest/password", "text/plain", strings.NewReader(pw))
	if err != nil {
		t.Fatalf("post password: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("post password: status %d", resp.StatusCode)
	}
}

// runTrace runs `mdctl trace instance` and fails the test unless every hop
// passes.
func runTrace(t *testing.T, w *testworld.World, bin, instance string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--data-dir", w.Dir, "trace", instance).CombinedOutput()
	if err != nil {
		t.Errorf("mdctl trace %s: %v\n%s", instance, err, out)
	}
}

// TestKill9UnderLoadRecovers: serve (the real binary) is killed with
// SIGKILL while guests fetch from it; started again, it serves them again
// at once, adopting what the dead one left: the same namespaces, one set of
// rules per router, one dnsmasq per DHCP network (the orphan ended, not
// doubled), the password a guest posted before the crash, and a green trace.
func TestKill9UnderLoadRecovers(t *testing.T) {
	w, bin, api := binWorld(t)
	first := startServeBin(t, w, bin, api)
	w.LabUp()
	guests := []string{w.GuestNS("vm1"), w.GuestNS("vm2")}
	for _, ns := range guests {
		waitServing(t, ns)
	}
	postPassword(t, guests[0], "crash-proof-password")
	router := w.RouterNS("r1")
	rulesBefore := assertNoDuplicateRules(t, router)
	nsBefore := worldNamespaces(t, w)
	dnsBefore := dnsmasqPids(t, w)

	l := startLoad(guests, 4)
	defer l.end()
	time.Sleep(time.Second)
	okBefore := l.ok.Load()
	if okBefore == 0 {
		t.Fatalf("no answers under load before the crash (%d failures)", l.failed.Load())
	}
	if _, inGrace := first.stop(syscall.SIGKILL, 10*time.Second); !inGrace {
		t.Fatal("serve did not die of SIGKILL")
	}
	time.Sleep(500 * time.Millisecond) // guests fail for a while
	okAtCrash := l.ok.Load()

	restart := time.Now()
	startServeBin(t, w, bin, api)
	var back time.Duration
	testworld.WaitFor(t, 20*time.Second, "answers under load after the restart", func() error {
		if l.ok.Load() <= okAtCrash {
			return errors.New("no answer yet")
		}
		back = time.Since(restart)
		return nil
	})
	t.Logf("under load from %d guests × 4: %d answers before the crash; served again %v after serve was started again (goal: 2s)",
		len(guests), okBefore, back.Round(time.Millisecond))
	for _, ns := range guests {
		waitServing(t, ns)
	}
	l.end()
	l.stop = make(chan struct{}) // the deferred end has nothing left to stop

	if after := assertNoDuplicateRules(t, router); after != rulesBefore {
		t.Errorf("rules changed across kill -9 and restart:\nbefore:\n%s\nafter:\n%s", rulesBefore, after)
	}
	if n := strings.Count(ruleDump(t, router), "--to-ports 9697"); n != 1 {
		t.Errorf("%d REDIRECT rules after restart, want 1", n)
	}
	if nsAfter := worldNamespaces(t, w); !slices.Equal(nsAfter, nsBefore) {
		t.Errorf("namespaces before the crash %v, after the restart %v", nsBefore, nsAfter)
	}
	var dnsAfter []int
	testworld.WaitFor(t, 10*time.Second, "one dnsmasq per DHCP network again", func() error {
		dnsAfter = dnsmasqPids(t, w)
		if len(dnsAfter) != len(dnsBefore) {
			return fmt.Errorf("dnsmasq pids %v, before the crash %v", dnsAfter, dnsBefore)
		}
		return nil
	})
	t.Logf("dnsmasq before the crash %v, after the restart %v", dnsBefore, dnsAfter)

	code, body := testworld.Curl(guests[0], "http://169.254.169.254/openstack/latest/password")
	if code != 200 || body != "crash-proof-password" {
		t.Errorf("password after kill -9: status %d %q, want the one posted before", code, body)
	}
	runTrace(t, w, bin, "vm1")
}

// unitStopTimeout is TimeoutStopSec of the systemd unit: the grace period
// serve is given before systemd kills it.
func unitStopTimeout(t *testing.T) time.Duration {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testworld.ModuleRoot(t), "dist/systemd/mdctl.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "TimeoutStopSec="); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				t.Fatalf("TimeoutStopSec=%s: %v", v, err)
			}
			return d
		}
	}
	t.Fatal("the unit sets no TimeoutStopSec")
	return 0
}

// TestSIGTERMStopsWithinGrace: SIGTERM under load ends serve within the
// unit's TimeoutStopSec, with status 0, and leaves what the README says:
// namespaces and rules stay (one set, for the next start to adopt), the
// proxies, the sockets and the DHCP servers go, so a guest's request is
// refused at once rather than hanging. The next serve serves again.
func TestSIGTERMStopsWithinGrace(t *testing.T) {
	w, bin, api := binWorld(t)
	p := startServeBin(t, w, bin, api)
	w.LabUp()
	guest := w.GuestNS("vm1")
	waitServing(t, guest)
	router := w.RouterNS("r1")
	rulesBefore := assertNoDuplicateRules(t, router)
	nsBefore := worldNamespaces(t, w)
	if len(dnsmasqPids(t, w)) == 0 {
		t.Fatal("no dnsmasq before the stop: nothing to check")
	}

	l := startLoad([]string{guest, w.GuestNS("vm2")}, 4)
	time.Sleep(500 * time.Millisecond)
	grace := unitStopTimeout(t)
	took, inGrace := p.stop(syscall.SIGTERM, grace)
	l.end()
	t.Logf("SIGTERM under load: serve exited after %v (grace: TimeoutStopSec=%v), status %v", took.Round(time.Millisecond), grace, p.err)
	if !inGrace {
		t.Fatalf("serve still ran %v after SIGTERM", grace)
	}
	if p.err != nil {
		t.Errorf("serve exited with %v after SIGTERM, want status 0", p.err)
	}

	if after := assertNoDuplicateRules(t, router); after != rulesBefore {
		t.Errorf("rules changed by the stop:\nbefore:\n%s\nafter:\n%s", rulesBefore, after)
	}
	if nsAfter := worldNamespaces(t, w); !slices.Equal(nsAfter, nsBefore) {
		t.Errorf("namespaces before the stop %v, after %v: they should stay", nsBefore, nsAfter)
	}
	if pids := dnsmasqPids(t, w); len(pids) != 0 {
		t.Errorf("dnsmasq %v still runs after serve stopped", pids)
	}
	for _, sock := range []string{"metadata_proxy", "admin.sock"} {
		if _, err := os.Stat(filepath.Join(w.Dir, sock)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after the stop: %v, want it removed", sock, err)
		}
	}
	start := time.Now()
	code, _ := testworld.Curl(guest, "http://169.254.169.254/openstack")
	refused := time.Since(start)
	t.Logf("a guest's request with serve stopped: status %d after %v", code, refused.Round(time.Millisecond))
	if code == 200 {
		t.Error("a guest was answered with serve stopped")
	}
	if refused > 10*time.Second {
		t.Errorf("a guest's request hung %v with serve stopped, want it refused", refused)
	}

	startServeBin(t, w, bin, api)
	waitServing(t, guest)
}

// loadedWorld is a World whose serve is the real binary, with guests
// fetching from it until the test ends.
type loadedWorld struct {
	*testworld.World
	bin  string
	load *load
}

func newLoadedWorld(t *testing.T) loadedWorld {
	t.Helper()
	w, bin, api := binWorld(t)
	startServeBin(t, w, bin, api)
	w.LabUp()
	guests := []string{w.GuestNS("vm1"), w.GuestNS("vm2")}
	for _, ns := range guests {
		waitServing(t, ns)
	}
	l := startLoad(guests, 2)
	t.Cleanup(l.end) // before serve stops: cleanups run last first
	return loadedWorld{World: w, bin: bin, load: l}
}
