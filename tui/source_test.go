package tui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/events"
)

// runAdmin serves bus on sock until the returned stop is called.
func runAdmin(t *testing.T, bus *events.Bus, sock string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- admin.New(admin.Options{Bus: bus, SocketPath: sock, Logger: slog.New(slog.DiscardHandler)}).Run(ctx)
	}()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("admin: %v", err)
		}
	}
}

func next(t *testing.T, ch <-chan tea.Msg) tea.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message from Watch")
		return nil
	}
}

// Watch over a real socket: events arrive, a serve restart is noticed and
// reported as a reconnection.
func TestWatchReconnectsWhenServeRestarts(t *testing.T) {
	sock := filepath.Join(t.TempDir(), admin.SocketName)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := make(chan tea.Msg, 16)
	go Watch(ctx, Source{Addr: sock}, ch)

	// Nothing listens yet: one "lost" report, not one per retry.
	if m, ok := next(t, ch).(ConnMsg); !ok || m.Up {
		t.Fatalf("first message %#v, want a down ConnMsg", m)
	}
	bus := events.NewBus()
	stop := runAdmin(t, bus, sock)
	if m, ok := next(t, ch).(ConnMsg); !ok || !m.Up || !m.Reconnected {
		t.Fatalf("got %#v, want up after a loss", m)
	}
	bus.Publish(events.Event{RequestID: "r1", Hop: events.HopProxy, Status: 200})
	if m, ok := next(t, ch).(EventMsg); !ok || m.Event.RequestID != "r1" || m.Node != sock {
		t.Fatalf("got %#v, want r1's event", m)
	}
	stop()
	if m, ok := next(t, ch).(ConnMsg); !ok || m.Up {
		t.Fatalf("got %#v, want down after serve stopped", m)
	}
	stop = runAdmin(t, events.NewBus(), sock)
	defer stop()
	if m, ok := next(t, ch).(ConnMsg); !ok || !m.Up || !m.Reconnected {
		t.Fatalf("got %#v, want reconnected", m)
	}
}

// TestWatchEveryNode: the watchers of several nodes feed one model; each
// request row carries the node it came from, and a node that cannot be
// watched stays on the header, saying why.
func TestWatchEveryNode(t *testing.T) {
	dir := t.TempDir()
	buses := map[string]*events.Bus{"node-a": events.NewBus(), "node-b": events.NewBus()}
	srcs := []Source{
		{Name: "node-a", Addr: filepath.Join(dir, "a.sock")},
		{Name: "node-b", Addr: filepath.Join(dir, "b.sock")},
		{Name: "node-c", Err: errors.New("dead: last heartbeat 3m0s ago")},
		{Name: "node-d", Addr: filepath.Join(dir, "nobody.sock")},
	}
	for _, s := range srcs[:2] {
		defer runAdmin(t, buses[s.Name], s.Addr)()
		// Listening before the watchers start, so the header says up,
		// not reconnected.
		for i := 0; ; i++ {
			if _, err := os.Stat(s.Addr); err == nil {
				break
			}
			if i == 500 {
				t.Fatal("admin socket never appeared")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := make(chan tea.Msg, 64)
	for _, s := range srcs {
		go Watch(ctx, s, ch)
	}
	tm := newTest(t, Options{Nodes: Labels(srcs), Msgs: ch})
	waitFor(t, tm, "● node-a", "● node-b", "✗ node-c: dead: last heartbeat 3m0s ago (not watched)", "✗ lost node-d: ")
	for node, inst := range map[string]string{"node-a": "vm-a", "node-b": "vm-b"} {
		for _, e := range requestEvents("req-"+inst, inst, "/latest/meta-data/", 200, t0.Add(-time.Second)) {
			buses[node].Publish(e)
		}
	}
	waitForLine(t, tm, "node-a", "vm-a")
	waitForLine(t, tm, "node-b", "vm-b")
	final(t, tm)
}

// waitForLine waits (5 s at most) for a screen line holding every one of
// subs.
func waitForLine(t *testing.T, tm testModel, subs ...string) {
	t.Helper()
	waitScreen(t, tm, fmt.Sprintf("no screen line showed %q", subs), func(screen string) bool {
		for _, l := range strings.Split(screen, "\n") {
			if containsAll(l, subs) {
				return true
			}
		}
		return false
	})
}
