package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
)

// startCLIServe runs `mdctl serve` on dataDir in a goroutine, as main would;
// stop cancels it and returns its exit code and logs.
func startCLIServe(t *testing.T, dataDir string, args ...string) (stop func() (int, string)) {
	t.Helper()
	stop, _ = startCLIServeLogs(t, dataDir, args...)
	return stop
}

// startCLIServeLogs is startCLIServe that also says where serve logs.
func startCLIServeLogs(t *testing.T, dataDir string, args ...string) (stop func() (int, string), logPath string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	// A file, not a buffer: serve writes to it from its own goroutines.
	logs, err := os.Create(filepath.Join(t.TempDir(), "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	io := &iostreams{In: strings.NewReader(""), Out: logs, ErrOut: logs}
	done := make(chan int, 1)
	env := func(k string) string {
		if k == "MDCTL_DATA_DIR" {
			return dataDir
		}
		return ""
	}
	go func() { done <- run(ctx, append([]string{"serve", "--api-listen", "127.0.0.1:0"}, args...), io, env) }()
	var once sync.Once
	code := -1
	stop = func() (int, string) {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(15 * time.Second):
				t.Errorf("serve on %s did not stop within 15s", dataDir)
			}
		})
		logs.Close()
		b, _ := os.ReadFile(logs.Name())
		return code, string(b)
	}
	t.Cleanup(func() { stop() })
	return stop, logs.Name()
}

// cliWorld is one data dir driven through the command line: its store
// seeded, its serve started, its lab guests up.
type cliWorld struct {
	dir   string
	names dataplane.Options
	stop  func() (int, string)
	vm1   string // vm1's instance id in this store
}

func newCLIWorld(t *testing.T) *cliWorld {
	t.Helper()
	w := &cliWorld{dir: t.TempDir()}
	var err error
	if w.names, err = dataplane.ForDataDir(w.dir, ""); err != nil {
		t.Fatal(err)
	}
	// Removed even when the test fails, after the serve has stopped
	// (cleanups run last-in first-out).
	t.Cleanup(func() {
		if code, _, stderr := runCLI(t, w.dir, "", "cleanup", "--force"); code != 0 {
			t.Errorf("cleanup %s: %s", w.dir, stderr)
		}
	})
	if code, _, stderr := runCLI(t, w.dir, testworld.RoutedTopo, "apply", "-f", "-"); code != 0 {
		t.Fatalf("apply: %s", stderr)
	}
	st, err := store.Open(w.dir, "")
	if err != nil {
		t.Fatal(err)
	}
	in, err := st.GetInstance(context.Background(), "vm1")
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	w.vm1 = in.ID
	w.stop = startCLIServe(t, w.dir)
	return w
}

func (w *cliWorld) guest() string { return w.names.GuestPrefix + "vm1" }

// serving waits until vm1's guest reads its own instance id through this
// world's serve.
func (w *cliWorld) serving(t *testing.T, what string) {
	t.Helper()
	testworld.WaitFor(t, 20*time.Second, what, func() error {
		code, body := testworld.Curl(w.guest(), "http://169.254.169.254/openstack/latest/meta_data.json")
		if code != 200 || !strings.Contains(body, w.vm1) {
			return fmt.Errorf("%s: status %d body %.80q, want vm1's id %s", w.guest(), code, body, w.vm1)
		}
		return nil
	})
}

// TestTwoDataDirsSideBySide: two serves on two data dirs, with the same
// topology (the same CIDRs, the same instance names), each serve its own
// guests; then lab down and cleanup of one leave the other's namespaces,
// guests, rules and dnsmasq alone, and it keeps serving.
func TestTwoDataDirsSideBySide(t *testing.T) {
	testworld.RequireRoot(t)
	a, b := newCLIWorld(t), newCLIWorld(t)
	if a.names.SegmentNamespace == b.names.SegmentNamespace || a.names.GuestPrefix == b.names.GuestPrefix {
		t.Fatalf("two data dirs share names: %+v %+v", a.names, b.names)
	}
	for _, w := range []*cliWorld{a, b} {
		if code, _, stderr := runCLI(t, w.dir, "", "lab", "up", "--routes", "static"); code != 0 {
			t.Fatalf("lab up %s: %s", w.dir, stderr)
		}
	}
	a.serving(t, "a serves its guest")
	b.serving(t, "b serves its guest")

	bNamespaces := []string{b.names.SegmentNamespace, b.guest()}
	for _, r := range routersOf(t, b.dir) {
		bNamespaces = append(bNamespaces, dataplane.RouterNamespace(r))
	}
	if code, _, stderr := runCLI(t, a.dir, "", "lab", "down"); code != 0 {
		t.Fatalf("lab down a: %s", stderr)
	}
	if code, logs := a.stop(); code != 0 {
		t.Fatalf("serve a exited %d:\n%s", code, logs)
	}
	if code, _, stderr := runCLI(t, a.dir, "", "cleanup"); code != 0 {
		t.Fatalf("cleanup a: %s", stderr)
	}
	for _, ns := range []string{a.names.SegmentNamespace, a.guest()} {
		if ok, _ := dataplane.NamespaceExists(ns); ok {
			t.Errorf("a's %s survived its cleanup", ns)
		}
	}
	for _, ns := range bNamespaces {
		if ok, err := dataplane.NamespaceExists(ns); !ok {
			t.Errorf("b's %s is gone after a's lab down and cleanup (%v)", ns, err)
		}
	}
	b.serving(t, "b serves on after a's cleanup")
	if _, logs := b.stop(); strings.Contains(logs, "removing namespace") {
		t.Errorf("b removed a namespace:\n%s", logs)
	}
}

