package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
	"github.com/mdctl/mdctl/store/topology"
)

// crawlTool is cloud-init's reader, run as a guest would run it.
var crawlTool = filepath.Join("..", "..", "shared", "tools", "cloudinit-crawl")

// world is one test's universe: a store, a data plane named for this test
// only, and the serve processes (in-process) it started.
type world struct {
	t     *testing.T
	dir   string
	st    *store.SQLite
	dp    dataplane.Options
	log   *slog.Logger
	serve []context.CancelFunc
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, veths and iptables rules")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("needs iptables (make test installs it)")
	}
}

func suffix() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newWorld applies topo (YAML) to a fresh SQLite store.
func newWorld(t *testing.T, topo string) *world {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	st, err := store.OpenSQLite(filepath.Join(dir, "mdctl.db"))
	if err != nil {
		t.Fatal(err)
	}
	s := suffix()
	w := &world{
		t: t, dir: dir, st: st,
		dp:  dataplane.Options{SegmentNamespace: "mdseg-" + s, GuestPrefix: "mdvm" + s + "-"},
		log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	t.Cleanup(w.close)
	w.apply(topo)
	return w
}

func (w *world) apply(topo string) {
	w.t.Helper()
	top, err := topology.Parse([]byte(topo), "topology.yaml")
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := topology.Apply(context.Background(), w.st, top); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) set(key, value string) {
	w.t.Helper()
	if err := w.st.SetSetting(context.Background(), key, value); err != nil {
		w.t.Fatal(err)
	}
}

// close stops every serve, then removes guests and the data plane even
// when the test failed.
func (w *world) close() {
	for _, stop := range w.serve {
		stop()
	}
	ctx := context.Background()
	if err := dataplane.LabDown(ctx, w.dp); err != nil {
		w.t.Errorf("lab down: %v", err)
	}
	if err := dataplane.NewReconciler(w.dp).Teardown(ctx); err != nil {
		w.t.Errorf("teardown: %v", err)
	}
	w.st.Close()
}

// startServe runs `serve` with the given components until stop is called
// (or the test ends). The API listens on loopback at a free port; apiAddr
// returns it.
func (w *world) startServe(components []string, overrides map[string]string) (apiAddr string, stop func()) {
	w.t.Helper()
	o := server.Options{
		Store: w.st, DataDir: w.dir, Components: components, Overrides: overrides,
		Dataplane: w.dp, Poll: 50 * time.Millisecond, Logger: w.log,
	}
	for _, c := range components {
		if c == server.ComponentAPI {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				w.t.Fatal(err)
			}
			o.APIListener, apiAddr = ln, ln.Addr().String()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, o) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					w.t.Errorf("serve %v: %v", components, err)
				}
			case <-time.After(10 * time.Second):
				w.t.Errorf("serve %v did not stop within 10s", components)
			}
		})
	}
	w.serve = append(w.serve, stop)
	return apiAddr, stop
}

