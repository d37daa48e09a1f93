package multihost

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/dataplane"
)

// TestHostsAreMachines: what the simulation promises its users. Each
// host has its own /run/netns (a namespace made on one is seen on no
// other, nor on the machine) and host name; hosts reach each other on
// the management network, and a guest reaches every host's bridge of its
// segment (one L2 wire); Kill ends the host's processes and takes it off
// the wire, and the others carry on.
func TestHostsAreMachines(t *testing.T) {
	c := New(t, []string{"node-a", "node-b"}, "br-x")
	a, b := c.Hosts[0], c.Hosts[1]

	if _, err := a.Run(10*time.Second, "ip", "netns", "add", "qrouter-same"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Run(10*time.Second, "ip", "netns", "add", "qrouter-same"); err != nil {
		t.Fatalf("a namespace of the same name on a second host: %v", err)
	}
	if _, err := a.Run(10*time.Second, "ip", "netns", "add", "only-on-a"); err != nil {
		t.Fatal(err)
	}
	for h, want := range map[*Host][]string{a: {"only-on-a", "qrouter-same"}, b: {"qrouter-same"}} {
		got, err := h.Namespaces()
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s's /run/netns: %v %v, want %v", h.Name, got, err, want)
		}
	}
	for _, name := range []string{"only-on-a", "qrouter-same"} {
		if _, err := os.Stat(filepath.Join(dataplane.NetnsDir, name)); err == nil {
			t.Errorf("%s, made on a host, is in the machine's %s", name, dataplane.NetnsDir)
		}
	}
	if out, err := b.Run(10*time.Second, "hostname"); strings.TrimSpace(out) != "node-b" {
		t.Errorf("hostname on node-b: %q %v", out, err)
	}
	if _, err := a.Run(10*time.Second, "touch", "/var/lib/mdctl/on-a"); err != nil {
		t.Fatal(err)
	}
	if out, err := b.Run(10*time.Second, "ls", "-A", "/var/lib", "/var/lib/mdctl"); err != nil || strings.Join(strings.Fields(out), " ") != "/var/lib: mdctl /var/lib/mdctl:" {
		t.Errorf("node-b's /var/lib: %q %v, want its own, holding an empty mdctl", out, err)
	}
	if _, err := os.Stat("/var/lib/mdctl/on-a"); err == nil {
		t.Error("a file written on node-a's disk is on the machine's")
	}

	// Addresses on each host's segment bridge, as a router's port would
	// have, and a guest on the wire.
	for i, h := range c.Hosts {
		if _, err := h.Run(10*time.Second, "ip", "addr", "add", fmt.Sprintf("10.90.99.%d/24", i+1), "dev", "br-x"); err != nil {
			t.Fatal(err)
		}
	}
	guest := c.Guest("br-x", "fa:16:3e:00:00:09")
	if _, stderr, err := testworld.InNS(guest, 10*time.Second, "ip", "addr", "add", "10.90.99.9/24", "dev", dataplane.GuestInterface); err != nil {
		t.Fatal(err, stderr)
	}
	reach(t, a.NS, b.NS, b.Addr, true, "node-a to node-b on the management network")
	reach(t, guest, a.NS, "10.90.99.1", true, "guest to node-a's bridge")
	reach(t, guest, b.NS, "10.90.99.2", true, "guest to node-b's bridge")

	p := a.Start("sleep", "600")
	a.Kill()
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Error("a process on node-a outlived its host")
	}
	if ok, _ := dataplane.NamespaceExists(a.NS); ok {
		t.Error("node-a's network namespace is still there")
	}
	if _, err := a.Run(time.Second, "true"); err == nil {
		t.Error("a command ran on a dead host")
	}
	reach(t, guest, "", "10.90.99.1", false, "guest to dead node-a's bridge")
	reach(t, guest, b.NS, "10.90.99.2", true, "guest to node-b's bridge after node-a died")
}

// reach checks whether a TCP connection from namespace from gets to
// addr, where a listener is opened in namespace at ("": none, the host
// holding addr is gone, and then nothing may answer).
func reach(t *testing.T, from, at, addr string, want bool, what string) {
	t.Helper()
	if at != "" {
		ln, err := dataplane.ListenTCP(at, "tcp", net.JoinHostPort(addr, "7999"))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				conn.Close()
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := dataplane.DialContext(ctx, from, "tcp", net.JoinHostPort(addr, "7999"))
	if err == nil {
		conn.Close()
	}
	if got := err == nil; got != want {
		t.Errorf("%s: connected=%v (%v), want %v", what, got, err, want)
	}
	// Not even a refusal: a dead host answers nothing.
	var ne net.Error
	if !want && err != nil && (!errors.As(err, &ne) || !ne.Timeout()) {
		t.Errorf("%s: %v, want no answer at all (a timeout)", what, err)
	}
}
