package tui

import (
	"context"
	"log/slog"
	"path/filepath"
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
	go Watch(ctx, sock, ch)

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
