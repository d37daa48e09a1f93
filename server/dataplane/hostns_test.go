package dataplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/vishvananda/netlink"

	"github.com/mdctl/mdctl/store"
)

// hostNS makes a namespace that stands for the host in this test, holding
// the operator's bridge br-op with a foreign port on it (one end of a veth
// pair: this kernel may lack the dummy driver), and a trunk device; it is
// removed after everything else (registered before testOptions, so its
// cleanup runs last).
func hostNS(t *testing.T) string {
	t.Helper()
	b := make([]byte, 2)
	rand.Read(b)
	name := "mdt-host-" + hex.EncodeToString(b)
	if _, err := EnsureNamespace(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { DeleteNamespace(name) })
	for _, argv := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "add", "br-op", "type", "bridge"},
		{"ip", "link", "set", "br-op", "up"},
		{"ip", "link", "add", "op-port", "type", "veth", "peer", "name", "op-peer"},
		{"ip", "link", "set", "op-port", "master", "br-op", "up"},
		{"ip", "link", "add", "trunk0", "type", "veth", "peer", "name", "trunk0-peer"},
		{"ip", "link", "set", "trunk0", "up"},
	} {
		runIn(t, name, argv...)
	}
	return name
}

func runIn(t *testing.T, ns string, argv ...string) string {
	t.Helper()
	out, err := runInErr(ns, argv...)
	if err != nil {
		t.Fatalf("%s in %s: %v: %s", strings.Join(argv, " "), ns, err, out)
	}
	return out
}

func runInErr(ns string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err := RunIn(ns, cmd)
	return out.String(), err
}

// hostLab is a flat network on the operator's br-op and a VLAN network on
// trunk0, each with a router interface and a DHCP port; vm-lab is for the
// lab to play, vm-real's tap is a real VM's (a tun device the test makes),
// vm-bound is bound to another host.
func hostLab(withVLAN bool) *lab {
	id := func() string { return uuid.NewString() }
	l := &lab{cfg: store.Config{EnableMetadataProxy: true}}
	flat, vlan, rtr := id(), id(), id()
	l.networks = []store.Network{{ID: flat, Name: "flat", Bridge: "br-op"}, {ID: vlan, Name: "v30", Bridge: "trunk0", VLAN: 30}}
	subF := store.Subnet{ID: id(), NetworkID: flat, IPVersion: 4, CIDR: "10.90.31.0/24", GatewayIP: "10.90.31.1", EnableDHCP: true}
	subV := store.Subnet{ID: id(), NetworkID: vlan, IPVersion: 4, CIDR: "10.90.32.0/24", GatewayIP: "10.90.32.1", EnableDHCP: true}
	l.subnets = []store.Subnet{subF, subV}
	l.routers = []store.Router{{ID: rtr, Name: "rtr"}}
	port := testPort
	l.ports = []store.Port{
		port(flat, subF, "10.90.31.1", store.OwnerRouterInterface, rtr, "fa:16:3e:31:00:01"),
		port(flat, subF, "10.90.31.2", store.OwnerDHCP, "dhcp", "fa:16:3e:31:00:02"),
		port(vlan, subV, "10.90.32.1", store.OwnerRouterInterface, rtr, "fa:16:3e:32:00:01"),
		port(vlan, subV, "10.90.32.2", store.OwnerDHCP, "dhcp", "fa:16:3e:32:00:02"),
	}
	vm := func(name string, net store.Network, sub store.Subnet, ip, mac, host string) store.InstanceView {
		p := port(net.ID, sub, ip, store.OwnerCompute, id(), mac)
		p.BindingHostID = host
		l.ports = append(l.ports, p)
		return store.InstanceView{Instance: store.Instance{ID: p.DeviceID, Name: name},
			Ports: []store.PortView{{Port: p, Network: net, Subnets: []store.Subnet{sub}}}}
	}
	l.views = []store.InstanceView{
		vm("vm-lab", l.networks[0], subF, "10.90.31.10", "fa:16:3e:31:00:10", ""),
		vm("vm-real", l.networks[0], subF, "10.90.31.11", "fa:16:3e:31:00:11", ""),
		vm("vm-bound", l.networks[0], subF, "10.90.31.12", "fa:16:3e:31:00:12", "hv1"),
		vm("vm-vlan", l.networks[1], subV, "10.90.32.10", "fa:16:3e:32:00:10", ""),
	}
	if !withVLAN {
		l.networks, l.subnets, l.ports, l.views = l.networks[:1], l.subnets[:1], append(l.ports[:2], l.ports[4:7]...), l.views[:3]
	}
	return l
}

