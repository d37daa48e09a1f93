package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/events"
)

// startAdmin runs a real admin endpoint in dir with an api that is up
// and an agent that failed.
func startAdmin(t *testing.T, dir string) {
	t.Helper()
	bus := events.NewBus()
	reg := admin.NewRegistry(bus)
	stop := make(chan struct{})
	go reg.Track("api", "127.0.0.1:8775", func() error { <-stop; return nil })()
	_ = reg.Track("agent", filepath.Join(dir, "metadata_proxy"), func() error { return errors.New("socket in use") })()
	bus.Publish(events.Event{Hop: events.HopAPI, Status: 200, Path: "/"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	sock := filepath.Join(dir, admin.SocketName)
	go func() {
		done <- admin.New(admin.Options{Bus: bus, SocketPath: sock, Status: reg.Components,
			DHCP: func() admin.DHCPCounts { return admin.DHCPCounts{Planned: 2, Running: 1} }, Logger: slog.New(slog.DiscardHandler)}).Run(ctx)
	}()
	t.Cleanup(func() { close(stop); cancel(); <-done })
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			return
		}
		if i == 500 {
			t.Fatal("admin socket never appeared")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStatus(t *testing.T) {
	dir := t.TempDir()
	startAdmin(t, dir)

	code, out, errOut := runCLI(t, dir, "", "status")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"COMPONENT", "api", "up", "127.0.0.1:8775", "failed=0 requests=1", "agent", "down: socket in use", "serve pid", "DHCP servers: 1 of 2 planned running"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}

	code, out, errOut = runCLI(t, dir, "", "status", "-o", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var st admin.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if len(st.Components) != 2 || !st.Components[0].Up || st.Components[1].Up || st.Components[0].Counts["requests"] != 1 {
		t.Errorf("status %+v", st)
	}

	code, out, _ = runCLI(t, dir, "", "status", "-o", "yaml")
	var y map[string]any
	if code != exitOK || yaml.Unmarshal([]byte(out), &y) != nil || y["components"] == nil {
		t.Errorf("yaml (exit %d):\n%s", code, out)
	}
}

func TestStatusWhenServeIsNotRunning(t *testing.T) {
	dir := t.TempDir()
	code, _, errOut := runCLI(t, dir, "", "status")
	if code != exitFail || !strings.Contains(errOut, "no mdctl serve answers on "+filepath.Join(dir, admin.SocketName)) ||
		!strings.Contains(errOut, "start one with mdctl serve") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := runCLI(t, dir, "", "status", "-o", "xml"); code != exitUsage {
		t.Errorf("-o xml: exit %d, want %d", code, exitUsage)
	}
}
