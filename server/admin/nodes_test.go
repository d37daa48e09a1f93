package admin

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/store"
)

// TestReach: a node is reached at its socket only when the serve there is
// that node, else at its TCP endpoint with the token; a wrong token, a
// serve that is another node, or no endpoint at all are errors that say so.
func TestReach(t *testing.T) {
	const token = "0123456789abcdef0123"
	bound := make(chan string, 1)
	kernel := func(_ context.Context, instance string, timeout time.Duration) (any, error) {
		return map[string]string{"instance": instance, "timeout": timeout.String()}, nil
	}
	_, sock := start(t, Options{Bus: events.NewBus(), Node: "node-a", TCPAddr: "127.0.0.1:0", Token: token,
		TCPBound: func(a string) { bound <- a }, TraceKernel: kernel})
	var url string
	select {
	case a := <-bound:
		url = "http://" + a
	case <-time.After(10 * time.Second):
		t.Fatal("TCP endpoint never bound")
	}
	ctx := context.Background()
	other := filepath.Join(t.TempDir(), SocketName)

	c, st, err := Reach(ctx, store.Node{Name: "node-a", AdminSocket: sock, AdminURL: url}, "")
	if err != nil || c.Addr() != sock || st.Node != "node-a" {
		t.Errorf("own socket: %v at %v, %+v", err, c, st)
	}
	c, st, err = Reach(ctx, store.Node{Name: "node-a", AdminSocket: other, AdminURL: url}, token)
	if err != nil || c.Addr() != url || st.Node != "node-a" {
		t.Errorf("TCP with token: %v, %+v", err, st)
	}
	var got map[string]string
	if err := c.TraceKernel(ctx, "vm1", 250*time.Millisecond, &got); err != nil || got["instance"] != "vm1" || got["timeout"] != "250ms" {
		t.Errorf("trace/kernel: %v, %v", err, got)
	}
	if _, _, err := Reach(ctx, store.Node{Name: "node-a", AdminURL: url}, "wrong-token-0123456789"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong token: %v", err)
	}
	// node-b's record names node-a's socket (same path on another
	// machine, say) and no TCP endpoint: not reached, and why.
	if _, _, err := Reach(ctx, store.Node{Name: "node-b", AdminSocket: sock}, ""); err == nil || !strings.Contains(err.Error(), `is node "node-a"'s`) {
		t.Errorf("another node's socket: %v", err)
	}
	if _, _, err := Reach(ctx, store.Node{Name: "node-b", AdminURL: url}, token); err == nil || !strings.Contains(err.Error(), `answers as node "node-a"`) {
		t.Errorf("another node's URL: %v", err)
	}
}

// TestTraceKernelEndpoint: bad parameters are refused, a serve without the
// checks says so.
func TestTraceKernelEndpoint(t *testing.T) {
	c, _ := start(t, Options{Bus: events.NewBus(), Logger: slog.New(slog.DiscardHandler)})
	var out any
	if err := c.TraceKernel(context.Background(), "vm1", 0, &out); err == nil || !strings.Contains(err.Error(), "501") {
		t.Errorf("no TraceKernel: %v", err)
	}
	c, _ = start(t, Options{Bus: events.NewBus(), TraceKernel: func(context.Context, string, time.Duration) (any, error) { return nil, nil }})
	for _, tc := range []struct {
		instance string
		timeout  time.Duration
	}{{"", 0}, {"vm1", time.Hour}} {
		if err := c.TraceKernel(context.Background(), tc.instance, tc.timeout, &out); err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("%+v: %v", tc, err)
		}
	}
}