// hostWorld is the test's options with host standing for the host, and
// hostLab's plan; everything it builds goes at the end.
func hostWorld(t *testing.T, host string, withVLAN bool) (context.Context, Options, *lab, Desired) {
	t.Helper()
	opts := testOptions(t)
	opts.HostNamespace = host
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	l := hostLab(withVLAN)
	d := l.plan()
	cleanupNS(t, l.namespaces(d)...)
	return ctx, opts, l, d
}

// needVLAN skips a test when the kernel cannot make 802.1Q links (no 8021q
// driver, as in some CI VMs), and says so.
func needVLAN(t *testing.T, host string) {
	t.Helper()
	if out, err := runInErr(host, "ip", "link", "add", "link", "trunk0", "name", "vlan-probe", "type", "vlan", "id", "4000"); err != nil {
		t.Skipf("this kernel makes no VLAN links (8021q): %v %s", err, strings.TrimSpace(out))
	}
	runIn(t, host, "ip", "link", "del", "vlan-probe")
}

func hostLinks(t *testing.T, ns string) map[string]netlink.Link {
	t.Helper()
	n, err := openNS(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	links, err := n.h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]netlink.Link{}
	for _, l := range links {
		out[l.Attrs().Name] = l
	}
	return out
}

func masterOf(links map[string]netlink.Link, name string) string {
	l, ok := links[name]
	if !ok || l.Attrs().MasterIndex == 0 {
		return ""
	}
	for n, b := range links {
		if b.Attrs().Index == l.Attrs().MasterIndex {
			return n
		}
	}
	return "?"
}

