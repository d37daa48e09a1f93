package main

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/diag"
	"github.com/mdctl/mdctl/server"
)

// unitSettings reads a unit file's Key=Value lines (the last one wins).
func unitSettings(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			out[k] = v
		}
	}
	return out
}

// TestSystemdUnit: make install puts the unit beside the binary it starts,
// systemd-analyze verify finds nothing to say about it, and it grants
// exactly the capabilities serve checks for.
func TestSystemdUnit(t *testing.T) {
	for _, bin := range []string{"make", "systemd-analyze"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s (make test installs systemd)", bin)
		}
	}
	prefix := t.TempDir()
	install := exec.Command("make", "-s", "-C", filepath.Join("..", ".."), "install", "PREFIX="+prefix, "BIN="+filepath.Join(t.TempDir(), "mdctl"))
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	// The unit trace's hints name (systemctl status, journalctl -u).
	unit := filepath.Join(prefix, "lib", "systemd", "system", diag.ServiceUnit+".service")
	s := unitSettings(t, unit)
	want := map[string]string{
		"Type": "notify", "Restart": "on-failure", "StateDirectory": "mdctl", "RuntimeDirectory": "mdctl",
		"ExecStart": filepath.Join(prefix, "bin", "mdctl") + " --data-dir /var/lib/mdctl serve --log-format json",
	}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("%s=%q, want %q", k, s[k], v)
		}
	}
	var caps []string
	for _, c := range server.ProxyCapabilities {
		caps = append(caps, c.Name)
	}
	for _, k := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		if s[k] != strings.Join(caps, " ") {
			t.Errorf("%s=%q, want serve's %q", k, s[k], strings.Join(caps, " "))
		}
	}
	// The sockets serve takes by socket activation: named as serve's
	// components, where serve of that unit would listen itself.
	io, _, _, _ := testIO()
	serveCmd := newCmdServe(&factory{IO: io, Getenv: func(string) string { return "" }}, nil)
	dataDir := "/var/lib/mdctl" // ExecStart's --data-dir, checked above
	sockets := map[string]map[string]string{
		"mdctl-api.socket": {"FileDescriptorName": server.ComponentAPI, "Service": diag.ServiceUnit + ".service",
			"ListenStream": serveCmd.Flags().Lookup("api-listen").DefValue},
		"mdctl-agent.socket": {"FileDescriptorName": server.ComponentAgent, "Service": diag.ServiceUnit + ".service",
			"ListenStream": filepath.Join(dataDir, server.AgentSocketName), "SocketMode": "0660"},
	}
	units := []string{unit}
	for name, want := range sockets {
		path := filepath.Join(prefix, "lib", "systemd", "system", name)
		s := unitSettings(t, path)
		for k, v := range want {
			if s[k] != v {
				t.Errorf("%s: %s=%q, want %q", name, k, s[k], v)
			}
		}
		units = append(units, path)
	}
	out, err := exec.Command("systemd-analyze", append([]string{"verify", "--man=no"}, units...)...).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestServeNotifiesSystemd: with $NOTIFY_SOCKET, serve says READY=1 once
// the agent answers on its socket, and STOPPING=1 when it is stopped.
func TestServeNotifiesSystemd(t *testing.T) {
	dir := t.TempDir()
	notify := filepath.Join(t.TempDir(), "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	io, _, _, _ := testIO()
	env := map[string]string{"MDCTL_DATA_DIR": dir, "NOTIFY_SOCKET": notify}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--components", "api,agent", "--api-listen", "127.0.0.1:0"}, io, func(k string) string { return env[k] })
	}()
	read := func() string {
		ln.SetReadDeadline(time.Now().Add(15 * time.Second))
		b := make([]byte, 256)
		n, err := ln.Read(b)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(b[:n])
	}
	if got := read(); got != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	c, err := net.Dial("unix", filepath.Join(dir, server.AgentSocketName))
	if err != nil {
		t.Errorf("READY=1 before the agent listens: %v", err)
	} else {
		c.Close()
	}
	cancel()
	if got := read(); got != "STOPPING=1" {
		t.Errorf("on stop: %q, want STOPPING=1", got)
	}
	if code := <-done; code != 0 {
		t.Errorf("serve exited %d", code)
	}
}

// TestActivatedListeners: serve takes systemd's api and agent sockets for
// the components it runs, and refuses a socket it would leave unanswered.
func TestActivatedListeners(t *testing.T) {
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln
	}
	apiLn, agentLn := listen(), listen()
	api, agent, err := activatedListeners(map[string]net.Listener{"api": apiLn, "agent": agentLn}, server.AllComponents)
	if err != nil || api != apiLn || agent != agentLn {
		t.Errorf("all components: %v %v %v", api, agent, err)
	}
	if api, agent, err := activatedListeners(nil, server.AllComponents); err != nil || api != nil || agent != nil {
		t.Errorf("no sockets: %v %v %v", api, agent, err)
	}
	for _, tc := range []struct {
		name       string
		socket     string
		components []string
		want       string
	}{
		{"a name serve does not take", "metrics", server.AllComponents, `socket named "metrics"`},
		{"a component serve does not run", "api", []string{server.ComponentAgent}, "--components has no api"},
	} {
		if _, _, err := activatedListeners(map[string]net.Listener{tc.socket: listen()}, tc.components); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}
