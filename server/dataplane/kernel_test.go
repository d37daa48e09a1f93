package dataplane

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/mdctl/mdctl/store"
)

// needRoot skips kernel tests for non-root users: they make real namespaces.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, veths and iptables rules")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("needs the iptables binary (apt-get install iptables)")
	}
}

// testOptions gives the test its own segment namespace (and so its own
// owner mark) and guest prefix, and removes all of it at the end, even when
// the test fails.
func testOptions(t *testing.T) Options {
	t.Helper()
	b := make([]byte, 2)
	rand.Read(b)
	sfx := hex.EncodeToString(b)
	opts := Options{SegmentNamespace: "mdt-seg-" + sfx, GuestPrefix: "mdt-vm-" + sfx + "-"}
	t.Cleanup(func() {
		ctx := context.Background()
		if err := LabDown(ctx, opts); err != nil {
			t.Errorf("cleanup: lab down: %v", err)
		}
		if err := NewReconciler(opts).Teardown(ctx); err != nil {
			t.Errorf("cleanup: teardown: %v", err)
		}
		// Belt and braces: nothing with this test's names may survive.
		left, _ := ListNamespaces("mdt-")
		for _, n := range left {
			if strings.Contains(n, sfx) {
				t.Errorf("cleanup left namespace %s", n)
				DeleteNamespace(n)
			}
		}
	})
	return opts
}

// cleanupNS removes namespaces a test names directly (qrouter-/qdhcp- ones
// from a failed Apply that Teardown could not see).
func cleanupNS(t *testing.T, names ...string) {
	t.Cleanup(func() {
		for _, n := range names {
			if ok, _ := NamespaceExists(n); ok {
				removeOwnedNamespace(n)
			}
		}
	})
}

