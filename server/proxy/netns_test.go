package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/server/dataplane"
)

// TestThroughNamespaces runs the real path: a guest namespace reaches a
// proxy listening inside a router namespace over a veth; the agent must
// see the guest's own address, not anything the guest claimed.
func TestThroughNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	suffix := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff)
	rns, gns := "mdt-r-"+suffix, "mdt-g-"+suffix
	vr, vg := "mdtr"+suffix, "mdtg"+suffix
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{rns, gns} {
		sh("netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	sh("link", "add", vr, "netns", rns, "type", "veth", "peer", "name", vg, "netns", gns)
	sh("-n", rns, "addr", "add", "10.90.77.1/24", "dev", vr)
	sh("-n", gns, "addr", "add", "10.90.77.5/24", "dev", vg)
	for ns, dev := range map[string]string{rns: vr, gns: vg} {
		sh("-n", ns, "link", "set", dev, "up")
		sh("-n", ns, "link", "set", "lo", "up")
	}

	agent := newFakeAgent(t)
	ln, err := dataplane.ListenTCP(rns, "tcp", "10.90.77.1:9697")
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, New(Options{AgentSocket: agent.sock, Logger: quiet()}), Identity{RouterID: "r-ns"}, ln)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := dataplane.DialContext(ctx, gns, "tcp", "10.90.77.1:9697")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "GET /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\nX-Forwarded-For: 10.90.77.9\r\nX-Neutron-Network-ID: evil\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	h := agent.last(t)
	if xff := h.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] != "10.90.77.5" {
		t.Fatalf("agent saw X-Forwarded-For %q, want the guest's 10.90.77.5", xff)
	}
	if h.Get("X-Neutron-Router-ID") != "r-ns" || h.Get("X-Neutron-Network-ID") != "" {
		t.Fatalf("agent saw ids %v", h)
	}
}
