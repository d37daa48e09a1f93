package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
)

// The world every test here builds (store, data plane, serve, lab guests)
// is internal/testworld's; what follows is e2e's own: the real binary and
// a real terminal to run it in.

// buildMdctl builds the real binary once for a test, for what must run as
// its own process (a TUI in a terminal, the tracer it starts).
func buildMdctl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mdctl")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/mdctl")
	cmd.Dir = testworld.ModuleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/mdctl: %v\n%s", err, out)
	}
	return bin
}

func requireTmux(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("needs tmux to run the TUI in a real terminal (make test installs it)")
	}
}

// terminal is a real terminal: a tmux server of the test's own (its own
// socket, so no other tmux is touched) running one command in a window of
// a fixed size.
type terminal struct {
	t      *testing.T
	socket string
}

// newTerminal runs command in a detached width×height tmux window, killed
// in t.Cleanup. When command exits the window stays, saying how it exited,
// so the screen still explains a crash.
func newTerminal(t *testing.T, width, height int, command string) *terminal {
	t.Helper()
	requireTmux(t)
	term := &terminal{t: t, socket: "mdctl-e2e-" + testworld.Suffix()}
	t.Cleanup(func() {
		exec.Command("tmux", "-L", term.socket, "kill-server").Run()
	})
	wrapped := command + `; echo "[exited with status $?]"; sleep 600`
	if _, err := term.tmux("new-session", "-d", "-s", "main", "-x", strconv.Itoa(width), "-y", strconv.Itoa(height), wrapped); err != nil {
		t.Fatalf("tmux new-session: %v", err)
	}
	return term
}

func (term *terminal) tmux(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "tmux", append([]string{"-L", term.socket}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("tmux %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// screen is what the terminal shows now, as plain text.
func (term *terminal) screen() string {
	term.t.Helper()
	out, err := term.tmux("capture-pane", "-p", "-t", "main")
	if err != nil {
		term.t.Fatal(err)
	}
	return out
}

// key presses one key (a tmux key name: "j", "Enter", "Escape"). Wait for
// its effect before the next: keys that arrive together are read as one
// string ("jt"), as a paste, and match no binding.
func (term *terminal) key(k string) {
	term.t.Helper()
	if _, err := term.tmux("send-keys", "-t", "main", k); err != nil {
		term.t.Fatal(err)
	}
}

// waitScreen polls the screen until ok accepts it or timeout passes, and
// fails with the last screen; it returns the screen ok accepted.
func (term *terminal) waitScreen(timeout time.Duration, what string, ok func(screen string) bool) string {
	term.t.Helper()
	deadline := time.Now().Add(timeout)
	var s string
	for {
		s = term.screen()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("%s: not on screen within %v; screen:\n%s", what, timeout, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
