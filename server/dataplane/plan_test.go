package dataplane

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/store"
)

// fixture is a small cloud: one network with one IPv4 subnet 10.90.<n>.0/24,
// optionally a router interface holding (or not holding) its gateway and a
// DHCP port at .2.
type fixture struct {
	networks []store.Network
	subnets  []store.Subnet
	ports    []store.Port
	routers  []store.Router
}

const (
	netA    = "a1111111-0000-4000-8000-000000000001"
	subA    = "a2222222-0000-4000-8000-000000000001"
	subA6   = "a2222222-0000-4000-8000-000000000006"
	rtrA    = "a3333333-0000-4000-8000-000000000001"
	rportA  = "a4444444-0000-4000-8000-000000000001"
	dportA  = "a5555555-0000-4000-8000-000000000001"
	vmportA = "a6666666-0000-4000-8000-000000000001"
)

type fixtureOpts struct {
	dhcp       bool   // subnet has enable_dhcp
	gateway    string // subnet gateway ("" none)
	routerIP   string // router interface IP ("" no router interface)
	dhcpPort   bool
	ipv6       bool
	routerOnly bool // a router exists even without an interface
}

func newFixture(o fixtureOpts) fixture {
	f := fixture{
		networks: []store.Network{{ID: netA, Name: "net-a", MTU: 1450}},
		subnets: []store.Subnet{{
			ID: subA, NetworkID: netA, IPVersion: 4, CIDR: "10.90.1.0/24",
			GatewayIP: o.gateway, EnableDHCP: o.dhcp,
			HostRoutes: []store.HostRoute{{Destination: "10.90.200.0/24", NextHop: "10.90.1.254"}},
		}},
	}
	if o.ipv6 {
		f.subnets = append(f.subnets, store.Subnet{ID: subA6, NetworkID: netA, IPVersion: 6, CIDR: "fd90:1::/64", GatewayIP: "fd90:1::1", EnableDHCP: true})
	}
	if o.routerIP != "" || o.routerOnly {
		f.routers = []store.Router{{ID: rtrA, Name: "r1"}}
	}
	if o.routerIP != "" {
		ips := []store.FixedIP{{SubnetID: subA, IPAddress: o.routerIP}}
		if o.ipv6 {
			ips = append(ips, store.FixedIP{SubnetID: subA6, IPAddress: "fd90:1::1"})
		}
		f.ports = append(f.ports, store.Port{ID: rportA, NetworkID: netA, MACAddress: "fa:16:3e:00:00:01",
			DeviceID: rtrA, DeviceOwner: store.OwnerRouterInterface, FixedIPs: ips})
	}
	if o.dhcpPort {
		ips := []store.FixedIP{{SubnetID: subA, IPAddress: "10.90.1.2"}}
		if o.ipv6 {
			ips = append(ips, store.FixedIP{SubnetID: subA6, IPAddress: "fd90:1::2"})
		}
		f.ports = append(f.ports, store.Port{ID: dportA, NetworkID: netA, MACAddress: "fa:16:3e:00:00:02",
			DeviceID: "dhcp", DeviceOwner: store.OwnerDHCP, FixedIPs: ips, CreatedAt: time.Unix(1, 0)})
	}
	return f
}

// plan plans f on a host with IPv6, as almost every neutron node is.
func (f fixture) plan(cfg store.Config) Desired {
	return Plan(f.networks, f.subnets, f.ports, f.routers, cfg, Host{IPv6: true})
}

