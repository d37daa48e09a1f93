package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 256)
	n, err := c.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

func TestNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	c := listen(t, path)
	if err := Notify(path, Ready); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c); got != "READY=1" {
		t.Errorf("got %q", got)
	}
	abstract := "@mdctl-sdnotify-test-" + filepath.Base(t.TempDir())
	a := listen(t, "\x00"+abstract[1:])
	if err := Notify(abstract, Stopping); err != nil {
		t.Fatal(err)
	}
	if got := read(t, a); got != "STOPPING=1" {
		t.Errorf("abstract: got %q", got)
	}
	if err := Notify("", Ready); err != nil {
		t.Errorf("no socket: %v", err)
	}
	if err := Notify(filepath.Join(t.TempDir(), "none"), Ready); err == nil {
		t.Error("a missing socket is no error")
	}
}
