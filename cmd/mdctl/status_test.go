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

	"github.com/mdctl/mdctl/internal/golden"
	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/store"
)

// startAdmin runs a real admin endpoint in dir with an api that is up
// and an agent that failed.
func startAdmin(t *testing.T, dir string) { startNodeAdmin(t, dir, "") }

// startNodeAdmin is startAdmin for the serve of node, its options
// changed by more.
func startNodeAdmin(t *testing.T, dir, node string, more ...func(*admin.Options)) {
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
	o := admin.Options{Bus: bus, SocketPath: sock, Node: node, Status: reg.Components,
		DHCP: func() admin.DHCPCounts { return admin.DHCPCounts{Planned: 2, Running: 1} }, Logger: slog.New(slog.DiscardHandler)}
	for _, f := range more {
		f(&o)
	}
	go func() { done <- admin.New(o).Run(ctx) }()
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

// twoNodeStore makes a store (in dir) with two nodes: node-a, whose serve
// (startNodeAdmin) answers at sockA, and node-b, whose socket nobody
// serves.
func twoNodeStore(t *testing.T) (dir, sockA string) {
	t.Helper()
	dir, other := t.TempDir(), t.TempDir()
	startNodeAdmin(t, other, "node-a")
	st, err := store.Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sockA = filepath.Join(other, admin.SocketName)
	for _, n := range []store.Node{
		{Name: "node-a", Components: []string{"api", "agent"}, AdminSocket: sockA},
		{Name: "node-b", Components: []string{"proxy"}, AdminSocket: filepath.Join(t.TempDir(), admin.SocketName)},
	} {
		if err := st.RegisterNode(context.Background(), n); err != nil {
			t.Fatal(err)
		}
	}
	return dir, sockA
}

// TestStatusAcrossNodes: with several nodes in the store, status asks each
// at the admin socket the store records, and shows one that does not
// answer as unreachable (exit 1) rather than leaving it out.
func TestStatusAcrossNodes(t *testing.T) {
	dir, _ := twoNodeStore(t)

	code, out, errOut := runCLI(t, dir, "", "status")
	if code != exitFail {
		t.Errorf("exit %d, want %d (node-b does not answer); stderr %q", code, exitFail, errOut)
	}
	for _, want := range []string{"NODE", "node-a  api", "failed=0 requests=1", "node-a  agent", "down: socket in use",
		"node-b  -", "unreachable: node node-b: no admin endpoint of it answers here", "node node-a: serve pid"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = runCLI(t, dir, "", "status", "-o", "json")
	var got struct {
		Nodes []nodeStatus `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != exitFail {
		t.Fatalf("exit %d, json %v:\n%s", code, err, out)
	}
	if len(got.Nodes) != 2 || got.Nodes[0].Status == nil || got.Nodes[0].Status.Node != "node-a" || len(got.Nodes[0].Status.Components) != 2 ||
		got.Nodes[1].Status != nil || !got.Nodes[1].Alive || got.Nodes[1].Error == "" {
		t.Errorf("nodes %+v", got.Nodes)
	}
}

// TestStatusAcrossNodesGolden pins the table across nodes: up, unreachable
// and dead nodes.
func TestStatusAcrossNodesGolden(t *testing.T) {
	at := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	sock, err := admin.NewClient("/var/lib/mdctl/admin.sock")
	if err != nil {
		t.Fatal(err)
	}
	eps := []nodeEndpoint{
		{Node: store.Node{Name: "net-1"}, Alive: true, Client: sock, Status: admin.Status{PID: 4242, Started: at, Node: "net-1", Subscribers: 1,
			Components: []admin.Component{
				{Name: "agent", Up: true, Address: "/var/lib/mdctl/metadata_proxy", Counts: map[string]uint64{"requests": 12, "failed": 1}},
				{Name: "proxy", Up: true, Counts: map[string]uint64{"requests": 12, "failed": 0}},
				{Name: "dataplane", Error: "apply: netlink: operation not permitted"},
			}}},
		{Node: store.Node{Name: "net-2", AdminSocket: "/var/lib/mdctl/admin.sock", AdminURL: "http://net-2:9100", HeartbeatAt: at.Add(-2 * time.Second)},
			Alive: true, Err: errors.New("http://net-2:9100: no mdctl serve is answering")},
		{Node: store.Node{Name: "net-3"}, Err: errors.New("dead: last heartbeat 3m0s ago (agent_down_time 1m15s)")},
	}
	io, _, out, _ := testIO()
	if err := writeNodesStatus(io, eps, time.UTC); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "status-nodes.golden", out.String())
}

func TestAcrossNodes(t *testing.T) {
	dir := t.TempDir()
	own := store.Node{Name: "a", AdminSocket: filepath.Join(dir, admin.SocketName)}
	other := store.Node{Name: "b", AdminSocket: "/elsewhere/admin.sock"}
	for _, tc := range []struct {
		nodes []store.Node
		want  bool
	}{
		{nil, false},
		{[]store.Node{own}, false}, // one serve on its data dir: as before nodes
		{[]store.Node{other}, true},
		{[]store.Node{own, other}, true},
	} {
		if got := acrossNodes(tc.nodes, dir); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.nodes, got, tc.want)
		}
	}
}