// TestPlanDHCPDecision walks every row of neutron's decision (facts §6): the
// network-level "serve metadata from qdhcp" and the per-subnet option 121 hop.
func TestPlanDHCPDecision(t *testing.T) {
	routed := fixtureOpts{dhcp: true, gateway: "10.90.1.1", routerIP: "10.90.1.1", dhcpPort: true}
	isolated := fixtureOpts{dhcp: true, gateway: "10.90.1.1", dhcpPort: true}
	tests := []struct {
		name       string
		fx         fixtureOpts
		cfg        store.Config
		served     bool
		reason     string // substring
		hop, via   string
		wantDHCPNS bool
		problem    string
	}{
		{"force on a routed network", routed, store.Config{ForceMetadata: true}, true, "force_metadata", "10.90.1.2", "dhcp", true, ""},
		{"force on an isolated network", isolated, store.Config{ForceMetadata: true}, true, "force_metadata", "10.90.1.2", "dhcp", true, ""},
		{"isolated with enable_isolated_metadata", isolated, store.Config{EnableIsolatedMetadata: true}, true, "is isolated (no router interface owns gateway 10.90.1.1)", "10.90.1.2", "dhcp", true, ""},
		{"isolated because the gateway is not the router's IP", fixtureOpts{dhcp: true, gateway: "10.90.1.1", routerIP: "10.90.1.5", dhcpPort: true}, store.Config{EnableIsolatedMetadata: true}, true, "is isolated", "10.90.1.2", "dhcp", true, ""},
		{"isolated without a gateway", fixtureOpts{dhcp: true, dhcpPort: true}, store.Config{EnableIsolatedMetadata: true}, true, "no gateway", "10.90.1.2", "dhcp", true, ""},
		{"routed with enable_isolated_metadata", routed, store.Config{EnableIsolatedMetadata: true}, false, "router interface", "10.90.1.1", "router", false, ""},
		{"routed, both off", routed, store.Config{}, false, "both off", "10.90.1.1", "router", false, ""},
		{"isolated, both off: no metadata route at all", isolated, store.Config{}, false, "both off", "", "", false, ""},
		{"no DHCP subnet even when forced", fixtureOpts{gateway: "10.90.1.1", routerIP: "10.90.1.1", dhcpPort: true}, store.Config{ForceMetadata: true}, false, "no DHCP-enabled subnet", "", "", false, ""},
		{"served but the DHCP port is missing", fixtureOpts{dhcp: true, gateway: "10.90.1.1"}, store.Config{EnableIsolatedMetadata: true}, true, "isolated", "", "", false, "no network:dhcp port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newFixture(tt.fx).plan(tt.cfg)
			if len(d.Networks) != 1 {
				t.Fatalf("networks = %d, want 1", len(d.Networks))
			}
			seg := d.Networks[0]
			if seg.DHCP.Served != tt.served || !strings.Contains(seg.DHCP.Reason, tt.reason) {
				t.Errorf("decision = %+v, want served=%v reason containing %q", seg.DHCP, tt.served, tt.reason)
			}
			if tt.served && seg.DHCP.Namespace != "qdhcp-"+netA {
				t.Errorf("namespace = %q", seg.DHCP.Namespace)
			}
			if !strings.Contains(seg.DHCP.Problem, tt.problem) || (tt.problem == "") != (seg.DHCP.Problem == "") {
				t.Errorf("problem = %q, want %q", seg.DHCP.Problem, tt.problem)
			}
			sp := seg.Subnets[0]
			if sp.MetadataHop != tt.hop || sp.MetadataVia != tt.via {
				t.Errorf("hop = %q via %q, want %q via %q", sp.MetadataHop, sp.MetadataVia, tt.hop, tt.via)
			}
			if got := len(d.DHCP) == 1; got != tt.wantDHCPNS {
				t.Errorf("DHCP namespaces = %d, want present=%v", len(d.DHCP), tt.wantDHCPNS)
			}
		})
	}
}

