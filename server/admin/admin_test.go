package admin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/store"
)

// start runs an admin server on a fresh socket and returns a client.
func start(t *testing.T, o Options) (*Client, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), SocketName)
	o.SocketPath = sock
	o.Logger = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(o).Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not stop")
		}
	})
	c, err := NewClient(sock)
	if err != nil {
		t.Fatal(err)
	}
	// Bounded wait for the listener.
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i == 500 {
			t.Fatal("admin socket never appeared")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c, sock
}

func TestEventsStreamOverUnixSocket(t *testing.T) {
	bus := events.NewBus()
	names := map[string]string{"id-a": "vm-a", "id-b": "vm-b"}
	c, sock := start(t, Options{Bus: bus, Names: func(_ context.Context, id string) string { return names[id] }})

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want a socket with 0660", fi.Mode())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Filter by a name the hops never set: the server fills it in first.
	st, err := c.Events(ctx, events.Filter{Instance: "vm-b", Status: "4xx"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bus.Publish(events.Event{RequestID: "r1", Hop: events.HopAPI, InstanceID: "id-a", Status: 404, Path: "/x"})
	bus.Publish(events.Event{RequestID: "r2", Hop: events.HopAPI, InstanceID: "id-b", Status: 200, Path: "/x"})
	bus.Publish(events.Event{RequestID: "r3", Hop: events.HopAgent, InstanceID: "id-b", Status: 404, Path: "/y", Duration: 5 * time.Millisecond})
	e, err := st.Next()
	if err != nil {
		t.Fatal(err)
	}
	if e.RequestID != "r3" || e.InstanceName != "vm-b" || e.Hop != events.HopAgent || e.Duration != 5*time.Millisecond {
		t.Errorf("got %+v, want r3 for vm-b from the agent", e)
	}
}

func TestEventsStreamEndsWhenServeStops(t *testing.T) {
	bus := events.NewBus()
	sock := filepath.Join(t.TempDir(), SocketName)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- New(Options{Bus: bus, SocketPath: sock, Logger: slog.New(slog.DiscardHandler)}).Run(ctx)
	}()
	c, _ := NewClient(sock)
	var st *Stream
	for i := 0; ; i++ {
		var err error
		if st, err = c.Events(context.Background(), events.Filter{}); err == nil {
			break
		}
		if i == 500 {
			t.Fatalf("never connected: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer st.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := st.Next(); err == nil {
		t.Fatal("stream still open after serve stopped")
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
	if _, err := c.Status(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Status after stop: %v, want ErrNotRunning", err)
	}
}

func TestBadFilters(t *testing.T) {
	c, _ := start(t, Options{Bus: events.NewBus()})
	for _, f := range []events.Filter{{Status: "abc"}, {Status: "9xx"}, {Hop: "router"}} {
		if _, err := c.Events(context.Background(), f); err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("filter %+v: %v, want a 400", f, err)
		}
	}
}

// POST /probes marks a path on the bus; a request without path or with a
// bad ttl is refused and marks nothing.
func TestMarkProbe(t *testing.T) {
	bus := events.NewBus()
	c, _ := start(t, Options{Bus: bus})
	if err := c.MarkProbe(context.Background(), "/openstack/p1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if !bus.IsProbe("/openstack/p1") || bus.IsProbe("/openstack/other") {
		t.Error("POST /probes did not mark exactly its path")
	}
	for _, q := range []string{"/probes?ttl=1m", "/probes?path=/x&ttl=soon"} {
		resp, err := c.do(context.Background(), http.MethodPost, q)
		if err == nil {
			resp.Body.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "400") || bus.IsProbe("/x") {
			t.Errorf("POST %s: %v, want a 400 and no mark", q, err)
		}
	}
}

func TestStatusAndMetricsAndHealth(t *testing.T) {
	bus := events.NewBus()
	reg := NewRegistry(bus)
	stop := make(chan struct{})
	runAPI := reg.Track("api", "127.0.0.1:8775", func() error { <-stop; return nil })
	runAgent := reg.Track("agent", "/x/metadata_proxy", func() error { return errors.New("socket busy") })
	go runAPI()
	defer close(stop)
	if err := runAgent(); err == nil {
		t.Fatal("agent run should fail")
	}
	c, _ := start(t, Options{Bus: bus, Status: reg.Components})
	bus.Publish(events.Event{Hop: events.HopAPI, Status: 200, Path: "/"})
	bus.Publish(events.Event{Hop: events.HopAPI, Status: 500, Path: "/"})

	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != os.Getpid() || len(st.Components) != 2 {
		t.Fatalf("status %+v", st)
	}
	api, agent := st.Components[0], st.Components[1]
	if api.Name != "api" || !api.Up || api.Address != "127.0.0.1:8775" || api.Counts["requests"] != 2 || api.Counts["failed"] != 1 {
		t.Errorf("api %+v", api)
	}
	if agent.Name != "agent" || agent.Up || agent.Error != "socket busy" {
		t.Errorf("agent %+v", agent)
	}

	resp, err := c.get(context.Background(), "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	var n float64
	for _, m := range fams["mdctl_requests_total"].GetMetric() {
		n += m.GetCounter().GetValue()
	}
	if n != 2 {
		t.Errorf("mdctl_requests_total sums to %v, want 2", n)
	}

	h, err := c.get(context.Background(), "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(h.Body)
	h.Body.Close()
	if string(b) != "ok\n" {
		t.Errorf("healthz %q", b)
	}
}

func TestSocketTakeover(t *testing.T) {
	_, sock := start(t, Options{Bus: events.NewBus()})
	// A live serve keeps its socket.
	if _, err := listenUnix(sock); !errors.Is(err, ErrSocketBusy) {
		t.Errorf("second listener on a live socket: %v", err)
	}
	// A second serve in the same data dir runs without an endpoint, and
	// leaves the first one's socket alone when it stops.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- New(Options{Bus: events.NewBus(), SocketPath: sock, Logger: slog.New(slog.DiscardHandler)}).Run(ctx)
	}()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("second serve's admin: %v", err)
	}
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("first serve's socket gone: %v", err)
	}
	// A stale file (nobody listening) is replaced.
	stale := filepath.Join(t.TempDir(), SocketName)
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln2, err := listenUnix(stale)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln2.Close()
}

func TestNewClientAddresses(t *testing.T) {
	for addr, ok := range map[string]bool{"/run/x.sock": true, "http://10.0.0.1:8776": true, "http://": false, "": false} {
		if _, err := NewClient(addr); (err == nil) != ok {
			t.Errorf("NewClient(%q) err=%v", addr, err)
		}
	}
}

// TestRecent: /recent gives an instance's last requests as the agent saw
// them, oldest first, and nothing for an instance serve never saw.
func TestRecent(t *testing.T) {
	bus := events.NewBus()
	rec := events.NewRecent(bus)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go rec.Run(ctx)
	c, _ := start(t, Options{Bus: bus, Recent: rec})
	for i := 0; bus.Readers() == 0; i++ {
		if i == 500 {
			t.Fatal("Recent never subscribed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	bus.Publish(events.Event{Hop: events.HopAgent, InstanceID: "i1", Path: "/openstack", Status: 200, SourceIP: "10.90.1.5", Mode: events.ModeRouter})
	bus.Publish(events.Event{Hop: events.HopAgent, InstanceID: "i1", Path: "/latest/meta-data/", Status: 200})
	var got []events.Event
	for i := 0; len(got) < 2; i++ {
		if i == 500 {
			t.Fatalf("recent = %+v", got)
		}
		time.Sleep(10 * time.Millisecond)
		var err error
		if got, err = c.Recent(context.Background(), "i1"); err != nil {
			t.Fatal(err)
		}
	}
	if got[0].Path != "/openstack" || got[0].SourceIP != "10.90.1.5" || got[1].Path != "/latest/meta-data/" {
		t.Errorf("recent = %+v", got)
	}
	if none, err := c.Recent(context.Background(), "nobody"); err != nil || len(none) != 0 {
		t.Errorf("recent of nobody = %+v, %v", none, err)
	}
}

// TestStatusDHCPServers: /status carries the data plane's DHCP servers,
// planned and running, so that lab up knows how many to wait for; none
// before the first plan, and neither without a data plane.
func TestStatusDHCPServers(t *testing.T) {
	counts := DHCPCounts{Planned: -1}
	var mu sync.Mutex
	c, _ := start(t, Options{Bus: events.NewBus(), DHCP: func() DHCPCounts { mu.Lock(); defer mu.Unlock(); return counts }})
	bare, _ := start(t, Options{Bus: events.NewBus()})
	for _, tc := range []struct {
		name             string
		c                *Client
		counts           DHCPCounts
		planned, servers string
		ready            bool
	}{
		{"before the first plan", c, DHCPCounts{Planned: -1}, "", "0", false},
		{"one of two", c, DHCPCounts{Planned: 2, Running: 1}, "2", "1", false},
		{"all", c, DHCPCounts{Planned: 2, Running: 2}, "2", "2", true},
		{"none planned", c, DHCPCounts{}, "0", "0", true},
		{"no data plane", bare, DHCPCounts{}, "", "", false},
	} {
		mu.Lock()
		counts = tc.counts
		mu.Unlock()
		st, err := tc.c.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		show := func(p *int) string {
			if p == nil {
				return ""
			}
			return strconv.Itoa(*p)
		}
		if show(st.DHCPPlanned) != tc.planned || show(st.DHCPServers) != tc.servers || st.DHCPReady() != tc.ready {
			t.Errorf("%s: dhcp_planned %q dhcp_servers %q ready %v, want %q %q %v", tc.name,
				show(st.DHCPPlanned), show(st.DHCPServers), st.DHCPReady(), tc.planned, tc.servers, tc.ready)
		}
	}
}

// TestHealthzReadsTheStore: /healthz answers 200 "ok" while serve can read
// its store, and 503 naming the store and what is wrong while it cannot
// (the SQLite file removed), while /status still answers; ok again once
// the file is back.
func TestHealthzReadsTheStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mdctl.db")
	st, err := store.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, _ := start(t, Options{Bus: events.NewBus(), Health: func(ctx context.Context) error { return store.Ping(ctx, st) },
		SettingsGeneration: st.Generation})
	ctx := context.Background()
	health := func() string {
		t.Helper()
		reason, err := c.Health(ctx)
		if err != nil {
			t.Fatalf("healthz: %v", err)
		}
		return reason
	}
	waitHealth := func(what string, ok func(reason string) bool) string {
		t.Helper()
		start := time.Now()
		for range 500 {
			if r := health(); ok(r) {
				t.Logf("%s after %v", what, time.Since(start).Round(time.Millisecond))
				return r
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("healthz never said %s", what)
		return ""
	}
	if r := health(); r != "" {
		t.Fatalf("healthz with the store there: %q, want ok", r)
	}
	away := path + ".away"
	if err := os.Rename(path, away); err != nil {
		t.Fatal(err)
	}
	reason := waitHealth("503 with the file removed", func(r string) bool { return r != "" })
	if !strings.Contains(reason, "store unavailable: ") || !strings.Contains(reason, path) || !strings.Contains(reason, "removed") {
		t.Errorf("healthz reason %q: want it to name the store, its file and what is wrong", reason)
	}
	resp, err := c.send(ctx, http.MethodGet, "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("healthz status %d with the store gone, want 503", resp.StatusCode)
	}
	// /status still says what runs (trace and status read it), and why
	// it has no settings generation.
	if s, err := c.Status(ctx); err != nil || !strings.Contains(s.StoreError, "store unavailable") {
		t.Errorf("status with the store gone: %+v, %v; want it answered with store_error", s, err)
	}
	if err := os.Rename(away, path); err != nil {
		t.Fatal(err)
	}
	waitHealth("ok with the file back", func(r string) bool { return r == "" })
}
