package dataplane

import (
	"reflect"
	"strings"
	"testing"

	"github.com/mdctl/mdctl/store"
)

// TestDHCPOptsFromPlan: the opts lines for every row of neutron's decision,
// as Plan decides the metadata hop (facts §6).
func TestDHCPOptsFromPlan(t *testing.T) {
	routed := fixtureOpts{dhcp: true, gateway: "10.90.1.1", routerIP: "10.90.1.1", dhcpPort: true}
	isolated := fixtureOpts{dhcp: true, gateway: "10.90.1.1", dhcpPort: true}
	tag := "tag:subnet-" + subA
	routes := func(hop string) []string {
		r := "10.90.200.0/24,10.90.1.254," + "169.254.169.254/32," + hop + ",0.0.0.0/0,10.90.1.1"
		return []string{tag + ",option:classless-static-route," + r, tag + ",249," + r, tag + ",option:router,10.90.1.1"}
	}
	noMetadata := "10.90.200.0/24,10.90.1.254,0.0.0.0/0,10.90.1.1"
	tests := []struct {
		name string
		fx   fixtureOpts
		cfg  store.Config
		want []string
	}{
		{"routed, both off: via the gateway", routed, store.Config{}, routes("10.90.1.1")},
		{"routed with enable_isolated_metadata: via the gateway", routed, store.Config{EnableIsolatedMetadata: true}, routes("10.90.1.1")},
		{"routed with force_metadata: via the DHCP port", routed, store.Config{ForceMetadata: true}, routes("10.90.1.2")},
		{"isolated with enable_isolated_metadata: via the DHCP port", isolated, store.Config{EnableIsolatedMetadata: true}, routes("10.90.1.2")},
		{"isolated with force_metadata: via the DHCP port", isolated, store.Config{ForceMetadata: true}, routes("10.90.1.2")},
		{"isolated, both off: no metadata route", isolated, store.Config{},
			[]string{tag + ",option:classless-static-route," + noMetadata, tag + ",249," + noMetadata, tag + ",option:router,10.90.1.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newFixture(tt.fx).plan(tt.cfg)
			if got := DHCPOpts(d.Networks[0].Subnets, ""); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("opts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestDHCPOptsOrdering pins the corners of neutron's list building.
func TestDHCPOptsOrdering(t *testing.T) {
	tests := []struct {
		name    string
		subnets []SubnetPlan
		want    []string
	}{
		{
			name: "same-segment subnets are prepended one by one, so in reverse",
			subnets: []SubnetPlan{
				{SubnetID: "s1", IPVersion: 4, CIDR: "10.90.1.0/24", GatewayIP: "10.90.1.1", EnableDHCP: true, MetadataHop: "10.90.1.2"},
				{SubnetID: "s2", IPVersion: 4, CIDR: "10.90.2.0/24", EnableDHCP: false},
				{SubnetID: "s3", IPVersion: 4, CIDR: "10.90.3.0/24", EnableDHCP: false},
			},
			want: []string{
				"tag:subnet-s1,option:classless-static-route,10.90.3.0/24,0.0.0.0,10.90.2.0/24,0.0.0.0,169.254.169.254/32,10.90.1.2,0.0.0.0/0,10.90.1.1",
				"tag:subnet-s1,249,10.90.3.0/24,0.0.0.0,10.90.2.0/24,0.0.0.0,169.254.169.254/32,10.90.1.2,0.0.0.0/0,10.90.1.1",
				"tag:subnet-s1,option:router,10.90.1.1",
			},
		},
		{
			name: "a 0.0.0.0/0 host route supplies a missing gateway and is not listed",
			subnets: []SubnetPlan{{SubnetID: "s1", IPVersion: 4, CIDR: "10.90.1.0/24", EnableDHCP: true, MetadataHop: "10.90.1.2",
				HostRoutes: []store.HostRoute{{Destination: "0.0.0.0/0", NextHop: "10.90.1.9"}}}},
			want: []string{
				"tag:subnet-s1,option:classless-static-route,169.254.169.254/32,10.90.1.2,0.0.0.0/0,10.90.1.9",
				"tag:subnet-s1,249,169.254.169.254/32,10.90.1.2,0.0.0.0/0,10.90.1.9",
				"tag:subnet-s1,option:router,10.90.1.9",
			},
		},
		{
			name:    "no gateway: routes without a default and a bare router option",
			subnets: []SubnetPlan{{SubnetID: "s1", IPVersion: 4, CIDR: "10.90.1.0/24", EnableDHCP: true, MetadataHop: "10.90.1.2"}},
			want: []string{
				"tag:subnet-s1,option:classless-static-route,169.254.169.254/32,10.90.1.2",
				"tag:subnet-s1,249,169.254.169.254/32,10.90.1.2",
				"tag:subnet-s1,option:router",
			},
		},
		{
			name:    "no route at all: only the router",
			subnets: []SubnetPlan{{SubnetID: "s1", IPVersion: 4, CIDR: "10.90.1.0/24", GatewayIP: "10.90.1.1", EnableDHCP: true}},
			want:    []string{"tag:subnet-s1,option:router,10.90.1.1"},
		},
		{
			name: "DNS servers first; IPv6 literals bracketed under option6; SLAAC and DHCP-off subnets skipped",
			subnets: []SubnetPlan{
				{SubnetID: "s1", IPVersion: 4, CIDR: "10.90.1.0/24", GatewayIP: "10.90.1.1", EnableDHCP: true, DNSNameservers: []string{"10.90.0.53", "10.90.0.54"}},
				{SubnetID: "s6", IPVersion: 6, CIDR: "fd90:1::/64", EnableDHCP: true, IPv6AddressMode: "dhcpv6-stateful", DNSNameservers: []string{"fd90::53"}},
				{SubnetID: "slaac", IPVersion: 6, CIDR: "fd90:2::/64", EnableDHCP: true, IPv6AddressMode: "slaac", DNSNameservers: []string{"fd90::53"}},
				{SubnetID: "off", IPVersion: 4, CIDR: "10.90.1.0/24", EnableDHCP: false, GatewayIP: "10.90.1.1"},
			},
			want: []string{
				"tag:subnet-s1,option:dns-server,10.90.0.53,10.90.0.54",
				"tag:subnet-s1,option:router,10.90.1.1",
				"tag:subnet-s6,option6:dns-server,[fd90::53]",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DHCPOpts(tt.subnets, ""); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("opts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestDHCPServerPlan(t *testing.T) {
	tests := []struct {
		name string
		fx   fixtureOpts
		want bool
	}{
		{"routed network, switches off: DHCP still served", fixtureOpts{dhcp: true, gateway: "10.90.1.1", routerIP: "10.90.1.1", dhcpPort: true}, true},
		{"isolated network, switches off", fixtureOpts{dhcp: true, gateway: "10.90.1.1", dhcpPort: true}, true},
		{"no DHCP port", fixtureOpts{dhcp: true, gateway: "10.90.1.1"}, false},
		{"DHCP off on the subnet", fixtureOpts{gateway: "10.90.1.1", dhcpPort: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(tt.fx)
			f.ports = append(f.ports, store.Port{ID: vmportA, NetworkID: netA, MACAddress: "fa:16:3e:00:00:10",
				DeviceOwner: store.OwnerCompute, FixedIPs: []store.FixedIP{{SubnetID: subA, IPAddress: "10.90.1.10"}}})
			d := f.plan(store.Config{})
			if got := len(d.DHCPServers) == 1; got != tt.want {
				t.Fatalf("DHCP servers = %+v, want present=%v", d.DHCPServers, tt.want)
			}
			if !tt.want {
				return
			}
			srv := d.DHCPServers[0]
			if srv.Namespace != "qdhcp-"+netA || srv.Interface.Name != "ns-a5555555-00" || !reflect.DeepEqual(srv.Interface.Addrs, []string{"10.90.1.2/24"}) {
				t.Errorf("server = %+v", srv)
			}
			// Every port of the network, router and DHCP ports too, by port id.
			var wantHosts []string
			if tt.fx.routerIP != "" {
				wantHosts = append(wantHosts, "fa:16:3e:00:00:01,host-10-90-1-1,10.90.1.1")
			}
			wantHosts = append(wantHosts, "fa:16:3e:00:00:02,host-10-90-1-2,10.90.1.2",
				"fa:16:3e:00:00:10,host-10-90-1-10,10.90.1.10")
			if got := DHCPHostsFile(srv.Hosts, ""); !reflect.DeepEqual(got, wantHosts) {
				t.Errorf("hosts = %q, want %q", got, wantHosts)
			}
			if got := DHCPRanges(srv.Subnets, 120); !reflect.DeepEqual(got, []string{"set:subnet-" + subA + ",10.90.1.0,static,255.255.255.0,120s"}) {
				t.Errorf("ranges = %q", got)
			}
		})
	}
}

func TestLinkLocalFromMAC(t *testing.T) {
	tests := map[string]string{
		"fa:16:3e:00:00:01": "fe80::f816:3eff:fe00:1",
		"02:00:00:aa:bb:cc": "fe80::ff:feaa:bbcc",
		"nonsense":          "",
	}
	for mac, want := range tests {
		if got := LinkLocalFromMAC(mac); got != want {
			t.Errorf("LinkLocalFromMAC(%s) = %q, want %q", mac, got, want)
		}
	}
}

func TestMetadataHop6(t *testing.T) {
	d := newFixture(fixtureOpts{dhcp: true, gateway: "10.90.1.1", routerIP: "10.90.1.1", dhcpPort: true, ipv6: true}).plan(store.Config{})
	for _, s := range d.Networks[0].Subnets {
		if s.IPVersion == 6 && s.MetadataHop6 != "fe80::f816:3eff:fe00:1" {
			t.Errorf("routed IPv6 subnet hop = %q, want the router port's link-local", s.MetadataHop6)
		}
	}
	d = newFixture(fixtureOpts{dhcp: true, gateway: "10.90.1.1", dhcpPort: true, ipv6: true}).plan(store.Config{})
	for _, s := range d.Networks[0].Subnets {
		if s.MetadataHop6 != "" {
			t.Errorf("isolated subnet %s hop6 = %q, want none", s.SubnetID, s.MetadataHop6)
		}
	}
}