// labUp builds a guest per instance port with the routes DHCP would give.
func (w *world) labUp() map[string]dataplane.Guest {
	w.t.Helper()
	ctx := context.Background()
	snap, err := store.NewLive(w.st, nil).Snapshot(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	guests, err := server.LabGuests(ctx, w.st, snap.Config)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := dataplane.LabUp(ctx, w.dp, guests); err != nil {
		w.t.Fatal(err)
	}
	out := map[string]dataplane.Guest{}
	for _, g := range guests {
		out[g.InstanceName] = g
	}
	return out
}

func (w *world) guestNS(name string, guests map[string]dataplane.Guest) string {
	g, ok := guests[name]
	if !ok {
		w.t.Fatalf("no lab guest for %s", name)
	}
	return dataplane.GuestNamespace(w.dp.GuestPrefix, g)
}

// inGuest runs argv inside a guest namespace, bounded in time.
func inGuest(t *testing.T, ns string, timeout time.Duration, argv ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, argv...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// crawl is cloud-init's reader's verdict.
type crawl struct {
	InstanceID     string            `json:"instance_id"`
	Name           string            `json:"name"`
	Hostname       string            `json:"hostname"`
	PublicKeys     map[string]any    `json:"public_keys"`
	UserdataLen    int               `json:"userdata_len"`
	UserdataSHA256 string            `json:"userdata_sha256"`
	NetworkConfig  bool              `json:"network_config"`
	Version        any               `json:"version"`
	Keys           []string          `json:"keys"`
	Error          string            `json:"error"`
	Extra          map[string]string `json:"-"`
}

// runCrawl runs cloudinit-crawl MODE [URL] inside ns and parses its verdict.
func runCrawl(t *testing.T, ns, mode string, args ...string) crawl {
	t.Helper()
	if _, err := os.Stat(crawlTool); err != nil {
		t.Fatalf("cloud-init reader missing at %s (make test sets it up): %v", crawlTool, err)
	}
	out, stderr, err := inGuest(t, ns, 60*time.Second, append([]string{crawlTool, mode}, args...)...)
	var c crawl
	if jerr := json.Unmarshal([]byte(out), &c); jerr != nil {
		t.Fatalf("cloudinit-crawl %s in %s: %v\nstdout: %s\nstderr: %s", mode, ns, errors.Join(err, jerr), out, stderr)
	}
	if err != nil || c.Error != "" {
		t.Fatalf("cloud-init rejected the %s metadata in %s: %v %s\nstderr: %s", mode, ns, err, c.Error, stderr)
	}
	return c
}

// waitFor polls cond up to timeout; the data plane converges asynchronously.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v: %v", what, timeout, err)
}

// curl fetches url from inside ns; it returns the status and body.
func curl(t *testing.T, ns, url string, headers ...string) (int, string) {
	t.Helper()
	argv := []string{"curl", "-s", "-m", "5", "-o", "-", "-w", "\n%{http_code}"}
	for _, h := range headers {
		argv = append(argv, "-H", h)
	}
	out, _, _ := inGuest(t, ns, 10*time.Second, append(argv, url)...)
	i := strings.LastIndex(out, "\n")
	if i < 0 {
		return 0, out
	}
	var code int
	for _, c := range out[i+1:] {
		if c >= '0' && c <= '9' {
			code = code*10 + int(c-'0')
		}
	}
	return code, out[:i]
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// buildMdctl builds the real binary once for a test, for what must run as
// its own process (a TUI in a terminal, the tracer it starts).
func buildMdctl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mdctl")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/mdctl")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/mdctl: %v\n%s", err, out)
	}
	return bin
}

func requireTmux(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("needs tmux to run the TUI in a real terminal (make test installs it)")
	}
}

// terminal is a real terminal: a tmux server of the test's own (its own
// socket, so no other tmux is touched) running one command in a window of
// a fixed size.
type terminal struct {
	t      *testing.T
	socket string
}

// newTerminal runs command in a detached width×height tmux window, killed
// in t.Cleanup. When command exits the window stays, saying how it exited,
// so the screen still explains a crash.
func newTerminal(t *testing.T, width, height int, command string) *terminal {
	t.Helper()
	requireTmux(t)
	term := &terminal{t: t, socket: "mdctl-e2e-" + suffix()}
	t.Cleanup(func() {
		exec.Command("tmux", "-L", term.socket, "kill-server").Run()
	})
	wrapped := command + `; echo "[exited with status $?]"; sleep 600`
	if _, err := term.tmux("new-session", "-d", "-s", "main", "-x", strconv.Itoa(width), "-y", strconv.Itoa(height), wrapped); err != nil {
		t.Fatalf("tmux new-session: %v", err)
	}
	return term
}

func (term *terminal) tmux(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "tmux", append([]string{"-L", term.socket}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("tmux %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// screen is what the terminal shows now, as plain text.
func (term *terminal) screen() string {
	term.t.Helper()
	out, err := term.tmux("capture-pane", "-p", "-t", "main")
	if err != nil {
		term.t.Fatal(err)
	}
	return out
}

// key presses one key (a tmux key name: "j", "Enter", "Escape"). Wait for
// its effect before the next: keys that arrive together are read as one
// string ("jt"), as a paste, and match no binding.
func (term *terminal) key(k string) {
	term.t.Helper()
	if _, err := term.tmux("send-keys", "-t", "main", k); err != nil {
		term.t.Fatal(err)
	}
}

// waitScreen polls the screen until ok accepts it or timeout passes, and
// fails with the last screen; it returns the screen ok accepted.
func (term *terminal) waitScreen(timeout time.Duration, what string, ok func(screen string) bool) string {
	term.t.Helper()
	deadline := time.Now().Add(timeout)
	var s string
	for {
		s = term.screen()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("%s: not on screen within %v; screen:\n%s", what, timeout, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