func TestNamespacePrimitives(t *testing.T) {
	needRoot(t)
	opts := testOptions(t)
	name := opts.GuestPrefix + "prim"
	cleanupNS(t, name)

	created, err := EnsureNamespace(name)
	if err != nil || !created {
		t.Fatalf("EnsureNamespace = %v, %v; want created", created, err)
	}
	if created, err := EnsureNamespace(name); err != nil || created {
		t.Fatalf("second EnsureNamespace = %v, %v; want existing", created, err)
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil || !strings.Contains(string(out), name) {
		t.Errorf("ip netns list does not show %s: %v\n%s", name, err, out)
	}

	host, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	err = Do(name, func() error {
		cur, err := netns.Get()
		if err != nil {
			return err
		}
		defer cur.Close()
		if cur.Equal(host) {
			return errors.New("fn ran in the host namespace")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	wantErr := errors.New("from fn")
	if err := Do(name, func() error { return wantErr }); !errors.Is(err, wantErr) {
		t.Errorf("Do error = %v, want fn's error", err)
	}

	// lo is down in a fresh namespace; bring it up through an `ip` run inside.
	if err := RunIn(name, exec.Command("ip", "link", "set", "lo", "up")); err != nil {
		t.Fatalf("RunIn: %v", err)
	}
	l, err := ListenTCP(name, "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Write([]byte("in-ns"))
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := DialContext(ctx, name, "tcp4", l.Addr().String())
	if err != nil {
		t.Fatalf("DialContext inside: %v", err)
	}
	got, _ := io.ReadAll(c)
	c.Close()
	if string(got) != "in-ns" {
		t.Errorf("read %q", got)
	}
	// The same address from the host namespace is another socket space.
	if c, err := net.DialTimeout("tcp4", l.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Errorf("listener in %s reachable from the host namespace", name)
	}
	// The test's own thread never moved.
	if cur, err := netns.Get(); err != nil || !cur.Equal(host) {
		t.Errorf("caller's namespace changed: %v", err)
	}

	if err := DeleteNamespace(name); err != nil {
		t.Fatal(err)
	}
	if ok, err := NamespaceExists(name); err != nil || ok {
		t.Errorf("exists after delete = %v, %v", ok, err)
	}
	if err := DeleteNamespace(name); err != nil {
		t.Errorf("deleting a missing namespace: %v", err)
	}
	if err := Do(name, func() error { return nil }); err == nil {
		t.Error("Do in a deleted namespace succeeded")
	}
	if err := Do("../etc", func() error { return nil }); err == nil {
		t.Error("Do accepted a path-like name")
	}
}

// lab is a small cloud: network R (10.90.11.0/24) behind router rtr, and
// network I (10.90.12.0/24) isolated; a DHCP port at .2 on each, a guest at
// .10 on each.
type lab struct {
	networks []store.Network
	subnets  []store.Subnet
	ports    []store.Port
	routers  []store.Router
	views    []store.InstanceView
	cfg      store.Config
}

func newLab() *lab {
	id := func() string { return uuid.NewString() }
	l := &lab{cfg: store.Config{EnableIsolatedMetadata: true, EnableMetadataProxy: true}}
	netR, netI, rtr := id(), id(), id()
	l.networks = []store.Network{{ID: netR, Name: "routed"}, {ID: netI, Name: "isolated"}}
	subR := store.Subnet{ID: id(), NetworkID: netR, IPVersion: 4, CIDR: "10.90.11.0/24", GatewayIP: "10.90.11.1", EnableDHCP: true}
	subI := store.Subnet{ID: id(), NetworkID: netI, IPVersion: 4, CIDR: "10.90.12.0/24", GatewayIP: "10.90.12.1", EnableDHCP: true}
	l.subnets = []store.Subnet{subR, subI}
	l.routers = []store.Router{{ID: rtr, Name: "rtr"}}
	port := testPort
	l.ports = []store.Port{
		port(netR, subR, "10.90.11.1", store.OwnerRouterInterface, rtr, "fa:16:3e:11:00:01"),
		port(netR, subR, "10.90.11.2", store.OwnerDHCP, "dhcp", "fa:16:3e:11:00:02"),
		port(netI, subI, "10.90.12.2", store.OwnerDHCP, "dhcp", "fa:16:3e:12:00:02"),
	}
	vm := func(name string, net store.Network, sub store.Subnet, ip, mac string) store.InstanceView {
		p := port(net.ID, sub, ip, store.OwnerCompute, id(), mac)
		l.ports = append(l.ports, p)
		return store.InstanceView{Instance: store.Instance{ID: p.DeviceID, Name: name},
			Ports: []store.PortView{{Port: p, Network: net, Subnets: []store.Subnet{sub}}}}
	}
	l.views = []store.InstanceView{
		vm("vm1", l.networks[0], subR, "10.90.11.10", "fa:16:3e:11:00:10"),
		vm("vm2", l.networks[1], subI, "10.90.12.10", "fa:16:3e:12:00:10"),
	}
	return l
}

// testPort is a port with a fresh id and one address.
func testPort(net string, sub store.Subnet, ip, owner, dev, mac string) store.Port {
	return store.Port{ID: uuid.NewString(), NetworkID: net, MACAddress: mac, DeviceOwner: owner, DeviceID: dev,
		FixedIPs: []store.FixedIP{{SubnetID: sub.ID, IPAddress: ip}}}
}

func (l *lab) plan() Desired {
	return Plan(l.networks, l.subnets, l.ports, l.routers, l.cfg, ReadHost())
}

// withoutRouter is the store after the router and its interface are deleted.
func (l *lab) withoutRouter() Desired {
	var ports []store.Port
	for _, p := range l.ports {
		if p.DeviceOwner != store.OwnerRouterInterface {
			ports = append(ports, p)
		}
	}
	return Plan(l.networks, l.subnets, ports, nil, l.cfg, ReadHost())
}

// dhcpPortAddrs is what the lab's DHCP port holds: its IP, then the
// metadata addresses the plan adds.
func dhcpPortAddrs(d Desired) string {
	return strings.Join(append([]string{"10.90.12.2/24"}, d.DHCP[0].MetadataAddrs...), " ")
}

func (l *lab) namespaces(d Desired) []string {
	var out []string
	for _, r := range d.Routers {
		out = append(out, r.Namespace)
	}
	for _, n := range l.networks {
		out = append(out, DHCPNamespace(n.ID))
	}
	return out
}

func TestApplyRouterDHCPAndLab(t *testing.T) {
	needRoot(t)
	opts := testOptions(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := newLab()
	d := l.plan()
	cleanupNS(t, l.namespaces(d)...)

	if len(d.Routers) != 1 || len(d.DHCP) != 1 || d.DHCP[0].NetworkID != l.networks[1].ID {
		t.Fatalf("plan: routers=%d dhcp=%+v; want one router and the isolated network's DHCP", len(d.Routers), d.DHCP)
	}
	rec := NewReconciler(opts)
	if err := rec.Apply(ctx, d); err != nil {
		t.Fatalf("first Apply: %v", err)
	}
	if rec.ruleChanges == 0 {
		t.Fatal("first Apply installed no rules")
	}
	if err := rec.Apply(ctx, d); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if rec.ruleChanges != 0 {
		t.Errorf("second Apply rewrote %d chains/jumps, want 0", rec.ruleChanges)
	}
	routerNS := d.Routers[0].Namespace
	assertRulesOnce(t, routerNS, false, RouterRules(false, true))
	segLinks := linkNames(t, opts.SegmentNamespace)

	// A restarted mdctl (a new Reconciler, same names) adopts everything.
	rec2 := NewReconciler(opts)
	if err := rec2.Apply(ctx, d); err != nil {
		t.Fatalf("Apply after restart: %v", err)
	}
	if rec2.ruleChanges != 0 {
		t.Errorf("Apply after restart rewrote %d chains/jumps, want 0", rec2.ruleChanges)
	}
	assertRulesOnce(t, routerNS, false, RouterRules(false, true))
	if got := linkNames(t, opts.SegmentNamespace); got != segLinks {
		t.Errorf("segment links changed on restart:\n%s\nwant\n%s", got, segLinks)
	}

	guests := Guests(d, l.views)
	for range 2 {
		if err := LabUp(ctx, opts, guests); err != nil {
			t.Fatalf("LabUp: %v", err)
		}
	}
	st, err := LabStatus(ctx, opts, guests)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if !s.OK() {
			t.Errorf("lab status %s: %+v", s.Namespace, s)
		}
	}
	vm1 := GuestNamespace(opts.GuestPrefix, guests[0])
	vm2 := GuestNamespace(opts.GuestPrefix, guests[1])

	var out bytes.Buffer
	cmd := exec.Command("ip", "route", "show")
	cmd.Stdout = &out
	if err := LabExec(opts, guests[0], cmd); err != nil {
		t.Fatalf("LabExec: %v", err)
	}
	for _, want := range []string{"169.254.169.254 via 10.90.11.1", "default via 10.90.11.1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("vm1 routes lack %q:\n%s", want, out.String())
		}
	}

	t.Run("the kernel routes metadata as DHCP would", func(t *testing.T) {
		for _, c := range []struct{ ns, via string }{{vm1, "10.90.11.1"}, {vm2, "10.90.12.2"}} {
			ri, err := RouteTo(c.ns, MetadataIPv4)
			if err != nil || ri.Via != c.via || ri.Dev != GuestInterface {
				t.Errorf("%s: route to metadata = %+v, %v; want via %s dev eth0", c.ns, ri, err, c.via)
			}
		}
		// fe80::a9fe:a9fe/128 too when this host has IPv6 (ReadHost).
		addrs, err := LinkAddrs(d.DHCP[0].Namespace, d.DHCP[0].Interface.Name)
		if want := dhcpPortAddrs(d); err != nil || strings.Join(addrs, " ") != want {
			t.Errorf("DHCP port addresses = %v, %v; want %s", addrs, err, want)
		}
	})

	t.Run("guest pings its gateway", func(t *testing.T) {
		if err := ping(vm1, "10.90.11.1"); err != nil {
			t.Error(err)
		}
	})

	t.Run("router REDIRECT reaches a proxy on 9697", func(t *testing.T) {
		ln, err := ListenTCP(routerNS, "tcp4", fmt.Sprintf("0.0.0.0:%d", RouterProxyPort))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		peer := roundTrip(t, ctx, ln, vm1)
		if peer != "10.90.11.10" {
			t.Errorf("proxy saw peer %s, want the guest's 10.90.11.10", peer)
		}
	})

	t.Run("isolated guest reaches the DHCP namespace", func(t *testing.T) {
		ln, err := ListenTCP(d.DHCP[0].Namespace, "tcp4", MetadataIPv4+":80")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		peer := roundTrip(t, ctx, ln, vm2)
		if peer != "10.90.12.10" {
			t.Errorf("proxy saw peer %s, want 10.90.12.10", peer)
		}
	})

	t.Run("enable_metadata_proxy off drops the REDIRECT, on restores it", func(t *testing.T) {
		off := *l
		off.cfg.EnableMetadataProxy = false
		if err := rec.Apply(ctx, off.plan()); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		tables, err := SaveRules(routerNS, false)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.Join(tables["nat"], "\n"), "REDIRECT") {
			t.Errorf("REDIRECT still there with the proxy off:\n%s", strings.Join(tables["nat"], "\n"))
		}
		assertRulesOnce(t, routerNS, false, RouterRules(false, false))
		if err := rec.Apply(ctx, d); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		assertRulesOnce(t, routerNS, false, RouterRules(false, true))
	})

	t.Run("enable_isolated_metadata off takes the metadata address away, DHCP stays", func(t *testing.T) {
		off := *l
		off.cfg.EnableIsolatedMetadata = false
		if err := rec.Apply(ctx, off.plan()); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		ns, port := d.DHCP[0].Namespace, d.DHCP[0].Interface.Name
		if addrs, err := LinkAddrs(ns, port); err != nil || strings.Join(addrs, " ") != "10.90.12.2/24" {
			t.Errorf("DHCP port addresses with the switch off = %v, %v; want the DHCP IP only", addrs, err)
		}
		if err := rec.Apply(ctx, d); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		if addrs, err := LinkAddrs(ns, port); err != nil || strings.Join(addrs, " ") != dhcpPortAddrs(d) {
			t.Errorf("DHCP port addresses with the switch on again = %v, %v", addrs, err)
		}
	})

	t.Run("removing the router removes its namespace", func(t *testing.T) {
		if err := rec.Apply(ctx, l.withoutRouter()); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		if ok, _ := NamespaceExists(routerNS); ok {
			t.Errorf("%s still exists", routerNS)
		}
		if names := linkNames(t, opts.SegmentNamespace); strings.Contains(names, d.Routers[0].Interfaces[0].Tap) {
			t.Errorf("router tap left in the segment: %s", names)
		}
		// The guests are the lab's, not Apply's: they stay.
		if st, _ := LabStatus(ctx, opts, guests); len(st) != 2 || !st[0].OK() || !st[1].OK() {
			t.Errorf("lab guests damaged by Apply: %+v", st)
		}
	})

	t.Run("LabDown removes every guest", func(t *testing.T) {
		if err := LabDown(ctx, opts); err != nil {
			t.Fatal(err)
		}
		for _, ns := range []string{vm1, vm2} {
			if ok, _ := NamespaceExists(ns); ok {
				t.Errorf("%s still exists", ns)
			}
		}
	})
}

// TestApplyLeavesForeignNamespaces: a qrouter- namespace mdctl did not make
// (neutron's, or another mdctl's) survives a sweep.
func TestApplyLeavesForeignNamespaces(t *testing.T) {
	needRoot(t)
	opts := testOptions(t)
	foreign := RouterNamespace(uuid.NewString())
	cleanupNS(t, foreign)
	if out, err := exec.Command("ip", "netns", "add", foreign).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	if err := NewReconciler(opts).Apply(context.Background(), Desired{}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := NamespaceExists(foreign); !ok {
		t.Errorf("Apply removed %s, which it did not make", foreign)
	}
}

// TestApplyIPv6 checks the ip6tables set and the IPv6 metadata address a
// DHCP proxy binds (no traffic: only link-local and ULA addresses inside the
// test's own namespaces).
func TestApplyIPv6(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("ip6tables"); err != nil {
		t.Skip("needs ip6tables")
	}
	opts := testOptions(t)
	f := newFixture(fixtureOpts{dhcp: true, gateway: "10.90.1.1", routerIP: "10.90.1.1", dhcpPort: true, ipv6: true})
	// Fresh ids so the global qrouter-/qdhcp- names are this test's own.
	rtr, nw := uuid.NewString(), uuid.NewString()
	f.routers[0].ID = rtr
	f.networks[0].ID = nw
	for i := range f.subnets {
		f.subnets[i].NetworkID = nw
	}
	for i := range f.ports {
		f.ports[i].NetworkID = nw
		f.ports[i].ID = uuid.NewString()
		if f.ports[i].DeviceOwner == store.OwnerRouterInterface {
			f.ports[i].DeviceID = rtr
		}
	}
	d := f.plan(store.Config{ForceMetadata: true, EnableMetadataProxy: true})
	cleanupNS(t, RouterNamespace(rtr), DHCPNamespace(nw))
	rec := NewReconciler(opts)
	ctx := context.Background()
	for range 2 {
		if err := rec.Apply(ctx, d); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	if rec.ruleChanges != 0 {
		t.Errorf("second Apply rewrote %d chains/jumps", rec.ruleChanges)
	}
	assertRulesOnce(t, RouterNamespace(rtr), true, RouterRules(true, true))
	ifname := d.DHCP[0].Interface.Name
	ln, err := ListenTCP(DHCPNamespace(nw), "tcp6", fmt.Sprintf("[%s%%%s]:80", MetadataIPv6, ifname))
	if err != nil {
		t.Fatalf("bind the IPv6 metadata address: %v", err)
	}
	ln.Close()
}

// assertRulesOnce reads the rules inside ns and checks every wanted line
// appears exactly once in its table.
func assertRulesOnce(t *testing.T, ns string, ipv6 bool, want map[string][]string) {
	t.Helper()
	tables, err := SaveRules(ns, ipv6)
	if err != nil {
		t.Fatal(err)
	}
	for table, rules := range want {
		for _, r := range rules {
			n := 0
			for _, l := range tables[table] {
				if l == r {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s table %s: %q appears %d times, want 1\n%s", ns, table, r, n, strings.Join(tables[table], "\n"))
			}
		}
	}
}

func linkNames(t *testing.T, ns string) string {
	t.Helper()
	links := slices.SortedFunc(maps.Values(hostLinks(t, ns)), func(a, b netlink.Link) int { return a.Attrs().Index - b.Attrs().Index })
	var names []string
	for _, l := range links {
		names = append(names, fmt.Sprintf("%s(%d)", l.Attrs().Name, l.Attrs().Index))
	}
	return strings.Join(names, " ")
}

// roundTrip has the guest in guestNS connect to 169.254.169.254:80 and
// returns the peer address the listener saw.
func roundTrip(t *testing.T, ctx context.Context, ln net.Listener, guestNS string) string {
	t.Helper()
	peer := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			peer <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		c.Write([]byte("metadata"))
		peer <- host
	}()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := DialContext(dctx, guestNS, "tcp4", MetadataIPv4+":80")
	if err != nil {
		t.Fatalf("guest dial: %v", err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "metadata" {
		t.Errorf("guest read %q, %v", got, err)
	}
	return <-peer
}

// ping sends ICMP echo requests from inside ns until one is answered (at
// most 5 tries).
func ping(ns, dst string) error {
	return Do(ns, func() error {
		c, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
		if err != nil {
			return fmt.Errorf("icmp socket: %w", err)
		}
		defer c.Close()
		to := &net.IPAddr{IP: net.ParseIP(dst)}
		buf := make([]byte, 1500)
		for seq := 1; seq <= 5; seq++ {
			if _, err := c.WriteTo(echoRequest(0x4d44, seq), to); err != nil {
				return fmt.Errorf("send echo: %w", err)
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			for {
				n, from, err := c.ReadFrom(buf)
				if err != nil {
					break // timed out: send the next one
				}
				// An echo reply (type 0) from dst.
				if n >= 8 && buf[0] == 0 && from.String() == dst {
					return nil
				}
			}
		}
		return fmt.Errorf("no echo reply from %s in %s", dst, ns)
	})
}

func echoRequest(id, seq int) []byte {
	b := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), byte(seq >> 8), byte(seq), 'm', 'd', 'c', 't', 'l'}
	b = append(b, 0) // pad to even length for the checksum
	var sum uint32
	for i := 0; i < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	cs := ^uint16(sum)
	b[2], b[3] = byte(cs>>8), byte(cs)
	return b
}

// TestApplyRefusesAnotherMdctlsNamespace: a namespace another mdctl (another
// data dir or profile) marked is refused, not adopted and re-marked, so no
// sweep or teardown of this one can remove it.
func TestApplyRefusesAnotherMdctlsNamespace(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	a, b := testOptions(t), testOptions(t)
	id := uuid.NewString()
	ns := RouterNamespace(id)
	cleanupNS(t, ns)
	want := Desired{Routers: []RouterNS{{RouterID: id, Namespace: ns}}}
	if err := NewReconciler(a).Apply(ctx, want); err != nil {
		t.Fatal(err)
	}
	err := NewReconciler(b).Apply(ctx, want)
	if err == nil || !strings.Contains(err.Error(), ns+" belongs to another mdctl (segment "+a.SegmentNamespace+")") {
		t.Errorf("b's Apply of a's router: %v", err)
	}
	if err := NewReconciler(b).Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if ours, err := ownedBy(ns, ownerMark(a.SegmentNamespace)); !ours {
		t.Errorf("%s is no longer a's after b's Apply and Teardown (%v)", ns, err)
	}
}
