package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mdctl/mdctl/store"
)

func TestHeartbeatInterval(t *testing.T) {
	for _, tt := range []struct{ down, want time.Duration }{
		{75 * time.Second, 25 * time.Second},
		{2 * time.Second, 2 * time.Second / 3},
		{300 * time.Second, 30 * time.Second},
		{time.Second / 2, 200 * time.Millisecond},
	} {
		if got := HeartbeatInterval(tt.down); got != tt.want {
			t.Errorf("HeartbeatInterval(%v) = %v, want %v", tt.down, got, tt.want)
		}
	}
}

func TestAdminURL(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:9100": "http://127.0.0.1:9100",
		"[fd00::1]:9100": "http://[fd00::1]:9100",
		"10.0.0.5:443":   "http://10.0.0.5:443",
	} {
		if got := adminURL(addr); got != want {
			t.Errorf("adminURL(%s) = %s, want %s", addr, got, want)
		}
	}
	if got := adminURL("0.0.0.0:9100"); got == "http://0.0.0.0:9100" {
		t.Errorf("adminURL of an unspecified address kept it: %s", got)
	}
}

func nodeStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "mdctl.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestNodeRegistration: serves sharing a name (one host, several
// component sets, each its own data dir) are one node with all their
// components; a node deleted under a running serve registers again at
// its next beat.
func TestNodeRegistration(t *testing.T) {
	ctx := context.Background()
	st := nodeStore(t)
	live := store.NewLive(st, nil)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	api := &nodeAgent{st: st, live: live, log: log, node: store.Node{Name: "h1", Components: []string{"api"}, AdminSocket: "/d1/admin.sock"}}
	px := &nodeAgent{st: st, live: live, log: log, node: store.Node{Name: "h1", Components: []string{"agent", "proxy"}, AdminSocket: "/d2/admin.sock"}}
	for _, a := range []*nodeAgent{api, px} {
		if err := a.register(ctx); err != nil {
			t.Fatal(err)
		}
	}
	n, err := st.GetNode(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"agent", "api", "proxy"}; !slices.Equal(n.Components, want) {
		t.Errorf("components %v, want %v", n.Components, want)
	}

	if err := st.SetSetting(ctx, "agent_down_time", "1"); err != nil { // beats every 333 ms
		t.Fatal(err)
	}
	if err := st.DeleteNode(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- px.Run(rctx) }()
	for range 200 {
		if _, err = st.GetNode(ctx, "h1"); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err != nil {
		t.Errorf("deleted node never registered again: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("heartbeat loop: %v", err)
	}
}

// TestForgetPast: on SQLite, a node this data dir registered under
// another name (the host name changed) is forgotten at start, with its
// bindings, so the new name hosts everything at once; on a shared store
// (another host may have the same paths) it is left to agent_down_time.
func TestForgetPast(t *testing.T) {
	ctx := context.Background()
	for _, local := range []bool{true, false} {
		st := nodeStore(t)
		if err := st.PutRouter(ctx, store.Router{ID: "r1"}); err != nil {
			t.Fatal(err)
		}
		if err := st.RegisterNode(ctx, store.Node{Name: "old-name", AdminSocket: "/d/admin.sock"}); err != nil {
			t.Fatal(err)
		}
		if err := st.RegisterNode(ctx, store.Node{Name: "other", AdminSocket: "/e/admin.sock"}); err != nil {
			t.Fatal(err)
		}
		if err := st.SetRouterHosts(ctx, "r1", []string{"old-name"}); err != nil {
			t.Fatal(err)
		}
		a := &nodeAgent{st: st, live: store.NewLive(st, nil), local: local, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			node: store.Node{Name: "new-name", AdminSocket: "/d/admin.sock"}}
		if err := a.forgetPast(ctx); err != nil {
			t.Fatal(err)
		}
		_, err := st.GetNode(ctx, "old-name")
		if gone := errors.Is(err, store.ErrNotFound); gone != local {
			t.Errorf("local %v: former node gone %v (%v)", local, gone, err)
		}
		if _, err := st.GetNode(ctx, "other"); err != nil {
			t.Errorf("local %v: another data dir's node: %v", local, err)
		}
		if h, _ := st.RouterHosts(ctx, "r1"); (len(h) == 0) != local {
			t.Errorf("local %v: r1 on %v", local, h)
		}
	}
}
