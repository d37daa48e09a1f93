package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/api"
)

// TestServeTakesSystemdSockets: started as systemd starts a
// socket-activated service (systemd-socket-activate passes the sockets of
// dist/systemd/mdctl-api.socket and mdctl-agent.socket, named api and
// agent), serve answers on those sockets, the request that started it
// included, rather than listening itself (its own --api-listen is the
// same address, which it could not bind), and leaves the agent's socket
// file, systemd's, in place when it stops.
func TestServeTakesSystemdSockets(t *testing.T) {
	activate, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("needs systemd-socket-activate (make test installs systemd)")
	}
	bin := buildMdctl(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	apiAddr := ln.Addr().String()
	ln.Close()
	sock := filepath.Join(dir, server.AgentSocketName)
	var log bytes.Buffer
	cmd := exec.Command(activate, "-l", apiAddr, "-l", sock, "--fdname="+server.ComponentAPI+":"+server.ComponentAgent,
		bin, "--data-dir", dir, "serve", "--components", "api,agent", "--api-listen", apiAddr)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			t.Logf("serve exited: %v", err)
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Error("serve did not stop within 15s of SIGTERM")
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("log:\n%s", log.String())
		}
	})
	testworld.WaitFor(t, 10*time.Second, "systemd-socket-activate's sockets", func() error {
		_, err := os.Stat(sock)
		return err
	})
	// The first connection starts serve; its request waits in the
	// socket's queue and is answered.
	start := time.Now()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "GET /openstack HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		t.Fatalf("the agent's socket: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	c.Close()
	t.Logf("first answer on the activated agent socket after %v", time.Since(start).Round(time.Millisecond))
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "Neither network nor router defined") {
		t.Errorf("agent answered %d %q, want neutron's 400 for a request without proxy headers", resp.StatusCode, body)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	r, err := hc.Get("http://" + apiAddr + api.HealthPath)
	if err != nil {
		t.Fatalf("the API's socket: %v", err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Errorf("API %s: %d %s", api.HealthPath, r.StatusCode, b)
	}
	stop()
	if !strings.Contains(log.String(), "socket from systemd") {
		t.Errorf("serve's log does not say it took systemd's sockets:\n%s", log.String())
	}
	if fi, err := os.Lstat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("serve removed systemd's agent socket on its way out: %v", err)
	}
}
