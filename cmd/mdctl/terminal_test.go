package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mdctl/mdctl/internal/termtest"
)

// openPTY opens a pseudo-terminal pair. The test holds the master and
// never writes to it: a terminal that answers no query, like many serial
// consoles and some terminal emulators.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty slave: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// onTerminal makes cmd the foreground job of its own terminal (a new
// session whose controlling terminal is the pty slave), with all three
// streams on it, TERM set and an empty HOME.
func onTerminal(t *testing.T, cmd *exec.Cmd, slave *os.File, env []string) {
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "TERM=xterm-256color", "HOME=" + t.TempDir()}, env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
}

// runInTerminal runs the binary with args as the foreground job of its own
// terminal (a new session whose controlling terminal is the pty), with
// stdin and stderr on the terminal and stdout on the terminal too unless
// stdout is given. It returns what the terminal received.
func runInTerminal(t *testing.T, bin string, env []string, stdout io.Writer, args ...string) (string, error) {
	t.Helper()
	master, slave := openPTY(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	onTerminal(t, cmd, slave, env)
	if stdout != nil {
		cmd.Stdout = stdout
	}
	var got bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&got, master); close(done) }()
	start := time.Now()
	err := cmd.Run()
	t.Logf("%v took %v", args, time.Since(start))
	slave.Close()
	// The master reads EIO once the last slave fd is closed.
	<-done
	return got.String(), err
}

// TestNoTerminalProbe: no command but `mdctl tui` asks the terminal
// anything. bubbletea v1's package init asked for the background colour
// (an OSC 11 query then a cursor report) and waited 5 s for an answer that
// a silent terminal never sends, and so does lipgloss v2's compat package
// if anything links it; the query's ESC bytes alone show it.
func TestNoTerminalProbe(t *testing.T) {
	bin := buildBinary(t)
	tests := []struct {
		name string
		env  []string
		args []string
		pipe bool // stdout is a pipe, not the terminal
	}{
		{"version", nil, []string{"version"}, false},
		{"version NO_COLOR", []string{"NO_COLOR=1"}, []string{"version"}, false},
		{"trace help NO_COLOR", []string{"NO_COLOR=1"}, []string{"trace", "--help"}, false},
		{"trace help piped", nil, []string{"trace", "--help"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			var stdout io.Writer
			if tt.pipe {
				stdout = &out
			}
			term, err := runInTerminal(t, bin, tt.env, stdout, append([]string{"--data-dir", t.TempDir()}, tt.args...)...)
			if err != nil {
				t.Fatalf("%v: %v\n%q", tt.args, err, term)
			}
			all := term + out.String()
			if strings.ContainsRune(all, 0x1b) {
				t.Errorf("%v wrote an escape sequence: %q", tt.args, all)
			}
			if !strings.Contains(all, "mdctl") {
				t.Errorf("%v printed no output: %q", tt.args, all)
			}
		})
	}
}

// TestTUIWithoutTerminal: tui refuses in one line when stdout is no
// terminal, and says how to read the event stream instead.
func TestTUIWithoutTerminal(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--data-dir", dir, "tui")
	cmd.Stdin = strings.NewReader("")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		t.Fatalf("tui without a terminal succeeded: %q", stdout.String())
	}
	msg := stderr.String()
	if strings.Count(strings.TrimSpace(msg), "\n") != 0 || stdout.Len() != 0 {
		t.Errorf("want one line on stderr, got stdout %q stderr %q", stdout.String(), msg)
	}
	want := "curl --unix-socket " + filepath.Join(dir, "admin.sock") + " http://mdctl/events"
	if !strings.Contains(msg, want) || strings.ContainsRune(msg, 0x1b) {
		t.Errorf("stderr %q does not say %q", msg, want)
	}
}

// TestTUIOnSilentTerminal: the TUI on a terminal that answers nothing
// draws at once and quits on q; under NO_COLOR its screen carries no
// colour (bold and reverse only), and without NO_COLOR it does.
func TestTUIOnSilentTerminal(t *testing.T) {
	bin := buildBinary(t)
	for _, tt := range []struct {
		name   string
		env    []string
		colour bool
	}{
		{"colour", nil, true},
		{"NO_COLOR", []string{"NO_COLOR=1"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			screen := runTUI(t, bin, tt.env)
			switch code := termtest.ColourCode(screen); {
			case tt.colour && code == "":
				t.Errorf("no colour on a colour terminal: %q", screen)
			case !tt.colour && code != "":
				t.Errorf("colour code %q under NO_COLOR: %q", code, screen)
			}
		})
	}
}

// runTUI runs `mdctl tui` on a 120x30 pty whose other end only reads, but
// for one q once the screen shows the header, and returns what it drew.
func runTUI(t *testing.T, bin string, env []string) string {
	t.Helper()
	master, slave := openPTY(t)
	if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 30, Col: 120}); err != nil {
		t.Fatalf("pty size: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--data-dir", t.TempDir(), "tui")
	onTerminal(t, cmd, slave, env)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var mu sync.Mutex
	var got bytes.Buffer
	drawn := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			mu.Lock()
			got.Write(buf[:n])
			if bytes.Contains(got.Bytes(), []byte("mdctl live")) && drawn != nil {
				close(drawn)
				drawn = nil
			}
			mu.Unlock()
			if err != nil {
				return // EIO once the TUI has exited
			}
		}
	}()
	select {
	case <-drawn:
	case <-ctx.Done():
	}
	if _, err := master.Write([]byte("q")); err != nil {
		t.Fatalf("type q: %v", err)
	}
	err := cmd.Wait()
	mu.Lock()
	defer mu.Unlock()
	if err != nil || !strings.Contains(got.String(), "mdctl live") {
		t.Fatalf("tui: %v; the terminal got %q", err, got.String())
	}
	return got.String()
}

// buildBinary builds the real mdctl once per test: what a package init
// does can only be seen in a binary of its own.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mdctl")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
