package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/dataplane"
)

// routerLinkLocals are the IPv6 link-local addresses of the router's qr-
// interfaces, as a guest on the segment sees them.
func routerLinkLocals(t *testing.T, routerNS string) []string {
	t.Helper()
	out, stderr, err := testworld.InNS(routerNS, 5*time.Second, "ip", "-6", "-o", "addr", "show", "scope", "link")
	if err != nil {
		t.Fatalf("ip -6 addr in %s: %v %s", routerNS, err, stderr)
	}
	var lls []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		// "7: qr-xxxx@if6    inet6 fe80::…/64 scope link"
		if len(f) < 4 || !strings.HasPrefix(f[1], "qr-") || f[2] != "inet6" {
			continue
		}
		lls = append(lls, strings.SplitN(f[3], "/", 2)[0])
	}
	if len(lls) == 0 {
		t.Fatalf("no link-local address on a qr- interface in %s:\n%s", routerNS, out)
	}
	return lls
}

// assertNoAnswer: a guest's request to url gets no HTTP answer at all.
func assertNoAnswer(t *testing.T, ns, url, what string) {
	t.Helper()
	out, _, err := testworld.InNS(ns, 10*time.Second, "curl", "-g", "-s", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}", url)
	if err == nil || strings.TrimSpace(out) != "000" {
		t.Errorf("%s: a guest reached %s (curl: %q, %v), want no answer", what, url, out, err)
	}
}

// TestGuestCannotReachProxyPortDirectly: neutron's filter INPUT pair
// (ACCEPT what the mangle rule marked, DROP the rest to :9697) guards the
// proxy in both families, so a guest that skips 169.254.169.254 and dials
// the router's own addresses on 9697 gets nothing, while the metadata
// address still answers. The IPv4-only router matters most: its proxy
// listens on [::]:9697 too and every qr- interface has a link-local
// address.
func TestGuestCannotReachProxyPortDirectly(t *testing.T) {
	for _, tc := range []struct {
		name, topo, guest, router string
		v4gw                      string
	}{
		{"ipv4-only router", testworld.RoutedTopo, "vm1", "r1", "10.90.1.1"},
		{"dual-stack router", ipv6Topo, "vm6-routed", "r1", "10.90.31.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := testworld.New(t, tc.topo)
			w.StartServe(testworld.ServeOptions{})
			w.LabUp()
			ns := w.GuestNS(tc.guest)
			waitServing(t, ns)
			assertNoAnswer(t, ns, fmt.Sprintf("http://%s:%d/openstack", tc.v4gw, dataplane.RouterProxyPort), "IPv4")
			for _, ll := range routerLinkLocals(t, w.RouterNS(tc.router)) {
				url := fmt.Sprintf("http://[%s%%%s]:%d/openstack", ll, dataplane.GuestInterface, dataplane.RouterProxyPort)
				assertNoAnswer(t, ns, url, "IPv6 link-local")
			}
			if code, body := testworld.Curl(ns, "http://169.254.169.254/openstack"); code != 200 {
				t.Errorf("the metadata address itself: %d %s", code, body)
			}
		})
	}
}
