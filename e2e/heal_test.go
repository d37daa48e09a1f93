package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/server/events"
)

// repairs reads mdctl_dataplane_repairs_total from the serve's admin socket.
func repairs(t *testing.T, dir string) int {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(dir, admin.SocketName))
		},
	}}
	resp, err := c.Get("http://admin/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + events.DataplaneRepairs + ` (\d+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in /metrics:\n%s", events.DataplaneRepairs, b)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestServeHealsKernelState: rules flushed and a namespace deleted by
// someone else, with the store unchanged, come back within seconds, and
// /metrics counts the repairs.
func TestServeHealsKernelState(t *testing.T) {
	w := testworld.New(t, testworld.RoutedTopo)
	w.StartServe(testworld.ServeOptions{Resync: time.Second})
	w.LabUp()
	guest, router := w.GuestNS("vm1"), w.RouterNS("r1")
	waitServing(t, guest)
	if n := repairs(t, w.Dir); n != 0 {
		t.Fatalf("repairs before anything was broken: %d", n)
	}

	if _, stderr, err := testworld.InNS(router, 10*time.Second, "iptables", "-t", "nat", "-F"); err != nil {
		t.Fatalf("flush: %v %s", err, stderr)
	}
	testworld.WaitFor(t, 20*time.Second, "the REDIRECT rule restored", func() error {
		if !strings.Contains(ruleDump(t, router), "REDIRECT") {
			return fmt.Errorf("no REDIRECT in %s", router)
		}
		return nil
	})
	waitServing(t, guest)
	afterFlush := repairs(t, w.Dir)
	if afterFlush == 0 {
		t.Errorf("a flushed rule set was restored but not counted")
	}

	if err := dataplane.DeleteNamespace(router); err != nil {
		t.Fatal(err)
	}
	testworld.WaitFor(t, 20*time.Second, "the router namespace restored", func() error {
		if ok, err := dataplane.NamespaceExists(router); !ok {
			return fmt.Errorf("%s missing (%v)", router, err)
		}
		return nil
	})
	waitServing(t, guest)
	if n := repairs(t, w.Dir); n <= afterFlush {
		t.Errorf("repairs after the namespace came back: %d, want more than %d", n, afterFlush)
	}
}
