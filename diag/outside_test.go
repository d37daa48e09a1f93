package diag

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/server/vmspec"
	"github.com/mdctl/mdctl/store"
)

// A VM outside the lab on the operator's bridge, on a routed network that
// mdctl's dnsmasq serves.
const outsideTopo = `
settings:
  metadata_proxy_shared_secret: s3cret
routers:
  - {name: r1, project: demo}
networks:
  - {name: lan, project: demo, cidr: 10.90.51.0/24, router: r1, bridge: br-lan}
instances:
  - {name: vm-ext, project: demo, network: lan, ip: 10.90.51.10, host: hv1}
`

// TestTraceOutsideVM: trace cannot enter a real VM, so its route hop is
// NOT CHECKED, with the evidence that stands in (the tap, the lease and
// its option 121 route, the router's neighbour entry, the requests serve
// saw), and the verdict is not OK. Evidence of a fault fails the hop:
// cloud-init giving up on the console, another MAC on the VM's address, a
// tap that is down.
func TestTraceOutsideVM(t *testing.T) {
	requireDnsmasq(t)
	w := newWorld(t, outsideTopo)
	w.Host("br-lan")
	vmNS, port := w.OutsideVM("vm-ext")
	o := opts(w, serveAll(w))
	others := []string{HopNamespace, HopIPTables, HopProxy, HopSocket, HopAgent, HopAPI, HopMetadata}
	untilHops(o, "vm-ext", others...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	testworld.WaitFor(t, 10*time.Second, "dnsmasq on lan", func() error {
		return dataplane.GuestLease(ctx, w.Dataplane, vmNS)
	})
	testworld.WaitFor(t, 10*time.Second, "the VM reads metadata", func() error {
		if code, body := testworld.Curl(vmNS, "http://169.254.169.254/openstack"); code != 200 {
			return fmt.Errorf("status %d: %s", code, body)
		}
		return nil
	})

	var r Report
	testworld.WaitFor(t, 5*time.Second, "serve's record of the VM's request", func() error {
		r = Trace(ctx, o, "vm-ext")
		if h := r.Hop(HopRoute); !strings.Contains(strings.Join(h.Evidence, "\n"), "serve answered GET /openstack 200") {
			return fmt.Errorf("no request in the evidence:\n%s", strings.Join(h.Evidence, "\n"))
		}
		return nil
	})
	r = trace(t, o, "vm-ext")
	h := r.Hop(HopRoute)
	if !h.NotChecked || h.OK || r.OK || r.FailedHop != "" || len(r.NotChecked) != 1 || r.NotChecked[0] != HopRoute {
		t.Fatalf("route %+v; report ok=%v failed=%q not_checked=%v", h, r.OK, r.FailedHop, r.NotChecked)
	}
	ev := strings.Join(h.Evidence, "\n")
	for _, want := range []string{
		dataplane.TapName(port.ID) + " (veth, a VM's) is up on br-lan",
		"mdctl's dnsmasq leased 10.90.51.10 to " + port.MACAddress,
		"option 121 served to it: ", "169.254.169.254/32,10.90.51.1",
		"neighbour 10.90.51.10 lladdr " + port.MACAddress,
		"serve answered GET /openstack 200 from 10.90.51.10 (router)",
	} {
		if !strings.Contains(ev, want) {
			t.Errorf("route evidence lacks %q:\n%s", want, ev)
		}
	}
	var b bytes.Buffer
	r.WriteText(&b, false)
	text := b.String()
	if !strings.Contains(text, "? route") || !strings.Contains(text, "NOT CHECKED: a real VM's route table cannot be read") ||
		!strings.Contains(text, "NOT VERIFIED: every checked hop passed, but route could not be checked") || strings.Contains(text, "every hop passed") {
		t.Errorf("text:\n%s", text)
	}

	t.Run("console says cloud-init gave up", func(t *testing.T) {
		path := vmspec.ConsolePath(w.Dir, w.Instance("vm-ext").ID)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		console := "[   9.0] cloud-init[301]: 2026-12-03 10:00:13,000 - url_helper.py[WARNING]: Calling 'http://169.254.169.254/openstack' failed [9/120s]: request error\n" +
			"[ 125.0] cloud-init[301]: 2026-12-03 10:02:03,000 - DataSourceOpenStack.py[WARNING]: No active metadata service found\n"
		if err := os.WriteFile(path, []byte(console), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(path)
		r := trace(t, o, "vm-ext")
		wantFailure(t, r, HopRoute, "cloud-init in the VM found no metadata service", "No active metadata service found")
		if ev := strings.Join(r.Hop(HopRoute).Evidence, "\n"); !strings.Contains(ev, "console: ") || !strings.Contains(ev, "failed [9/120s]") {
			t.Errorf("console evidence:\n%s", ev)
		}
	})
	t.Run("another MAC holds the VM's address", func(t *testing.T) {
		rif := dataplane.RouterInterfaceName(routerPort(t, w, "lan").ID)
		inNS(t, w.RouterNS("r1"), "ip", "neigh", "replace", "10.90.51.10", "lladdr", "02:00:00:00:00:99", "dev", rif, "nud", "permanent")
		defer inNS(t, w.RouterNS("r1"), "ip", "neigh", "del", "10.90.51.10", "dev", rif)
		wantFailure(t, trace(t, o, "vm-ext"), HopRoute, "answers from 02:00:00:00:00:99", "not from the port's "+port.MACAddress)
	})
	t.Run("the VM's tap is down", func(t *testing.T) {
		tap := dataplane.TapName(port.ID)
		inNS(t, w.Dataplane.HostNamespace, "ip", "link", "set", tap, "down")
		defer inNS(t, w.Dataplane.HostNamespace, "ip", "link", "set", tap, "up")
		wantFailure(t, trace(t, o, "vm-ext"), HopRoute, tap+" is down")
	})
}

// requireDnsmasq skips a test that needs DHCP from mdctl, saying why.
func requireDnsmasq(t *testing.T) {
	t.Helper()
	testworld.RequireRoot(t)
	if _, err := os.Stat(dataplane.DnsmasqBinary); err != nil {
		t.Skip("needs dnsmasq (make test installs dnsmasq-base)")
	}
	if _, err := exec.LookPath(dataplane.DHCPClientBinary); err != nil {
		t.Skip("needs dhclient (make test installs isc-dhcp-client)")
	}
}

// routerPort is the network's router interface port.
func routerPort(t *testing.T, w *testworld.World, network string) store.Port {
	t.Helper()
	ps, err := w.Store.ListPorts(context.Background(), store.PortFilter{
		NetworkIDs: []string{w.Network(network).ID}, DeviceOwners: []string{store.OwnerRouterInterface}})
	if err != nil || len(ps) != 1 {
		t.Fatalf("router port of %s: %v %v", network, ps, err)
	}
	return ps[0]
}