func routersOf(t *testing.T, dir string) []string {
	t.Helper()
	st, err := store.Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rs, err := st.ListRouters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	return ids
}

func TestForDataDirNames(t *testing.T) {
	legacy, err := dataplane.ForDataDir(dataplane.LegacyDataDir, "")
	if err != nil || legacy.SegmentNamespace != dataplane.DefaultSegmentNamespace || legacy.GuestPrefix != dataplane.DefaultGuestPrefix {
		t.Errorf("the default data dir must keep mdctl-seg and mdctl-vm-: %+v %v", legacy, err)
	}
	x, _ := dataplane.ForDataDir("/srv/x/../mdctl", "")
	y, _ := dataplane.ForDataDir("/srv/mdctl", "")
	z, _ := dataplane.ForDataDir("/srv/other", "")
	if x != y || x == z || !strings.HasPrefix(x.SegmentNamespace, "mdctl-seg-") {
		t.Errorf("names: %+v %+v %+v", x, y, z)
	}
	p, err := dataplane.ForDataDir("/srv/mdctl", "edge1")
	if err != nil || p.SegmentNamespace != "mdctl-seg-edge1" || p.GuestPrefix != "mdctl-edge1-" {
		t.Errorf("profile: %+v %v", p, err)
	}
	for _, bad := range []string{"Edge", "a/b", "vm", "seg", "-x", strings.Repeat("a", 17)} {
		if _, err := dataplane.ForDataDir("/srv/mdctl", bad); err == nil {
			t.Errorf("profile %q accepted", bad)
		}
	}
	if code, _, stderr := runCLI(t, t.TempDir(), "", "--profile", "Bad", "lab", "down"); code != 2 || !strings.HasPrefix(stderr, "mdctl: --profile: profile \"Bad\"") {
		t.Errorf("bad --profile: %d %q", code, stderr)
	}
}

// TestSecondServeOnADataDirRefuses: a second serve on a data dir in use
// stops at once with one line, and the first keeps its agent socket.
func TestSecondServeOnADataDirRefuses(t *testing.T) {
	dir := t.TempDir()
	stop := startCLIServe(t, dir, "--components", "api,agent")
	socket := filepath.Join(dir, server.AgentSocketName)
	testworld.WaitFor(t, 10*time.Second, "first serve's agent socket", func() error {
		if !serveRunning(dir) {
			return fmt.Errorf("no serve on %s yet", dir)
		}
		_, err := os.Stat(socket)
		return err
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	io, _, _, errOut := testIO()
	env := func(k string) string {
		if k == "MDCTL_DATA_DIR" {
			return dir
		}
		return ""
	}
	code := run(ctx, []string{"serve", "--components", "api,agent", "--api-listen", "127.0.0.1:0"}, io, env)
	if ctx.Err() != nil {
		t.Fatalf("the second serve ran until killed:\n%s", errOut)
	}
	want := fmt.Sprintf("mdctl: another mdctl serve (pid %d) runs on data dir %s; stop it, or give this one its own --data-dir\n", os.Getpid(), dir)
	if code != 1 || errOut.String() != want {
		t.Errorf("second serve: exit %d, stderr %q; want 1, %q", code, errOut, want)
	}
	if _, err := os.Stat(socket); err != nil {
		t.Errorf("the first serve lost its agent socket: %v", err)
	}
	if code, logs := stop(); code != 0 {
		t.Fatalf("first serve: exit %d\n%s", code, logs)
	}
	if serveRunning(dir) {
		t.Errorf("the lock outlived the serve")
	}
}
