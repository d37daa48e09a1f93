package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
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

// holdConns opens n connections from inside ns to addr, each sending the
// first byte of a request and then nothing (a slow guest), and closes
// them when the test ends. It returns how many the proxy closed at once.
func holdConns(t *testing.T, ns, addr string, n int) (closedAtOnce int) {
	t.Helper()
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	err := dataplane.Do(ns, func() error {
		for range n {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return fmt.Errorf("connection %d: %w", len(conns)+1, err)
			}
			conns = append(conns, c)
			c.Write([]byte("G"))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("holding %d connections in %s: %v", n, ns, err)
	}
	// Read all at once under one deadline: those held never answer, the
	// rest see their close (a read after a passed deadline would not).
	deadline := time.Now().Add(3 * time.Second)
	var closed atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(deadline)
			// EOF, or a reset: the proxy closed with the unread "G" pending.
			if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				closed.Add(1)
			}
		}()
	}
	wg.Wait()
	closedAtOnce = int(closed.Load())
	return closedAtOnce
}

// TestSlowGuestDoesNotStarveItsRouter: one guest holding more slow
// connections than the listener's cap (1,024, haproxy's maxconn) used to
// leave every other guest of its router unserved for ~27 s. With the
// per-source cap the hog keeps metadata_proxy_conns_per_source of them and
// cloud-init on the second guest crawls as usual meanwhile.
func TestSlowGuestDoesNotStarveItsRouter(t *testing.T) {
	w := testworld.New(t, testworld.RoutedTopo)
	w.StartServe(testworld.ServeOptions{})
	w.LabUp()
	hog, victim := w.GuestNS("vm1"), w.GuestNS("vm2")
	waitServing(t, hog)
	waitServing(t, victim)

	const n = 1100
	closed := holdConns(t, hog, dataplane.MetadataIPv4+":80", n)
	perSource := store.DefaultConfig().ProxyConnsPerSource
	t.Logf("hog: %d connections, %d closed at once (cap %d)", n, closed, perSource)
	if closed != n-perSource {
		t.Errorf("%d of the hog's %d connections closed at once, want %d", closed, n, n-perSource)
	}
	if c := testworld.RunCrawl(t, victim, "openstack"); c.Name != "vm2" {
		t.Errorf("victim read %q", c.Name)
	}
}

// rawInGuest sends raw from inside ns to the metadata address in one
// write, as a client's request goes (a shell's line-buffered printf sends
// a line a write, and a server that answers after the first line resets
// the rest), and returns what came back within 5 s.
func rawInGuest(t *testing.T, ns, raw string) string {
	t.Helper()
	var c net.Conn
	err := dataplane.Do(ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp", net.JoinHostPort(dataplane.MetadataIPv4, "80"), 5*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("raw request from %s: %v", ns, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(raw)); err != nil {
		t.Fatalf("raw request from %s: %v", ns, err)
	}
	out, err := io.ReadAll(c)
	if err != nil && len(out) == 0 {
		t.Fatalf("raw request %q from %s: nothing back: %v", raw, ns, err)
	}
	return string(out)
}

// TestOddRequestsThroughChain: what haproxy forwards, the chain answers at
// once and as neutron + nova would: OPTIONS * reaches the API as /*, whose
// 404 nova's CORS filter turns into an empty 200 (oslo_middleware/cors.py
// _apply_cors_preflight_headers; server/api/pipeline.go), which the agent
// relays (neutron/common/metadata.py _http_response), not the agent's 500;
// and an LF-only request is served (not a 30 s wait for a 408).
func TestOddRequestsThroughChain(t *testing.T) {
	w := testworld.New(t, testworld.RoutedTopo)
	w.StartServe(testworld.ServeOptions{})
	w.LabUp()
	ns := w.GuestNS("vm1")
	waitServing(t, ns)
	for _, tc := range []struct{ name, raw, status, body string }{
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n", "HTTP/1.1 200 ", "Content-Length: 0\r\n"},
		{"GET *", "GET * HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n", "HTTP/1.1 404 ", "The resource could not be found."},
		{"LF only", "GET /openstack/latest/meta_data.json HTTP/1.1\nHost: 169.254.169.254\nConnection: close\n\n", "HTTP/1.1 200 ", `"name": "vm1"`},
	} {
		out := rawInGuest(t, ns, tc.raw)
		if !strings.HasPrefix(out, tc.status) || !strings.Contains(out, tc.body) {
			t.Errorf("%s: got %.300q, want %q… with %q", tc.name, out, tc.status, tc.body)
		}
	}
}

