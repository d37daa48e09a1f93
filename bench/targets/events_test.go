package targets

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/bench/rig"
	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/store"
)

func TestReadConsumerCount(t *testing.T) {
	tests := []struct {
		name, file string
		want       uint64
		err        string // "" for none
	}{
		{name: "stopped", file: `{"received":42,"by_hop":{"api":42}}`, want: 42},
		{name: "nothing came", file: `{"received":0,"by_hop":{}}`, want: 0},
		{name: "serve broke the stream", file: `{"received":7,"by_hop":{"api":7},"error":"unexpected EOF"}`, want: 7,
			err: "event stream broke after 7 events: unexpected EOF"},
		{name: "garbage", file: `received 42`, err: "consumer count"},
		{name: "never written", err: "no such file"},
	}
	for _, tt := range tests {
		path := filepath.Join(t.TempDir(), "count.json")
		if tt.file != "" {
			if err := os.WriteFile(path, []byte(tt.file), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		c, err := ReadConsumerCount(path)
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.err)
		}
		if c.Received != tt.want {
			t.Errorf("%s: received %d, want %d", tt.name, c.Received, tt.want)
		}
	}
}

// TestDrainCountsEveryEvent: drain counts each NDJSON event of a real
// stream on a unix socket by hop, and a stream the server ends is
// recorded as broken (the rig must not take it for a clean stop).
func TestDrainCountsEveryEvent(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	hops := []string{events.HopProxy, events.HopAgent, events.HopAPI, events.HopAPI}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/events" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for i := range 1000 {
			_ = enc.Encode(events.Event{Hop: hops[i%len(hops)], Method: "GET", Path: "/latest", Status: 200})
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, err := admin.NewClient(sock)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Events(context.Background(), events.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	got := drain(context.Background(), st)
	if got.Received != 1000 || got.ByHop["proxy"] != 250 || got.ByHop["agent"] != 250 || got.ByHop["api"] != 500 {
		t.Errorf("drain = %+v, want 1000 events: 250 proxy, 250 agent, 500 api", got)
	}
	if got.Error == "" {
		t.Error("a stream the server ended is not recorded as broken")
	}
}

// TestAdminStreamConsumes runs the rig's event-stream hooks for real: serve
// with the API component over a seeded store, a consumer child (this test
// binary standing in for mdbench) subscribed before the load and stopped
// after it, and the counts read back.
func TestAdminStreamConsumes(t *testing.T) {
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		t.Skip("taskset not installed (apt-get install -y util-linux)")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dataDir := t.TempDir()
	st, err := store.OpenSQLite(filepath.Join(dataDir, "mdctl.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	inst, err := Seed(ctx, st, 40)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- server.Run(sctx, server.Options{Store: st, DataDir: dataDir, Components: []string{server.ComponentAPI},
			APIListener: ln, Logger: slog.New(slog.DiscardHandler)})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("serve: %v", err)
		}
	})
	sock := filepath.Join(dataDir, admin.SocketName)
	client, err := admin.NewClient(sock)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, err := client.Status(ctx); err == nil {
			break
		} else if i == 200 {
			t.Fatalf("admin endpoint never answered: %v", err)
		}
		time.Sleep(25 * time.Millisecond)
	}

	env, err := rig.NewEnv(t.TempDir(), "events", rig.Tools{Taskset: taskset, Self: self, ServerCPU: "0", LoadCPU: "0"},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Stop)
	stream, err := adminStream(sock)
	if err != nil {
		t.Fatal(err)
	}
	dropped0, err := stream.Dropped(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stop, err := stream.Consume(ctx, env)
	if err != nil {
		t.Fatalf("Consume: %v", err)
	}
	if s, err := client.Status(ctx); err != nil || s.Subscribers != 1 {
		t.Fatalf("after Consume: %d subscribers, %v; want the consumer subscribed", s.Subscribers, err)
	}
	const requests = 50
	base := "http://" + ln.Addr().String()
	hc := &http.Client{Timeout: 5 * time.Second}
	for range requests {
		if err := rig.Probe(ctx, hc, base+PathInstanceID, inst.Headers(SharedSecret)); err != nil {
			t.Fatal(err)
		}
	}
	// The stream sends what it buffered every admin.FlushEvery.
	time.Sleep(3 * admin.FlushEvery)
	received, err := stop()
	if err != nil {
		t.Fatalf("stop: %v", err)
	}
	// Stopping races the last events on the socket, so fewer may arrive;
	// never more than one per request (the API is the only hop), never none.
	if received == 0 || received > requests {
		t.Errorf("consumer received %d events for %d API requests", received, requests)
	}
	if err := env.Exited(); err != nil {
		t.Errorf("stopped consumer still counted by the Env: %v", err)
	}
	if d, err := stream.Dropped(ctx); err != nil || d != dropped0 {
		t.Errorf("dropped %d → %d (%v): a reading consumer of 50 events drops none", dropped0, d, err)
	}
	for i := 0; ; i++ {
		s, err := client.Status(ctx)
		if err == nil && s.Subscribers == 0 {
			break
		}
		if i == 200 {
			t.Fatalf("consumer still subscribed after stop: %+v, %v", s, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	// A second consumer after the first is another child with its own log.
	stop2, err := stream.Consume(ctx, env)
	if err != nil {
		t.Fatalf("second Consume: %v", err)
	}
	if _, err := stop2(); err != nil {
		t.Errorf("second stop: %v", err)
	}
	for _, name := range []string{"events-consumer-1", "events-consumer-2"} {
		if _, err := os.Stat(filepath.Join(env.Dir, name+".json")); err != nil {
			t.Errorf("%s wrote no count: %v", name, err)
		}
	}
}
