package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
	"github.com/mdctl/mdctl/store/topology"
)

// Three networks on the operator's own bridges: routed with mdctl's DHCP,
// isolated (metadata from the DHCP namespace), and routed with dhcp: false
// (the operator's DHCP, here the guest's own static address). Two VMs are
// bound to a host outside the lab; the third is not, and its tap alone
// tells the lab it is a VM's.
const bridgeTopo = `
settings:
  metadata_proxy_shared_secret: s3cret
  enable_isolated_metadata: true
routers:
  - {name: r1, project: demo}
networks:
  - {name: lan, project: demo, cidr: 10.90.41.0/24, router: r1, bridge: br-lan}
  - {name: lan-iso, project: demo, cidr: 10.90.42.0/24, bridge: br-iso}
  - {name: lan-static, project: demo, cidr: 10.90.43.0/24, router: r1, bridge: br-static, dhcp: false}
instances:
  - {name: vm-lan, project: demo, network: lan, ip: 10.90.41.10, host: hv1}
  - {name: vm-iso, project: demo, network: lan-iso, ip: 10.90.42.10, host: hv1}
  - {name: vm-static, project: demo, network: lan-static, ip: 10.90.43.10}
`

// TestOutsideVMsOnOperatorBridges: VMs outside the lab whose taps are on
// the operator's bridges get DHCP from mdctl's dnsmasq (by their MAC) and
// metadata through the router and through the DHCP namespace, and with
// dhcp: false through the router with their own address, judged by
// cloud-init's own reader, with no manual step. The lab leaves all three
// alone; removing a network, then the whole data plane, leaves the
// operator's bridges, what else is on them and the VMs' taps.
func TestOutsideVMsOnOperatorBridges(t *testing.T) {
	requireDHCP(t)
	w := testworld.New(t, bridgeTopo)
	host := w.Host("br-lan", "br-iso", "br-static")
	type vm struct {
		ns   string
		port store.Port
	}
	vms := map[string]vm{}
	for _, name := range []string{"vm-lan", "vm-iso", "vm-static"} {
		ns, p := w.OutsideVM(name)
		vms[name] = vm{ns, p}
	}
	_, stop := w.StartServe(testworld.ServeOptions{})
	waitDHCPServer(t, w, "lan")
	waitDHCPServer(t, w, "lan-iso")
	if ok, _ := dataplane.NamespaceExists(dataplane.DHCPNamespace(w.Network("lan-static").ID)); ok {
		t.Error("a dhcp: false network has a qdhcp namespace")
	}

	// The lab plays none of them: two are bound to hv1, the third's tap is
	// a device mdctl did not make.
	w.LabUp()
	for name, v := range vms {
		if ok, _ := dataplane.NamespaceExists(dataplane.GuestNamespace(w.Dataplane.GuestPrefix, dataplane.Guest{InstanceName: name})); ok {
			t.Errorf("lab up built a guest for %s, a VM outside the lab", name)
		}
		if tap := dataplane.TapOf(w.Dataplane, v.port.ID, true); !tap.Exists || tap.Ours {
			t.Errorf("%s's tap after lab up: %+v, want the VM's own", name, tap)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, via := range map[string]string{"vm-lan": "10.90.41.1", "vm-iso": "10.90.42.2"} {
		ns := vms[name].ns
		if err := dataplane.GuestLease(ctx, w.Dataplane, ns); err != nil {
			t.Fatalf("%s: no DHCP lease from mdctl's dnsmasq on the operator's bridge: %v", name, err)
		}
		out, _, _ := testworld.InNS(ns, 5*time.Second, "ip", "-4", "route", "show", "169.254.169.254")
		if !strings.Contains(out, "via "+via) || !strings.Contains(out, "proto dhcp") {
			t.Errorf("%s: metadata route %q, want via %s from the lease (option 121)", name, strings.TrimSpace(out), via)
		}
	}
	// dhcp: false: the address and gateway are the guest's own.
	static := vms["vm-static"].ns
	for _, argv := range [][]string{
		{"ip", "addr", "add", "10.90.43.10/24", "dev", dataplane.GuestInterface},
		{"ip", "route", "add", "default", "via", "10.90.43.1"},
	} {
		if _, stderr, err := testworld.InNS(static, 5*time.Second, argv...); err != nil {
			t.Fatalf("%s: %v %s", strings.Join(argv, " "), err, stderr)
		}
	}
	readsAs(t, vms["vm-lan"].ns, "vm-lan", "through the router on the operator's bridge,")
	readsAs(t, vms["vm-iso"].ns, "vm-iso", "through the DHCP namespace on the operator's bridge,")
	readsAs(t, static, "vm-static", "through the router with dhcp: false,")

	// Removing a network takes its router tap off the operator's bridge
	// and nothing else.
	routerTap := routerTapOn(t, w, "lan-static")
	if _, err := topology.DeleteInstance(ctx, w.Store, "vm-static"); err != nil {
		t.Fatal(err)
	}
	if _, err := topology.DeleteNetwork(ctx, w.Store, "lan-static"); err != nil {
		t.Fatal(err)
	}
	testworld.WaitFor(t, 10*time.Second, "router tap off br-static", func() error {
		if links := hostLinks(t, host); strings.Contains(links, routerTap+"@") {
			return fmt.Errorf("%s still there: %s", routerTap, links)
		}
		return nil
	})
	assertOperatorIntact(t, host, map[string]string{
		"op-2": "br-static", dataplane.TapName(vms["vm-static"].port.ID): "br-static",
	})

	// Stopping serve and tearing the data plane down leaves the rest.
	stop()
	if err := dataplane.NewReconciler(w.Dataplane).Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	assertOperatorIntact(t, host, map[string]string{
		"op-0": "br-lan", "op-1": "br-iso",
		dataplane.TapName(vms["vm-lan"].port.ID): "br-lan", dataplane.TapName(vms["vm-iso"].port.ID): "br-iso",
	})
	if links := hostLinks(t, host); strings.Contains(links, "mdctl:") {
		t.Errorf("mdctl links left on the host after teardown:\n%s", links)
	}
}

// routerTapOn is the host-side tap of the network's router interface.
func routerTapOn(t *testing.T, w *testworld.World, network string) string {
	t.Helper()
	ps, err := w.Store.ListPorts(context.Background(), store.PortFilter{
		NetworkIDs: []string{w.Network(network).ID}, DeviceOwners: []string{store.OwnerRouterInterface}})
	if err != nil || len(ps) != 1 {
		t.Fatalf("router port of %s: %v %v", network, ps, err)
	}
	return dataplane.TapName(ps[0].ID)
}

// hostLinks is `ip -d -o link` of the host stand-in: names, masters and
// aliases.
func hostLinks(t *testing.T, host string) string {
	t.Helper()
	out, stderr, err := testworld.InNS(host, 5*time.Second, "ip", "-o", "-d", "link", "show")
	if err != nil {
		t.Fatalf("ip link in %s: %v %s", host, err, stderr)
	}
	return out
}

// assertOperatorIntact: each link is still there, on its bridge, and the
// bridges with it.
func assertOperatorIntact(t *testing.T, host string, onBridge map[string]string) {
	t.Helper()
	links := hostLinks(t, host)
	for link, br := range onBridge {
		line := ""
		for _, l := range strings.Split(links, "\n") {
			if f := strings.Fields(l); len(f) > 1 && strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0] == link {
				line = l
			}
		}
		if line == "" || !strings.Contains(line, "master "+br+" ") {
			t.Errorf("%s should still be on the operator's %s; ip link says %q", link, br, line)
		}
	}
}