// TestGuestReachesOnlyItsOwnProxy: from a guest's namespace nothing but
// its own router's proxy answers: not the API's port or the admin
// endpoint's on any of the host's addresses, not another router's
// addresses, and its router's namespace listens on nothing but the proxy
// (the agent is a unix socket on the host, with no listener in front of
// it a guest could reach).
func TestGuestReachesOnlyItsOwnProxy(t *testing.T) {
	w := testworld.New(t, `
settings:
  metadata_proxy_shared_secret: s3cret
routers:
  - {name: r1, project: demo}
  - {name: r2, project: demo}
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24, router: r1}
  - {name: net2, project: demo, cidr: 10.90.2.0/24, router: r2}
instances:
  - {name: vm1, project: demo, network: net1, ip: 10.90.1.5}
  - {name: vm3, project: demo, network: net2, ip: 10.90.2.5}
`)
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := adminLn.Addr().String()
	adminLn.Close()
	apiAddr, _ := w.StartServe(testworld.ServeOptions{AdminListen: adminAddr})
	w.LabUp()
	ns := w.GuestNS("vm1")
	readsAs(t, ns, "vm1", "its own proxy:")

	ports := []string{testworld.Port(apiAddr), testworld.Port(adminAddr)}
	hosts := []string{"127.0.0.1", dataplane.MetadataIPv4, "10.90.1.1", "10.90.2.1", "10.90.2.5"}
	hosts = append(hosts, hostAddrs(t)...)
	for _, h := range hosts {
		for _, p := range ports {
			assertNoAnswer(t, ns, "http://"+net.JoinHostPort(h, p)+"/status", "API/admin port")
		}
	}
	// Another router's metadata path: its qr address on 80 and 9697.
	for _, p := range []string{"80", "9697"} {
		assertNoAnswer(t, ns, "http://10.90.2.1:"+p+"/openstack", "router r2")
	}
	out, _, err := testworld.InNS(w.RouterNS("r1"), 5*time.Second, "ss", "-Hltn")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && !strings.HasSuffix(f[3], ":9697") {
			t.Errorf("router namespace listens on %s besides the proxy", f[3])
		}
	}
}

// hostAddrs are the host namespace's own non-loopback addresses.
func hostAddrs(t *testing.T) []string {
	t.Helper()
	ifs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range ifs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			out = append(out, ipn.IP.String())
		}
	}
	return out
}

// TestIPv6GuestRateLimited: a guest flooding over IPv6 meets the same
// per-source limit as over IPv4 (a flood over IPv6 got 130k answers, all
// 200, when ip_versions defaulted to 4).
func TestIPv6GuestRateLimited(t *testing.T) {
	w := testworld.New(t, ipv6Topo)
	w.Set("metadata_rate_limiting.burst_query_rate_limit", "5")
	w.StartServe(testworld.ServeOptions{})
	w.LabUp()
	ns := w.GuestNS("vm6-routed")
	waitServing6(t, ns, "vm6-routed")
	codes := map[string]int{}
	for range 20 {
		out, _, _ := testworld.InNS(ns, 10*time.Second, "curl", "-g", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", metadataURL6)
		codes[strings.TrimSpace(out)]++
	}
	t.Logf("20 requests over IPv6 in a burst: %v", codes)
	if codes["429"] == 0 {
		t.Errorf("no 429 for 20 IPv6 requests against a burst limit of 5: %v", codes)
	}
}
