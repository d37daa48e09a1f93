package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestMain lets a test run this binary as mdctl itself (MDCTL_TEST_MAIN=1),
// for what only a fresh process shows: its capabilities, its exit code.
func TestMain(m *testing.M) {
	if os.Getenv("MDCTL_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// unprivileged is a command running mdctl with args without capabilities
// (as root: an empty bounding set drops them all on exec).
func unprivileged(t *testing.T, ctx context.Context, args ...string) *exec.Cmd {
	t.Helper()
	argv := append([]string{os.Args[0]}, args...)
	if os.Geteuid() == 0 {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skip("needs setpriv (util-linux) to drop root's capabilities")
		}
		argv = append([]string{setpriv, "--bounding-set=-all", "--inh-caps=-all", "--"}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "MDCTL_TEST_MAIN=1")
	return cmd
}

// TestServeWithoutPrivilegesStopsAtOnce: without the capabilities the proxy
// needs, serve exits 1 with one line that says what to do, before it
// touches the data dir; with --components api,agent it serves.
func TestServeWithoutPrivilegesStopsAtOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := unprivileged(t, ctx, "--data-dir", dir, "serve", "--api-listen", "127.0.0.1:0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("serve without privileges kept running:\n%s", stderr.String())
	}
	want := "mdctl: serve: the proxy component builds namespaces and iptables rules and lacks CAP_NET_ADMIN, CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_SYS_ADMIN; run it as root (sudo mdctl serve), or without it: mdctl serve --components api,agent\n"
	if cmd.ProcessState.ExitCode() != 1 || stderr.String() != want {
		t.Errorf("exit %d (%v), stderr:\n%q\nwant exit 1 and\n%q", cmd.ProcessState.ExitCode(), err, stderr.String(), want)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("serve made %s before refusing (%v)", dir, err)
	}

	cmd = unprivileged(t, ctx, "--data-dir", dir, "serve", "--components", "api,agent", "--api-listen", "127.0.0.1:0")
	stderr.Reset()
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	deadline := time.Now().Add(15 * time.Second)
	for !serveRunning(dir) {
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			t.Fatalf("serve --components api,agent without privileges did not start:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

}