func TestPlanRouterAndDHCPWiring(t *testing.T) {
	f := newFixture(fixtureOpts{dhcp: true, gateway: "10.90.1.1", routerIP: "10.90.1.1", dhcpPort: true, ipv6: true})
	d := f.plan(store.Config{ForceMetadata: true, EnableMetadataProxy: true})

	wantRouter := RouterNS{
		RouterID: rtrA, Namespace: "qrouter-" + rtrA, IPv6: true, MetadataProxy: true,
		Interfaces: []Interface{{
			PortID: rportA, NetworkID: netA, Name: "qr-a4444444-00", Tap: "tapa4444444-00",
			Bridge: "brqa1111111-00", MAC: "fa:16:3e:00:00:01", Addrs: []string{"10.90.1.1/24", "fd90:1::1/64"}, MTU: 1450,
		}},
	}
	if len(d.Routers) != 1 || !reflect.DeepEqual(d.Routers[0], wantRouter) {
		t.Errorf("routers = %+v\nwant %+v", d.Routers, wantRouter)
	}
	wantDHCP := DHCPNS{
		NetworkID: netA, Namespace: "qdhcp-" + netA, IPv6: true,
		MetadataAddrs: []string{"169.254.169.254/32", "fe80::a9fe:a9fe/128"},
		Interface: Interface{
			PortID: dportA, NetworkID: netA, Name: "ns-a5555555-00", Tap: "tapa5555555-00",
			Bridge: "brqa1111111-00", MAC: "fa:16:3e:00:00:02", Addrs: []string{"10.90.1.2/24", "fd90:1::2/64"}, MTU: 1450,
		},
	}
	if len(d.DHCP) != 1 || !reflect.DeepEqual(d.DHCP[0], wantDHCP) {
		t.Errorf("dhcp = %+v\nwant %+v", d.DHCP, wantDHCP)
	}
	for _, name := range []string{wantRouter.Interfaces[0].Name, wantRouter.Interfaces[0].Tap, wantDHCP.Interface.Name, d.Networks[0].Bridge} {
		if len(name) > 15 {
			t.Errorf("interface name %q longer than 15", name)
		}
	}
	// The IPv6 subnet gets no option 121 hop: DHCPv6 has no route option.
	for _, s := range d.Networks[0].Subnets {
		if s.IPVersion == 6 && s.MetadataHop != "" {
			t.Errorf("IPv6 subnet hop = %q, want none", s.MetadataHop)
		}
	}
}

func TestPlanMetadataProxyOff(t *testing.T) {
	f := newFixture(fixtureOpts{dhcp: true, gateway: "10.90.1.1", routerIP: "10.90.1.1", dhcpPort: true})
	d := f.plan(store.Config{EnableMetadataProxy: false})
	if len(d.Routers) != 1 || d.Routers[0].MetadataProxy || d.Routers[0].IPv6 {
		t.Fatalf("routers = %+v, want one without proxy and without IPv6", d.Routers)
	}
	rules := RouterRules(false, false)
	for _, table := range []string{"nat"} {
		for _, r := range rules[table] {
			if strings.Contains(r, "REDIRECT") {
				t.Errorf("proxy off still redirects: %s", r)
			}
		}
	}
}