// TestHostBridgeAttach: mdctl plugs its router and DHCP ports into the
// operator's bridge, the lab leaves a real VM's tap and a bound port alone
// (it used to delete the tap and put a veth in its place), a lab guest
// reaches the router across the operator's bridge, and removing everything
// leaves the operator's bridge, its foreign port and the VM's tap where
// they were.
func TestHostBridgeAttach(t *testing.T) {
	needRoot(t)
	host := hostNS(t)
	ctx, opts, l, d := hostWorld(t, host, false)
	if flat := d.Networks[0]; !flat.OnHost || flat.Bridge != "br-op" || flat.VLANLink != "" {
		t.Fatalf("plan: %+v", flat)
	}

	// The real VM's tap exists before mdctl runs, on the operator's bridge.
	realTap := TapName(l.views[1].Ports[0].Port.ID)
	runIn(t, host, "ip", "tuntap", "add", "dev", realTap, "mode", "tap")
	runIn(t, host, "ip", "link", "set", realTap, "master", "br-op", "up")

	rec := NewReconciler(opts)
	for range 2 {
		if err := rec.Apply(ctx, d); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	links := hostLinks(t, host)
	for _, p := range l.ports[:2] {
		if m := masterOf(links, TapName(p.ID)); m != "br-op" {
			t.Errorf("%s (%s) on %q, want br-op", TapName(p.ID), p.DeviceOwner, m)
		}
	}
	if segLinks := linkNames(t, opts.SegmentNamespace); strings.Contains(segLinks, "tap") || strings.Contains(segLinks, "brq") {
		t.Errorf("segment namespace holds links of a host network:\n%s", segLinks)
	}

	guests := Guests(d, l.views)
	for range 2 {
		if err := LabUp(ctx, opts, guests); err != nil {
			t.Fatalf("LabUp: %v", err)
		}
	}
	links = hostLinks(t, host)
	if tap := links[realTap]; tap == nil || tap.Type() != "tuntap" || masterOf(links, realTap) != "br-op" {
		t.Fatalf("the real VM's tap %s after LabUp: %#v on %q; want the tun device left on br-op", realTap, tap, masterOf(links, realTap))
	}
	if _, ok := links[TapName(l.views[2].Ports[0].Port.ID)]; ok {
		t.Errorf("LabUp built a tap for the port bound to hv1")
	}
	st, err := LabStatus(ctx, opts, guests)
	if err != nil {
		t.Fatal(err)
	}
	ext := map[string]string{}
	for _, s := range st {
		if !s.OK() {
			t.Errorf("lab status %s: %+v", s.Namespace, s)
		}
		ext[s.Guest.InstanceName] = s.External
	}
	if ext["vm-real"] == "" || ext["vm-bound"] == "" || ext["vm-lab"] != "" {
		t.Errorf("external = %q; want vm-real and vm-bound external, vm-lab played", ext)
	}
	if m := masterOf(links, TapName(guests[0].PortID)); m != "br-op" {
		t.Errorf("lab guest's tap on %q, want br-op", m)
	}
	assertNeighbour(t, GuestNamespace(opts.GuestPrefix, guests[0]), "10.90.31.1", l.ports[0].MACAddress)

	// Removing the network (and then the whole data plane) takes only
	// mdctl's own links away.
	if err := LabDown(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if err := rec.Apply(ctx, Plan(nil, nil, nil, nil, l.cfg, ReadHost())); err != nil {
		t.Fatalf("Apply of nothing: %v", err)
	}
	if err := rec.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	assertOnlyOursGone(t, host, realTap)
}

// assertOnlyOursGone: the operator's bridge, its foreign port, the trunk
// and the VM's tap are still there and in place; nothing of mdctl's is.
func assertOnlyOursGone(t *testing.T, host, realTap string) {
	t.Helper()
	links := hostLinks(t, host)
	for _, name := range []string{"br-op", "op-port", "trunk0", realTap} {
		if _, ok := links[name]; !ok {
			t.Errorf("%s is gone from the host: mdctl removed what was not its own", name)
		}
	}
	if masterOf(links, "op-port") != "br-op" || masterOf(links, realTap) != "br-op" {
		t.Errorf("foreign ports left br-op: op-port on %q, %s on %q", masterOf(links, "op-port"), realTap, masterOf(links, realTap))
	}
	for name, l := range links {
		if strings.HasPrefix(l.Attrs().Alias, "mdctl:") || strings.HasPrefix(name, "brq") || strings.Contains(name, ".") {
			t.Errorf("%s (alias %q) left on the host", name, l.Attrs().Alias)
		}
	}
}

// TestHostVLANAttach: a network on VLAN 30 of the operator's trunk gets
// trunk0.30 and a brq bridge holding it, as neutron's linuxbridge agent
// makes them; mdctl's ports and lab guests go on that brq, and removing
// the network removes both and leaves the trunk.
func TestHostVLANAttach(t *testing.T) {
	needRoot(t)
	host := hostNS(t)
	needVLAN(t, host)
	ctx, opts, l, d := hostWorld(t, host, true)
	var vlan NetSegment
	for _, n := range d.Networks {
		if n.VLAN != 0 {
			vlan = n
		}
	}
	if !vlan.OnHost || vlan.Bridge != BridgeName(l.networks[1].ID) || vlan.VLANLink != "trunk0.30" {
		t.Fatalf("plan: %+v", vlan)
	}
	rec := NewReconciler(opts)
	for range 2 {
		if err := rec.Apply(ctx, d); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	links := hostLinks(t, host)
	if v, ok := links["trunk0.30"].(*netlink.Vlan); !ok || v.VlanId != 30 || masterOf(links, "trunk0.30") != vlan.Bridge {
		t.Errorf("trunk0.30 = %#v on %q, want VLAN 30 on %s", links["trunk0.30"], masterOf(links, "trunk0.30"), vlan.Bridge)
	}
	for _, p := range l.ports[2:4] {
		if m := masterOf(links, TapName(p.ID)); m != vlan.Bridge {
			t.Errorf("%s (%s) on %q, want %s", TapName(p.ID), p.DeviceOwner, m, vlan.Bridge)
		}
	}
	guests := Guests(d, l.views[3:])
	if err := LabUp(ctx, opts, guests); err != nil {
		t.Fatalf("LabUp: %v", err)
	}
	assertNeighbour(t, GuestNamespace(opts.GuestPrefix, guests[0]), "10.90.32.1", l.ports[2].MACAddress)
	if err := LabDown(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if err := rec.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	links = hostLinks(t, host)
	if _, ok := links["trunk0"]; !ok {
		t.Error("the operator's trunk0 is gone")
	}
	for name := range links {
		if name == "trunk0.30" || name == vlan.Bridge {
			t.Errorf("%s left on the host after teardown", name)
		}
	}
}

// assertNeighbour: a packet from ns to ip (a TCP SYN to a closed port, so
// no tool beyond curl is needed) resolves ip to mac over ARP, so the two
// share an L2.
func assertNeighbour(t *testing.T, ns, ip, mac string) {
	t.Helper()
	runInErr(ns, "curl", "-s", "--max-time", "2", "http://"+ip+":1/")
	out, _ := runInErr(ns, "ip", "neigh", "show", ip)
	if !strings.Contains(out, "lladdr "+mac) {
		t.Errorf("%s cannot reach %s (%s) over L2: neighbour entry %q", ns, ip, mac, strings.TrimSpace(out))
	}
}

// TestHostBridgeMissing: a network naming a bridge that does not exist is
// an error that says so; mdctl creates no bridge in its place.
func TestHostBridgeMissing(t *testing.T) {
	needRoot(t)
	host := hostNS(t)
	opts := testOptions(t)
	opts.HostNamespace = host
	n := store.Network{ID: uuid.NewString(), Bridge: "br-nope"}
	err := NewReconciler(opts).Apply(context.Background(), Plan([]store.Network{n}, nil, nil, nil, store.Config{}, ReadHost()))
	if err == nil || !strings.Contains(err.Error(), "br-nope does not exist") {
		t.Fatalf("Apply = %v, want br-nope does not exist", err)
	}
	if _, ok := hostLinks(t, host)["br-nope"]; ok {
		t.Error("Apply created the operator's bridge")
	}
}

// TestForeignTapInSegment: in mdctl's own segment, too, a tap name held by
// a device mdctl did not make (QEMU run in the segment namespace) is
// reported, never replaced.
func TestForeignTapInSegment(t *testing.T) {
	needRoot(t)
	opts := testOptions(t)
	ctx := context.Background()
	l := newLab()
	d := l.plan()
	cleanupNS(t, l.namespaces(d)...)
	if err := NewReconciler(opts).Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	g := Guests(d, l.views)
	tap := TapName(g[0].PortID)
	runIn(t, opts.SegmentNamespace, "ip", "tuntap", "add", "dev", tap, "mode", "tap")
	if err := LabUp(ctx, opts, g); err != nil {
		t.Fatal(err)
	}
	if got := TapOf(opts, g[0].PortID, false); !got.Exists || got.Ours || got.Type != "tuntap" {
		t.Errorf("tap after LabUp: %+v, want the foreign tun device", got)
	}
	if ok, _ := NamespaceExists(GuestNamespace(opts.GuestPrefix, g[0])); ok {
		t.Error("LabUp built a guest for a port whose tap a VM holds")
	}
	n, err := openNS(opts.SegmentNamespace)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	target, err := ensureOwnedNamespace(GuestNamespace(opts.GuestPrefix, g[0]), ownerMark(opts.SegmentNamespace), opts.withDefaults().Logger)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	ifc := Interface{PortID: g[0].PortID, Name: GuestInterface, Tap: tap, Bridge: g[0].Bridge}
	if err := ensureVeth(n, target, ifc, aliasGuest+"x", ownedInSegment); !errors.Is(err, ErrForeignTap) {
		t.Errorf("ensureVeth over a foreign tap = %v, want ErrForeignTap", err)
	}
}
