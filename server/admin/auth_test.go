package admin

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/server/events"
)

// TestTCPNeedsToken: over TCP every request needs the bearer token (the
// events carry instance ids and guest addresses); the unix socket, guarded
// by its file mode, does not.
func TestTCPNeedsToken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	sock := filepath.Join(t.TempDir(), SocketName)
	const tok = "0123456789abcdef0123"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- New(Options{Bus: events.NewBus(), SocketPath: sock, TCPAddr: addr, Token: tok, Logger: slog.New(slog.DiscardHandler)}).Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })

	status := func(addr string) error {
		c, err := NewClient(addr)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Status(context.Background())
		return err
	}
	for i := 0; status(sock) != nil; i++ {
		if i == 500 {
			t.Fatalf("socket: %v", status(sock))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Setenv(TokenEnv, "")
	for _, tc := range []struct {
		name, addr, env string
		ok              bool
	}{
		{"no token", "http://" + addr, "", false},
		{"wrong token", "http://" + addr, "0123456789abcdef0124", false},
		{"token from the environment", "http://" + addr, tok, true},
		{"token in the URL", "http://:" + tok + "@" + addr, "", true},
		{"socket needs none", sock, "", true},
	} {
		t.Setenv(TokenEnv, tc.env)
		err := status(tc.addr)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err=%v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && (!strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), tok)) {
			t.Errorf("%s: error %q should say 401 and never hold the token", tc.name, err)
		}
	}
}

func TestTCPWithoutTokenRefused(t *testing.T) {
	err := New(Options{Bus: events.NewBus(), TCPAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "needs a token") {
		t.Fatalf("Run without a token: %v", err)
	}
}

func TestLoadToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokenFileName)
	if _, err := LoadToken(path, false); err == nil {
		t.Fatal("a missing token file was accepted without create")
	}
	tok, err := LoadToken(path, true)
	if err != nil || len(tok) != 64 {
		t.Fatalf("made token %q: %v", tok, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode: %v %v", fi.Mode(), err)
	}
	if again, err := LoadToken(path, true); err != nil || again != tok {
		t.Fatalf("second load: %q %v, want the same token", again, err)
	}
	os.WriteFile(path, []byte("short\n"), 0o600)
	if _, err := LoadToken(path, false); err == nil {
		t.Fatal("a 5-character token was accepted")
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9100": true, "[::1]:9100": true, "localhost:9100": true, "127.9.9.9:1": true,
		"0.0.0.0:9100": false, ":9100": false, "[::]:9100": false, "10.0.0.5:9100": false, "node1:9100": false, "junk": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