func TestGuestsRoutes(t *testing.T) {
	tests := []struct {
		name string
		cfg  store.Config
		fx   fixtureOpts
		want []Route
		dhcp bool
	}{
		{"routed", store.Config{}, fixtureOpts{dhcp: true, gateway: "10.90.1.1", routerIP: "10.90.1.1", dhcpPort: true},
			[]Route{{"10.90.200.0/24", "10.90.1.254"}, {"169.254.169.254/32", "10.90.1.1"}, {"0.0.0.0/0", "10.90.1.1"}}, false},
		{"isolated served by DHCP", store.Config{EnableIsolatedMetadata: true}, fixtureOpts{dhcp: true, gateway: "10.90.1.1", dhcpPort: true},
			[]Route{{"10.90.200.0/24", "10.90.1.254"}, {"169.254.169.254/32", "10.90.1.2"}, {"0.0.0.0/0", "10.90.1.1"}}, true},
		{"isolated unserved", store.Config{}, fixtureOpts{dhcp: true, gateway: "10.90.1.1", dhcpPort: true},
			[]Route{{"10.90.200.0/24", "10.90.1.254"}, {"0.0.0.0/0", "10.90.1.1"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(tt.fx)
			d := f.plan(tt.cfg)
			view := store.InstanceView{
				Instance: store.Instance{ID: "b0000000-0000-4000-8000-000000000001", Name: "vm_1"},
				Ports: []store.PortView{{
					Port:    store.Port{ID: vmportA, NetworkID: netA, MACAddress: "fa:16:3e:00:00:10", FixedIPs: []store.FixedIP{{SubnetID: subA, IPAddress: "10.90.1.10"}}},
					Network: f.networks[0], Subnets: []store.Subnet{f.subnets[0]},
				}},
			}
			gs := Guests(d, []store.InstanceView{view})
			if len(gs) != 1 {
				t.Fatalf("guests = %d", len(gs))
			}
			g := gs[0]
			if !reflect.DeepEqual(g.Routes(), tt.want) {
				t.Errorf("routes = %v, want %v", g.Routes(), tt.want)
			}
			if g.MetadataViaDHCP != tt.dhcp || !reflect.DeepEqual(g.Addrs, []string{"10.90.1.10/24"}) {
				t.Errorf("guest = %+v", g)
			}
			if ns := GuestNamespace(DefaultGuestPrefix, g); ns != "mdctl-vm-vm-1" {
				t.Errorf("namespace = %q", ns)
			}
		})
	}
}

func TestGuestNamespace(t *testing.T) {
	tests := []struct {
		g    Guest
		want string
	}{
		{Guest{InstanceName: "Web.1"}, "p-web-1"},
		{Guest{InstanceID: "c0ffee00-1111-4000-8000-000000000000"}, "p-c0ffee00"},
		{Guest{InstanceName: "web", PortIndex: 1, PortID: "deadbeef-2222"}, "p-web-deadbeef"},
		{Guest{InstanceName: strings.Repeat("x", 60)}, "p-" + strings.Repeat("x", 32)},
	}
	for _, tt := range tests {
		if got := GuestNamespace("p-", tt.g); got != tt.want {
			t.Errorf("GuestNamespace(%+v) = %q, want %q", tt.g, got, tt.want)
		}
	}
}

func TestParseSave(t *testing.T) {
	in := `# Generated by iptables-save
*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -j neutron-l3-agent-PREROUTING
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -j neutron-l3-agent-PREROUTING
-A neutron-l3-agent-PREROUTING -d 169.254.169.254/32 -i qr-+ -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 9697
COMMIT
*filter
COMMIT
`
	want := map[string][]string{
		"mangle": {"-A PREROUTING -j neutron-l3-agent-PREROUTING"},
		"nat": {"-A PREROUTING -j neutron-l3-agent-PREROUTING",
			"-A neutron-l3-agent-PREROUTING -d 169.254.169.254/32 -i qr-+ -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 9697"},
		"filter": {},
	}
	if got := parseSave(in); !reflect.DeepEqual(got, want) {
		t.Errorf("parseSave = %q, want %q", got, want)
	}
}

// TestPlanIPv6MetadataAddressFollowsHost: neutron's DeviceManager.setup
// (neutron/agent/linux/dhcp.py) adds METADATA_V6_CIDR to the DHCP port
// whenever netutils.is_ipv6_enabled(), whatever the network's subnets; its
// test_setup_device_is_ready_ipv6_enabled expects it on an IPv4-only port.
func TestPlanIPv6MetadataAddressFollowsHost(t *testing.T) {
	isolated4 := fixtureOpts{dhcp: true, gateway: "10.90.1.1", dhcpPort: true}
	isolated46 := isolated4
	isolated46.ipv6 = true
	v4 := []string{"169.254.169.254/32"}
	v46 := []string{"169.254.169.254/32", "fe80::a9fe:a9fe/128"}
	tests := []struct {
		name  string
		fx    fixtureOpts
		host  Host
		addrs []string
	}{
		{"IPv4-only network, host with IPv6", isolated4, Host{IPv6: true}, v46},
		{"IPv4-only network, host without IPv6", isolated4, Host{}, v4},
		{"dual-stack network, host with IPv6", isolated46, Host{IPv6: true}, v46},
		{"dual-stack network, host without IPv6", isolated46, Host{}, v4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(tt.fx)
			d := Plan(f.networks, f.subnets, f.ports, f.routers, store.Config{EnableIsolatedMetadata: true}, tt.host)
			if len(d.DHCP) != 1 {
				t.Fatalf("DHCP namespaces %+v, want one", d.DHCP)
			}
			dh := d.DHCP[0]
			if !reflect.DeepEqual(dh.MetadataAddrs, tt.addrs) || dh.IPv6 != tt.host.IPv6 {
				t.Errorf("metadata addresses %q (listen on IPv6: %v), want %q (%v)", dh.MetadataAddrs, dh.IPv6, tt.addrs, tt.host.IPv6)
			}
		})
	}
}

// TestIPv6Enabled reads disable_ipv6 as netutils.is_ipv6_enabled does:
// enabled only when the file says 0; no file, no IPv6.
func TestIPv6Enabled(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		content string
		want    bool
	}{"0\n": {"0\n", true}, "1\n": {"1\n", false}, "missing": {"", false}} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, "disable_ipv6-"+strings.TrimSpace(name))
			if tc.content != "" {
				if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if got := ipv6Enabled(path); got != tc.want {
				t.Errorf("ipv6Enabled(%q) = %v, want %v", tc.content, got, tc.want)
			}
		})
	}
}
