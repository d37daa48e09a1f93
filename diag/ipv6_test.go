package diag

import (
	"net"
	"net/http"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/server/dataplane"
)

// dualStackTopo has an isolated dual-stack network, whose DHCP port holds
// fe80::a9fe:a9fe, and a routed one, whose guest routes fe80::a9fe:a9fe
// via the router: guests on both ask over IPv6 first.
const dualStackTopo = `
settings:
  metadata_proxy_shared_secret: s3cret
  enable_isolated_metadata: "true"
routers:
  - {name: r6, project: demo}
networks:
  - {name: iso6, project: demo, cidr: 10.90.33.0/24, ipv6_cidr: "fd90:33::/64"}
  - {name: routed6, project: demo, cidr: 10.90.37.0/24, ipv6_cidr: "fd90:37::/64", router: r6}
instances:
  - {name: vm6, project: demo, network: iso6, ip: 10.90.33.10}
  - {name: vm6r, project: demo, network: routed6, ip: 10.90.37.10}
`

// TestTraceProbesIPv6: on a guest with IPv6 the end-to-end probe also asks
// as cloud-init >= 23.1 does, over IPv6 with the zone in Host, and a
// healthy chain answers it as it answers IPv4.
func TestTraceProbesIPv6(t *testing.T) {
	w := newWorld(t, dualStackTopo)
	o := opts(w, serveAll(w))
	w.LabUp()
	for mode, vm := range map[string]string{ModeDHCP: "vm6", ModeRouter: "vm6r"} {
		t.Run(mode, func(t *testing.T) {
			r := waitHealthy(t, o, vm)
			// A fresh guest's and router's link-local addresses pass DAD
			// first (about a second): until then IPv6 gets no answer,
			// which is evidence only and leaves the trace passing.
			for i := 0; i < 50 && (r.Probe.IPv6 == nil || r.Probe.IPv6.Status == 0); i++ {
				t.Logf("try %d: IPv6 probe %+v", i, r.Probe.IPv6)
				time.Sleep(100 * time.Millisecond)
				r = trace(t, o, vm)
			}
			v6 := r.Probe.IPv6
			if r.Mode != mode || v6 == nil {
				t.Fatalf("mode %s, IPv6 probe %+v on a dual-stack guest", r.Mode, v6)
			}
			if v6.Host != "[fe80::a9fe:a9fe%eth0]" || v6.URL != "http://[fe80::a9fe:a9fe%25eth0]"+r.Probe.Path {
				t.Errorf("IPv6 probe %+v, want cloud-init's URL and urllib3's Host", v6)
			}
			if v6.Status == 0 || v6.Status != r.Probe.Status || v6.Error != "" {
				t.Errorf("IPv6 probe answered %d (%s), IPv4 %d", v6.Status, v6.Error, r.Probe.Status)
			}
		})
	}
}

// TestTraceCatchesRefusedZoneHost: a proxy that answers IPv4 but refuses
// the zone Host over IPv6 (as mdctl's did before issue 12) fails the proxy
// hop, where every hop passed before: the guest's IPv6 requests are
// redirected, in the DHCP namespace, to a listener that answers as that
// proxy did.
func TestTraceCatchesRefusedZoneHost(t *testing.T) {
	w := newWorld(t, dualStackTopo)
	o := opts(w, serveAll(w))
	w.LabUp()
	waitHealthy(t, o, "vm6")
	ns := dataplane.DHCPNamespace(w.Network("iso6").ID)
	var ln net.Listener
	if err := dataplane.Do(ns, func() (err error) { ln, err = net.Listen("tcp6", "[::]:8081"); return err }); err != nil {
		t.Fatal(err)
	}
	refuser := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Host, "%") {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte("<html><body><h1>400 Bad request</h1>\nYour browser sent an invalid request.\n</body></html>\n"))
			return
		}
		http.NotFound(w, r)
	})}
	go refuser.Serve(ln)
	t.Cleanup(func() { refuser.Close() })
	rule := func(op string) []string {
		return []string{"ip6tables", "-t", "nat", op, "PREROUTING", "-p", "tcp", "-d", dataplane.MetadataIPv6, "--dport", "80", "-j", "REDIRECT", "--to-ports", "8081"}
	}
	inNS(t, ns, rule("-I")...)
	t.Cleanup(func() { inNS(t, ns, rule("-D")...) })

	r := trace(t, o, "vm6")
	h := r.Hop(HopProxy)
	if r.OK || r.FailedHop != HopProxy || h.OK || !strings.Contains(h.Detail, "[fe80::a9fe:a9fe%eth0]") || !strings.Contains(h.Detail, "gets 400") {
		t.Fatalf("trace passed or blamed another hop (failed %q): proxy hop %+v", r.FailedHop, h)
	}
	if r.Probe.IPv6 == nil || r.Probe.IPv6.Status != 400 {
		t.Errorf("IPv6 probe %+v, want the refuser's 400", r.Probe.IPv6)
	}
	// serve's refusal log carries the probe's path, whose last part is its own.
	if want := logHint(path.Base(r.Probe.Path)); !strings.Contains(h.Hint, want) {
		t.Errorf("proxy hint %q lacks %q", h.Hint, want)
	}
}
