package topology

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mdctl/mdctl/store"
)

// cliExample is the topology of CLI.md "Seeding the world".
const cliExample = `settings:                 # any setting below, optional
  force_metadata: false
routers:
  - name: r1
    project: demo
networks:
  - name: net1
    project: demo
    cidr: 10.90.1.0/24    # gateway .1, DHCP port .2 unless given
    router: r1            # omit for an isolated network (DHCP-namespace metadata)
instances:
  - name: vm1
    project: demo
    network: net1
    ip: 10.90.1.5         # optional: next free address
    user_data: |          # or user_data_file: path
      #cloud-config
      hostname: vm1
    public_keys: {default: "ssh-ed25519 AAAA… demo"}
    meta: {role: web}
    availability_zone: nova
    config_drive: false
`

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "mdctl.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func mustParse(t *testing.T, src string) *Topology {
	t.Helper()
	top, err := Parse([]byte(src), "topology.yaml")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return top
}

func mustApply(t *testing.T, st store.Store, src string) Result {
	t.Helper()
	res, err := Apply(context.Background(), st, mustParse(t, src))
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return res
}

// ports returns the store's ports on a network with the given owner.
func ports(t *testing.T, st store.Store, netRef, owner string) []store.Port {
	t.Helper()
	ctx := context.Background()
	n, err := st.GetNetwork(ctx, netRef)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := st.ListPorts(ctx, store.PortFilter{NetworkIDs: []string{n.ID}, DeviceOwners: []string{owner}})
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func ips(ps []store.Port) []string {
	var out []string
	for _, p := range ps {
		for _, f := range p.FixedIPs {
			out = append(out, f.IPAddress)
		}
	}
	return out
}

func TestApplyCLIExample(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	res := mustApply(t, st, cliExample)
	if got := res.Count(Created); got == 0 {
		t.Fatalf("nothing created: %+v", res)
	}

	proj, err := st.GetProject(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if len(proj.ID) != 32 || strings.Trim(proj.ID, "0123456789abcdef") != "" {
		t.Errorf("project ID %q is not 32 hex digits", proj.ID)
	}
	r, err := st.GetRouter(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	subs, err := st.ListSubnets(ctx, mustNet(t, st, "net1").ID)
	if err != nil || len(subs) != 1 {
		t.Fatalf("subnets: %v %+v", err, subs)
	}
	if s := subs[0]; s.CIDR != "10.90.1.0/24" || s.GatewayIP != "10.90.1.1" || !s.EnableDHCP || s.IPVersion != 4 {
		t.Errorf("subnet = %+v", s)
	}
	ri := ports(t, st, "net1", store.OwnerRouterInterface)
	if len(ri) != 1 || ri[0].DeviceID != r.ID || !slices.Equal(ips(ri), []string{"10.90.1.1"}) {
		t.Errorf("router interface = %+v", ri)
	}
	dhcp := ports(t, st, "net1", store.OwnerDHCP)
	if len(dhcp) != 1 || !slices.Equal(ips(dhcp), []string{"10.90.1.2"}) {
		t.Errorf("dhcp port = %+v", dhcp)
	}
	view, err := st.InstanceView(ctx, "vm1")
	if err != nil {
		t.Fatal(err)
	}
	in := view.Instance
	if in.Hostname != "vm1" || in.ProjectID != proj.ID || in.AvailabilityZone != "nova" || in.Flavor != "m1.small" ||
		!slices.Equal(in.Meta, store.Meta{{Key: "role", Value: "web"}}) || string(in.UserData) != "#cloud-config\nhostname: vm1\n" || in.EC2ID == 0 {
		t.Errorf("instance = %+v", in)
	}
	if !slices.Equal(in.Keys, []store.Key{{Name: "default", Type: "ssh", Data: "ssh-ed25519 AAAA… demo"}}) {
		t.Errorf("keys = %+v", in.Keys)
	}
	if len(view.Ports) != 1 {
		t.Fatalf("ports = %+v", view.Ports)
	}
	p := view.Ports[0].Port
	if p.DeviceOwner != store.OwnerCompute || p.DeviceID != in.ID || !strings.HasPrefix(p.MACAddress, "fa:16:3e:") ||
		!slices.Equal(ips([]store.Port{p}), []string{"10.90.1.5"}) {
		t.Errorf("port = %+v", p)
	}
	set, err := st.Settings(ctx)
	if err != nil || set["force_metadata"] != "false" {
		t.Errorf("settings = %v %v", set, err)
	}
}

func mustNet(t *testing.T, st store.Store, ref string) store.Network {
	t.Helper()
	n, err := st.GetNetwork(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestApplyIsIdempotent(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	src := cliExample + `  - name: vm2
    project: demo
    network: net1
`
	mustApply(t, st, src)
	before := snapshot(t, st)
	gen, _ := st.Generation(ctx)

	res := mustApply(t, st, src)
	if res.Changed() {
		t.Errorf("second apply changed: %+v", res.Changes)
	}
	if after := snapshot(t, st); after != before {
		t.Errorf("records changed:\nbefore %s\nafter  %s", before, after)
	}
	if g, _ := st.Generation(ctx); g != gen {
		t.Errorf("generation bumped %d → %d by a no-op apply", gen, g)
	}
}

// snapshot renders every port and instance ID, MAC and address.
func snapshot(t *testing.T, st store.Store) string {
	t.Helper()
	ctx := context.Background()
	ps, err := st.ListPorts(ctx, store.PortFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.ID + " " + p.MACAddress + " " + p.DeviceID + " " + strings.Join(ips([]store.Port{p}), ",") + "\n")
	}
	ins, _ := st.ListInstances(ctx)
	for _, in := range ins {
		b.WriteString(in.ID + " " + in.Name + "\n")
	}
	return b.String()
}

func TestApplyAllocatesAddresses(t *testing.T) {
	st := openStore(t)
	// vm1 comes first without an address; vm2 asks for .3, the first free
	// one, and must get it: explicit addresses are placed first.
	mustApply(t, st, `
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24}
instances:
  - {name: vm1, project: demo, network: net1}
  - {name: vm2, project: demo, network: net1, ip: 10.90.1.3}
  - {name: vm3, project: demo, network: net1}
`)
	want := map[string]string{"vm1": "10.90.1.4", "vm2": "10.90.1.3", "vm3": "10.90.1.5"}
	for name, ip := range want {
		v, err := st.InstanceView(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if got := ips([]store.Port{v.Ports[0].Port}); !slices.Equal(got, []string{ip}) {
			t.Errorf("%s: got %v, want %s", name, got, ip)
		}
	}
	macs := map[string]bool{}
	ps, _ := st.ListPorts(context.Background(), store.PortFilter{})
	for _, p := range ps {
		if macs[p.MACAddress] {
			t.Errorf("MAC %s used twice", p.MACAddress)
		}
		macs[p.MACAddress] = true
	}
}

func TestApplyRouterMoveAndIsolation(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	base := `
routers:
  - {name: r1, project: demo}
  - {name: r2, project: demo}
networks:
  - name: net1
    project: demo
    cidr: 10.90.1.0/24
`
	mustApply(t, st, base+"    router: r1\n")
	r1, _ := st.GetRouter(ctx, "r1")
	r2, _ := st.GetRouter(ctx, "r2")
	if ri := ports(t, st, "net1", store.OwnerRouterInterface); len(ri) != 1 || ri[0].DeviceID != r1.ID {
		t.Fatalf("before move: %+v", ri)
	}

	res := mustApply(t, st, base+"    router: r2\n")
	ri := ports(t, st, "net1", store.OwnerRouterInterface)
	if len(ri) != 1 || ri[0].DeviceID != r2.ID || !slices.Equal(ips(ri), []string{"10.90.1.1"}) {
		t.Fatalf("after move: %+v", ri)
	}
	if res.Count(Deleted) != 1 {
		t.Errorf("move should delete the old interface: %+v", res.Changes)
	}

	mustApply(t, st, base)
	if ri := ports(t, st, "net1", store.OwnerRouterInterface); len(ri) != 0 {
		t.Errorf("isolated network still has interfaces: %+v", ri)
	}
	if d := ports(t, st, "net1", store.OwnerDHCP); len(d) != 1 {
		t.Errorf("isolated network lost its DHCP port: %+v", d)
	}
}

func TestApplyIsolatedNetworkHasNoInterface(t *testing.T) {
	st := openStore(t)
	mustApply(t, st, `
networks:
  - {name: iso, project: demo, cidr: 10.90.2.0/24, gateway: 10.90.2.254, dhcp_ip: 10.90.2.10}
instances:
  - {name: vm1, project: demo, network: iso}
`)
	if ri := ports(t, st, "iso", store.OwnerRouterInterface); len(ri) != 0 {
		t.Errorf("router interface on an isolated network: %+v", ri)
	}
	if d := ips(ports(t, st, "iso", store.OwnerDHCP)); !slices.Equal(d, []string{"10.90.2.10"}) {
		t.Errorf("dhcp = %v", d)
	}
	if c := ips(ports(t, st, "iso", store.OwnerCompute)); !slices.Equal(c, []string{"10.90.2.1"}) {
		t.Errorf("compute = %v", c)
	}
}

func TestApplyDHCPOffAndIPv6(t *testing.T) {
	st := openStore(t)
	mustApply(t, st, `
networks:
  - name: net6
    project: demo
    cidr: 10.90.3.0/24
    enable_dhcp: false
    ipv6_cidr: fd00:90:3::/64
    dns: [10.90.0.53]
    host_routes: [{destination: 192.168.0.0/16, nexthop: 10.90.3.254}]
    mtu: 1450
instances:
  - {name: vm1, project: demo, network: net6}
`)
	n := mustNet(t, st, "net6")
	if n.MTU != 1450 {
		t.Errorf("mtu = %d", n.MTU)
	}
	subs, _ := st.ListSubnets(context.Background(), n.ID)
	if len(subs) != 2 || subs[0].EnableDHCP || subs[1].IPVersion != 6 || subs[1].IPv6AddressMode != "slaac" ||
		!slices.Equal(subs[0].DNSNameservers, []string{"10.90.0.53"}) || len(subs[0].HostRoutes) != 1 {
		t.Fatalf("subnets = %+v", subs)
	}
	// Only the IPv6 subnet has DHCP, so the DHCP port holds only ::2.
	if d := ips(ports(t, st, "net6", store.OwnerDHCP)); !slices.Equal(d, []string{"fd00:90:3::2"}) {
		t.Errorf("dhcp = %v", d)
	}
	c := ports(t, st, "net6", store.OwnerCompute)
	if len(c) != 1 || len(c[0].FixedIPs) != 2 {
		t.Fatalf("compute = %+v", c)
	}
	// With DHCP off, .2 is free; the gateway .1 stays reserved.
	want, _ := eui64(netip.MustParsePrefix("fd00:90:3::/64"), c[0].MACAddress)
	if got := c[0].FixedIPs[1].IPAddress; got != want.String() || c[0].FixedIPs[0].IPAddress != "10.90.3.2" {
		t.Errorf("fixed ips = %+v, want v6 %s", c[0].FixedIPs, want)
	}
}

// TestApplyOperatorBridge: a network on the operator's L2 keeps its
// bridge and VLAN, dhcp: false leaves it without a DHCP port (the
// operator's DHCP serves it) while the router still attaches, and an
// instance bound to an outside host keeps its VM's MAC and the binding.
func TestApplyOperatorBridge(t *testing.T) {
	st := openStore(t)
	src := `
routers:
  - {name: r1, project: demo}
networks:
  - name: lan
    project: demo
    router: r1
    bridge: br-lan
    vlan: 30
    dhcp: false
    cidr: 10.90.4.0/24
instances:
  - name: vm1
    project: demo
    host: hv1
    ports:
      - {network: lan, ip: 10.90.4.20, mac: "52:54:00:AB:CD:EF"}
`
	mustApply(t, st, src)
	n := mustNet(t, st, "lan")
	if n.Bridge != "br-lan" || n.VLAN != 30 {
		t.Errorf("network = %+v, want bridge br-lan vlan 30", n)
	}
	subs, _ := st.ListSubnets(context.Background(), n.ID)
	if len(subs) != 1 || subs[0].EnableDHCP {
		t.Errorf("subnets = %+v, want one with DHCP off", subs)
	}
	if d := ports(t, st, "lan", store.OwnerDHCP); len(d) != 0 {
		t.Errorf("DHCP ports on a dhcp: false network: %+v", d)
	}
	if r := ips(ports(t, st, "lan", store.OwnerRouterInterface)); !slices.Equal(r, []string{"10.90.4.1"}) {
		t.Errorf("router interface = %v", r)
	}
	c := ports(t, st, "lan", store.OwnerCompute)
	if len(c) != 1 || c[0].MACAddress != "52:54:00:ab:cd:ef" || c[0].BindingHostID != "hv1" {
		t.Fatalf("compute port = %+v", c)
	}
	if res := mustApply(t, st, src); res.Changed() {
		t.Errorf("second apply changed %+v", res.Changes)
	}
	// Leaving the lab: dropping host clears the binding.
	mustApply(t, st, strings.Replace(src, "    host: hv1\n", "", 1))
	if c := ports(t, st, "lan", store.OwnerCompute); len(c) != 1 || c[0].BindingHostID != "" {
		t.Errorf("after dropping host: %+v", c)
	}
}

func TestApplyUpdatesInPlace(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	mustApply(t, st, cliExample)
	before, _ := st.InstanceView(ctx, "vm1")
	changed := strings.Replace(cliExample, "ip: 10.90.1.5", "ip: 10.90.1.9", 1)
	changed = strings.Replace(changed, "role: web", "role: db", 1)
	res := mustApply(t, st, changed)
	after, _ := st.InstanceView(ctx, "vm1")
	if after.Instance.ID != before.Instance.ID || after.Ports[0].Port.ID != before.Ports[0].Port.ID ||
		after.Ports[0].Port.MACAddress != before.Ports[0].Port.MACAddress {
		t.Errorf("identity changed: %+v → %+v", before, after)
	}
	if got := ips([]store.Port{after.Ports[0].Port}); !slices.Equal(got, []string{"10.90.1.9"}) || !slices.Equal(after.Instance.Meta, store.Meta{{Key: "role", Value: "db"}}) {
		t.Errorf("not updated: %v %v", got, after.Instance.Meta)
	}
	if res.Count(Updated) != 2 {
		t.Errorf("want instance and port updated: %+v", res.Changes)
	}
}

func TestApplyRefusesWholeFile(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name, src, want string
	}{
		{"unknown router", `
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24, router: r9}
`, "topology.yaml:3: networks[0].router: router r9 is neither in the file nor in the store"},
		{"unknown network", `
routers:
  - {name: r1, project: demo}
instances:
  - name: vm1
    project: demo
    network: net9
`, "topology.yaml:7: instances[0].network: network net9 is neither in the file nor in the store"},
		{"address taken", `
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24}
instances:
  - {name: vm1, project: demo, network: net1, ip: 10.90.7.7}
`, "instances[0].ip: 10.90.7.7 is already used by instance old"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			// A stored network whose address 10.90.7.7 is taken, so
			// references to the store are checked too.
			mustApply(t, st, `
networks:
  - {name: stored, project: demo, cidr: 10.90.7.0/24}
instances:
  - {name: old, project: demo, network: stored, ip: 10.90.7.7}
`)
			src := strings.ReplaceAll(tc.src, "network: net1, ip: 10.90.7.7", "network: stored, ip: 10.90.7.7")
			before := snapshot(t, st)
			gen, _ := st.Generation(ctx)
			_, err := Apply(ctx, st, mustParse(t, src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Errorf("error %T is not Errors", err)
			}
			if after := snapshot(t, st); after != before {
				t.Errorf("half-written:\n%s", after)
			}
			if g, _ := st.Generation(ctx); g != gen {
				t.Errorf("generation moved on a refused apply")
			}
			nets, _ := st.ListNetworks(ctx)
			if len(nets) != 1 {
				t.Errorf("networks = %+v", nets)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"outside subnet", `
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24}
instances:
  - name: vm1
    project: demo
    network: net1
    ip: 10.90.9.5
`, "topology.yaml:8: instances[0].ip: 10.90.9.5 is outside net1's 10.90.1.0/24"},
		{"gateway", `
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24}
instances:
  - {name: vm1, project: demo, network: net1, ip: 10.90.1.1}
`, "topology.yaml:5: instances[0].ip: 10.90.1.1 is the gateway of net1's 10.90.1.0/24"},
		{"dhcp port", `
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24}
instances:
  - {name: vm1, project: demo, network: net1, ip: 10.90.1.2}
`, "topology.yaml:5: instances[0].ip: 10.90.1.2 is the DHCP port of net1"},
		{"broadcast", `
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24}
instances:
  - {name: vm1, project: demo, network: net1, ip: 10.90.1.255}
`, "10.90.1.255 is the broadcast address of 10.90.1.0/24"},
		{"network address", `
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24}
instances:
  - {name: vm1, project: demo, network: net1, ip: 10.90.1.0}
`, "10.90.1.0 is the network address of 10.90.1.0/24"},
		{"same ip twice", `
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24}
instances:
  - {name: vm1, project: demo, network: net1, ip: 10.90.1.7}
  - {name: vm2, project: demo, network: net1, ip: 10.90.1.7}
`, "topology.yaml:6: instances[1].ip: 10.90.1.7 is already given to instance vm1"},
		{"bad cidr", `
networks:
  - name: net1
    project: demo
    cidr: 10.90.1.0/33
`, `topology.yaml:5: networks[0].cidr: "10.90.1.0/33" is not a CIDR like 10.90.1.0/24`},
		{"host bits", `
networks:
  - {name: net1, project: demo, cidr: 10.90.1.7/24}
`, "networks[0].cidr: 10.90.1.7/24 has host bits set; did you mean 10.90.1.0/24?"},
		{"gateway outside", `
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24, gateway: 10.90.2.1}
`, "networks[0].gateway: 10.90.2.1 is outside 10.90.1.0/24"},
		{"unknown field", `
instances:
  - name: vm1
    project: demo
    network: net1
    colour: blue
`, "topology.yaml:6: instances[0].colour: unknown field; known fields:"},
		{"unknown top field", `
machines: []
`, "topology.yaml:2: machines: unknown field"},
		{"duplicate name", `
routers:
  - {name: r1, project: demo}
  - {name: r1, project: demo}
`, "topology.yaml:4: routers[1].name: router r1 is already defined at line 3"},
		{"duplicate key", `
routers:
  - name: r1
    name: r2
    project: demo
`, "topology.yaml:4: routers[0].name: given twice (first at line 3)"},
		{"missing project", `
routers:
  - name: r1
`, "topology.yaml:3: routers[0].project: is required"},
		{"bad setting", `
settings:
  config_drive_format: ext4
`, "topology.yaml:3: settings.config_drive_format: \"ext4\" is not allowed; allowed: iso9660, vfat"},
		{"unknown setting", `
settings:
  force_metadta: true
`, "topology.yaml:3: settings.force_metadta: unknown setting"},
		{"vlan without bridge", `
networks:
  - name: net1
    project: demo
    cidr: 10.90.1.0/24
    vlan: 42
`, "topology.yaml:6: networks[0].vlan: vlan needs bridge"},
		{"vlan out of range", `
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24, bridge: br0, vlan: 4095}
`, "topology.yaml:3: networks[0].vlan: vlan 4095: must be 1-4094"},
		{"bridge name too long", `
networks:
  - name: net1
    project: demo
    cidr: 10.90.1.0/24
    bridge: a-very-long-bridge
`, `topology.yaml:6: networks[0].bridge: "a-very-long-bridge": longer than 15 bytes`},
		{"dhcp off but a subnet on", `
networks:
  - name: net1
    project: demo
    dhcp: false
    subnets:
      - cidr: 10.90.1.0/24
        enable_dhcp: true
`, "topology.yaml:8: networks[0].subnets[0].enable_dhcp: is true on network net1, which says dhcp: false"},
		{"bad mac", `
instances:
  - name: vm1
    project: demo
    ports:
      - {network: net1, mac: "01:00:5e:00:00:01"}
`, `topology.yaml:6: instances[0].ports[0].mac: "01:00:5e:00:00:01" is not a unicast Ethernet address`},
		{"bad bool", `
instances:
  - {name: vm1, project: demo, network: net1, config_drive: maybe}
`, `topology.yaml:3: instances[0].config_drive: "maybe" is not a boolean`},
		{"no network", `
instances:
  - {name: vm1, project: demo}
`, "topology.yaml:3: instances[0].network: is required"},
		{"missing user data file", `
instances:
  - {name: vm1, project: demo, network: net1, user_data_file: nope.yaml}
`, "instances[0].user_data_file: open"},
		{"user data from a device", `
instances:
  - {name: vm1, project: demo, network: net1, user_data_file: /dev/zero}
`, "instances[0].user_data_file: /dev/zero is not a regular file"},
		{"not a list", `
routers: r1
`, "topology.yaml:2: routers: must be a list"},
		{"yaml syntax", "routers: [\n", "topology.yaml:1:10: sequence end token ']' not found"},
		{"bad hostname", `
instances:
  - {name: vm1, project: demo, network: net1, hostname: "Web_1"}
`, `instances[0].hostname: "Web_1" is not a valid hostname; nova would use "web-1"`},
		{"second document", `
routers:
  - {name: r1, project: demo}
---
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24}
`, "topology.yaml:5: a second YAML document"},
		{"overlap on one network", `
networks:
  - name: net1
    project: demo
    subnets:
      - {cidr: 10.90.1.0/24}
      - {cidr: 10.90.1.128/25}
`, "topology.yaml:7: networks[0].subnets[1].cidr: 10.90.1.128/25 overlaps 10.90.1.0/24 (line 6) on this network"},
		{"overlap on one router", `
routers:
  - {name: r1, project: demo}
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24, router: r1}
  - {name: net2, project: demo, cidr: 10.90.0.0/16, router: r1}
`, "topology.yaml:6: networks[1].cidr: 10.90.0.0/16 overlaps 10.90.1.0/24 of network net1 (line 5) on router r1"},
		{"bad metadata_tokens", `
instances:
  - {name: vm1, project: demo, network: net1, metadata_tokens: maybe}
`, `topology.yaml:3: instances[0].metadata_tokens: "maybe": use optional or required, or nothing to follow the setting`},
		{"router without gateway", `
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24, gateway: none, router: r1}
`, "networks[0].router: network net1 has no subnet with a gateway"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src), "topology.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant %q", err, tc.want)
			}
		})
	}
}

func TestParseCollectsEveryError(t *testing.T) {
	_, err := Parse([]byte(`
routers:
  - {name: r1}
  - {project: demo}
`), "t.yaml")
	var es Errors
	if !errors.As(err, &es) || len(es) != 2 {
		t.Fatalf("want 2 errors, got %v", err)
	}
	if es[0].Line != 3 || es[1].Line != 4 {
		t.Errorf("lines = %d, %d", es[0].Line, es[1].Line)
	}
}

func TestParseUserDataFileRelativeToTopology(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ud.yaml"), []byte("#cloud-config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	top, err := Parse([]byte(`
instances:
  - {name: vm1, project: demo, network: net1, user_data_file: ud.yaml}
`), filepath.Join(dir, "topology.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(top.Instances[0].UserData); got != "#cloud-config\n" {
		t.Errorf("user data = %q", got)
	}
}

func TestParseMultipleNetworksAndKeys(t *testing.T) {
	top := mustParse(t, `
networks:
  - name: net1
    project: demo
    subnets:
      - {cidr: 10.90.1.0/24}
      - {cidr: 10.90.2.0/24, enable_dhcp: false}
  - {name: net2, project: demo, cidr: 10.90.5.0/24}
instances:
  - name: vm1
    project: demo
    hostname: web-1
    flavor: m1.large
    launch_index: 2
    admin_pass: s3cret
    ports:
      - {network: net1, ip: 10.90.2.9}
      - {network: net2}
    keys:
      - {name: k1, data: "ssh-rsa AAA"}
      - {name: k2, type: x509, data: "-----BEGIN"}
`)
	in := top.Instances[0]
	if len(in.Ports) != 2 || in.Ports[0].IP != "10.90.2.9" || in.Ports[1].Network != "net2" {
		t.Errorf("ports = %+v", in.Ports)
	}
	if len(in.Keys) != 2 || in.Keys[0].Type != "ssh" || in.Keys[1].Type != "x509" {
		t.Errorf("keys = %+v", in.Keys)
	}
	st := openStore(t)
	if _, err := Apply(context.Background(), st, top); err != nil {
		t.Fatal(err)
	}
	v, err := st.InstanceView(context.Background(), "vm1")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Ports) != 2 || v.Ports[0].Network.Name != "net1" || v.Ports[1].Network.Name != "net2" {
		t.Fatalf("ports = %+v", v.Ports)
	}
	if got := ips([]store.Port{v.Ports[0].Port}); !slices.Equal(got, []string{"10.90.2.9"}) {
		t.Errorf("net1 ips = %v", got)
	}
	if v.Instance.Hostname != "web-1" || v.Instance.Flavor != "m1.large" || v.Instance.LaunchIndex != 2 || v.Instance.AdminPass != "s3cret" {
		t.Errorf("instance = %+v", v.Instance)
	}
}

func TestCreateAndDeleteRecords(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	if _, _, err := CreateRouter(ctx, st, RouterSpec{Name: "r1", Project: "demo"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := CreateRouter(ctx, st, RouterSpec{Name: "r1", Project: "demo"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second create: %v", err)
	}
	if _, _, err := CreateNetwork(ctx, st, NetworkSpec{Name: "net1", Project: "demo", Router: "r1", Subnets: []SubnetSpec{{CIDR: "10.90.1.0/24"}}}); err != nil {
		t.Fatal(err)
	}
	in, _, err := CreateInstance(ctx, st, InstanceSpec{Name: "My VM", Project: "demo", Ports: []PortSpec{{Network: "net1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if in.Hostname != "my-vm" {
		t.Errorf("hostname = %q", in.Hostname)
	}
	_, _, err = CreateInstance(ctx, st, InstanceSpec{Name: "vm2", Project: "demo", Ports: []PortSpec{{Network: "net1", IP: "10.90.9.9"}}})
	if err == nil || err.Error() != "ip: 10.90.9.9 is outside net1's 10.90.1.0/24" {
		t.Errorf("bad ip: %v", err)
	}
	if _, err := DeleteNetwork(ctx, st, "net1"); !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "My VM") {
		t.Errorf("delete in-use network: %v", err)
	}
	if _, err := DeleteInstance(ctx, st, "My VM"); err != nil {
		t.Fatal(err)
	}
	if _, err := DeleteRouter(ctx, st, "r1"); err != nil {
		t.Fatal(err)
	}
	if ri := ports(t, st, "net1", store.OwnerRouterInterface); len(ri) != 0 {
		t.Errorf("router interfaces left: %+v", ri)
	}
	if _, err := DeleteNetwork(ctx, st, "net1"); err != nil {
		t.Fatal(err)
	}
	if _, err := DeleteNetwork(ctx, st, "net1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}
}

func TestSanitizeHostname(t *testing.T) {
	cases := []struct{ in, want string }{
		{"vm1", "vm1"},
		{"My VM", "my-vm"},
		{"web_1.example", "web-1-example"},
		{"--x--", "x"},
		{"héllo wörld", "héllo-wörld"},
		{"日本", "Server-x"},
		{"a!b@c", "abc"},
		{strings.Repeat("a", 70), strings.Repeat("a", 63)},
	}
	for _, tc := range cases {
		if got := SanitizeHostname(tc.in, "Server-x"); got != tc.want {
			t.Errorf("SanitizeHostname(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(cliExample))
	f.Add([]byte("networks:\n  - {name: n, project: p, cidr: 10.0.0.0/24, subnets: [{cidr: fd00::/64}]}\n"))
	f.Add([]byte("instances: [{name: a, ports: [{network: x, ip: 1.2.3.4}], keys: [{}]}]\nsettings: {a: b}\n"))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		top, err := Parse(data, "f.yaml")
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %T is not Errors: %v", err, err)
			}
			for _, e := range es {
				if e.Msg == "" || strings.Contains(e.Error(), "\n") && e.Msg == "" {
					t.Fatalf("empty error: %#v", e)
				}
			}
			return
		}
		if err := top.Validate(); err != nil {
			t.Fatalf("Validate after a clean Parse failed: %v", err)
		}
	})
}

// TestApplyRefusesOverlapWithStoredRouterNetwork: a network the store
// already has on the router counts, and the refused file writes nothing;
// the same addresses behind another router, or after the stored network
// moves away in the same file, are fine.
func TestApplyRefusesOverlapWithStoredRouterNetwork(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	mustApply(t, st, `
routers:
  - {name: r1, project: demo}
  - {name: r2, project: demo}
networks:
  - {name: stored, project: demo, cidr: 10.90.7.0/24, router: r1}
`)
	before := snapshot(t, st)
	_, err := Apply(ctx, st, mustParse(t, `
networks:
  - {name: new, project: demo, cidr: 10.90.7.128/25, router: r1}
`))
	want := "topology.yaml:3: networks[0].router: network new's 10.90.7.128/25 overlaps 10.90.7.0/24 of network stored on router r1"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if after := snapshot(t, st); after != before {
		t.Errorf("half-written:\n%s", after)
	}
	mustApply(t, st, `
networks:
  - {name: other, project: demo, cidr: 10.90.7.0/24, router: r2}
  - {name: new, project: demo, cidr: 10.90.7.128/25, router: r1}
  - {name: stored, project: demo, cidr: 10.90.7.0/24}
`)
}

// TestGatewayNoneSurvivesApply: Apply validates again; "none" must stay no
// gateway, not become the first address (nor push the DHCP port onto it).
func TestGatewayNoneSurvivesApply(t *testing.T) {
	st := openStore(t)
	mustApply(t, st, `
networks:
  - {name: iso, project: demo, cidr: 10.90.3.0/24, gateway: none}
`)
	subs, err := st.ListSubnets(context.Background(), mustNet(t, st, "iso").ID)
	if err != nil || len(subs) != 1 {
		t.Fatalf("subnets: %v %v", subs, err)
	}
	if subs[0].GatewayIP != "" {
		t.Errorf("gateway = %q, want none", subs[0].GatewayIP)
	}
	dhcp := ports(t, st, "iso", "network:dhcp")
	if len(dhcp) != 1 || dhcp[0].FixedIPs[0].IPAddress != "10.90.3.1" {
		t.Errorf("DHCP port: %+v, want 10.90.3.1 (the first address, free without a gateway)", dhcp)
	}
}

// TestParseSyntaxErrorsAtLineAndColumn: a YAML syntax error names the
// offending token's file:line:col, not the line its construct began on.
func TestParseSyntaxErrorsAtLineAndColumn(t *testing.T) {
	cases := []struct{ src, want string }{
		{"routers:\n  - {name: r1\n", "t.yaml:2:5: could not find flow mapping end token '}'"},
		{"routers:\n  - name: r1\n   project: x\n", "t.yaml:3:4: value is not allowed in this context"},
		{"settings:\n\tforce_metadata: true\n", "t.yaml:2:1: found character '\t' that cannot start any token"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.src), "t.yaml")
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q: %v\nwant %s", tc.src, err, tc.want)
		}
	}
}

// TestParseReportsDecodeAndValidationTogether: a field the decoder refuses
// does not hide what validation finds elsewhere, and is not blamed twice.
func TestParseReportsDecodeAndValidationTogether(t *testing.T) {
	_, err := Parse([]byte(`settings:
  force_metadata: perhaps
routers:
  - {name: r1, project: demo, colour: red}
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/33}
instances:
  - {name: vm1, project: demo, network: net1, launch_index: x}
  - {name: [vm2], project: demo, network: net1}
`), "t.yaml")
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("err = %v", err)
	}
	var got []string
	for _, e := range es {
		got = append(got, fmt.Sprintf("%d %s", e.Line, e.Field))
	}
	want := []string{"2 settings.force_metadata", "4 routers[0].colour", "6 networks[0].cidr", "8 instances[0].launch_index", "9 instances[1].name"}
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n%v\nwant\n%v\n%v", got, want, err)
	}
}

// TestApplyReportsEveryStoreProblem: references only the store can check
// are all reported by one Apply, and an instance on a network that failed
// is not blamed for it; nothing is written.
func TestApplyReportsEveryStoreProblem(t *testing.T) {
	st := openStore(t)
	_, err := Apply(context.Background(), st, mustParse(t, `
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24, router: nope}
  - {name: net2, project: demo, cidr: 10.90.2.0/24}
instances:
  - {name: vm1, project: demo, network: ghost}
  - {name: vm2, project: demo, network: net2}
  - {name: vm3, project: demo, network: elsewhere}
`))
	want := "topology.yaml:3: networks[0].router: router nope is neither in the file nor in the store\n" +
		"topology.yaml:6: instances[0].network: network ghost is neither in the file nor in the store\n" +
		"topology.yaml:8: instances[2].network: network elsewhere is neither in the file nor in the store"
	if err == nil || err.Error() != want {
		t.Fatalf("err:\n%v\nwant\n%s", err, want)
	}
	if nets, _ := st.ListNetworks(context.Background()); len(nets) != 0 {
		t.Errorf("a refused apply wrote %d networks", len(nets))
	}
}

// TestApplyRouterPin: a router's node: key pins it; a file without the key
// leaves the pin as it is (router set --node's), node: "" unpins, and a
// bad node name is refused naming its line.
func TestApplyRouterPin(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	pin := func() string {
		t.Helper()
		r, err := st.GetRouter(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		return r.Node
	}
	mustApply(t, st, "routers:\n  - name: r1\n    project: demo\n    node: net-2\n")
	if got := pin(); got != "net-2" {
		t.Errorf("pin %q, want net-2", got)
	}
	if res := mustApply(t, st, "routers:\n  - name: r1\n    project: demo\n"); pin() != "net-2" || res.Changed() {
		t.Errorf("a file without node: changed the pin to %q (changed: %v)", pin(), res.Changed())
	}
	mustApply(t, st, "routers:\n  - name: r1\n    project: demo\n    node: \"\"\n")
	if got := pin(); got != "" {
		t.Errorf("pin %q after node: \"\"", got)
	}
	_, err := Apply(ctx, st, mustParse(t, "routers:\n  - name: r1\n    project: demo\n    node: not a node\n"))
	if err == nil || !strings.Contains(err.Error(), "topology.yaml:4") {
		t.Errorf("bad node name: %v, want an error at line 4", err)
	}
}
