package dataplane

import (
	"strings"
	"testing"

	"github.com/mdctl/mdctl/internal/golden"
	"github.com/mdctl/mdctl/store"
)

// TestDnsmasqFilesGolden pins the files and command line of one network's
// dnsmasq against what neutron's DHCP agent writes for the same network,
// with neutron's defaults (neutron/agent/linux/dhcp.py):
//   - cmdline: Dnsmasq._build_cmdline_callback: static ranges with
//     dhcp_lease_duration (86400 s), the addn_hosts file, the lease cap
//     (the subnets' sizes), --domain=dns_domain (openstacklocal), the MTU;
//   - host: _output_hosts_file, "<mac>,host-<ip>.<domain>,<ip>";
//   - addn_hosts: _output_addn_hosts_file, "<ip>\t<fqdn> <hostname>";
//   - opts: _generate_opts_per_subnet: the subnet's dns_nameservers as
//     dns-server (bare for 0.0.0.0, none without: dnsmasq then names
//     itself), domain-search for DHCPv6, routes (121, 249), router.
//
// Three subnets on one network: one with name servers and a host route,
// one with "0.0.0.0" (announce none), one without (the DHCP port is the
// name server); and a stateful DHCPv6 subnet.
func TestDnsmasqFilesGolden(t *testing.T) {
	const (
		net1  = "c1111111-0000-4000-8000-000000000001"
		sNS   = "c2222222-0000-4000-8000-00000000000a"
		sNone = "c2222222-0000-4000-8000-00000000000b"
		sSelf = "c2222222-0000-4000-8000-00000000000c"
		s6    = "c2222222-0000-4000-8000-000000000006"
	)
	cfg, err := store.ParseConfig(map[string]string{"enable_isolated_metadata": "true"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	networks := []store.Network{{ID: net1, Name: "golden", MTU: 1450}}
	subnets := []store.Subnet{
		{ID: sNS, NetworkID: net1, IPVersion: 4, CIDR: "10.90.41.0/24", GatewayIP: "10.90.41.1", EnableDHCP: true,
			DNSNameservers: []string{"10.90.0.53", "10.90.0.54"}, HostRoutes: []store.HostRoute{{Destination: "10.90.200.0/24", NextHop: "10.90.41.254"}}},
		{ID: sNone, NetworkID: net1, IPVersion: 4, CIDR: "10.90.42.0/25", GatewayIP: "10.90.42.1", EnableDHCP: true, DNSNameservers: []string{"0.0.0.0"}},
		{ID: sSelf, NetworkID: net1, IPVersion: 4, CIDR: "10.90.43.0/24", GatewayIP: "10.90.43.1", EnableDHCP: true},
		{ID: s6, NetworkID: net1, IPVersion: 6, CIDR: "fd90:41::/64", GatewayIP: "fd90:41::1", EnableDHCP: true,
			IPv6AddressMode: "dhcpv6-stateful", DNSNameservers: []string{"fd90::53"}},
	}
	ports := []store.Port{
		{ID: "c5555555-0000-4000-8000-000000000001", NetworkID: net1, MACAddress: "fa:16:3e:41:00:02", DeviceOwner: store.OwnerDHCP,
			FixedIPs: []store.FixedIP{{SubnetID: sNS, IPAddress: "10.90.41.2"}, {SubnetID: sNone, IPAddress: "10.90.42.2"}, {SubnetID: sSelf, IPAddress: "10.90.43.2"}}},
		{ID: "c6666666-0000-4000-8000-000000000001", NetworkID: net1, MACAddress: "fa:16:3e:41:00:10", DeviceOwner: store.OwnerCompute,
			FixedIPs: []store.FixedIP{{SubnetID: sNS, IPAddress: "10.90.41.10"}}},
		{ID: "c6666666-0000-4000-8000-000000000002", NetworkID: net1, MACAddress: "fa:16:3e:43:00:10", DeviceOwner: store.OwnerCompute,
			FixedIPs: []store.FixedIP{{SubnetID: sSelf, IPAddress: "10.90.43.10"}, {SubnetID: s6, IPAddress: "fd90:41::10"}}},
	}
	d := Plan(networks, subnets, ports, nil, cfg, Host{IPv6: true})
	if len(d.DHCPServers) != 1 {
		t.Fatalf("DHCP servers %+v, want one", d.DHCPServers)
	}
	srv := d.DHCPServers[0]
	dir := "/var/lib/mdctl/dhcp/" + net1
	files := map[string][]string{
		"cmdline":    dnsmasqArgs(srv, dir),
		"host":       DHCPHostsFile(srv.Hosts, srv.Domain),
		"addn_hosts": DHCPAddnHostsFile(srv.Hosts, srv.Domain),
		"opts":       DHCPOpts(srv.Subnets, srv.Domain),
	}
	for name, lines := range files {
		t.Run(name, func(t *testing.T) {
			golden.Check(t, "dnsmasq/"+name, strings.Join(lines, "\n")+"\n")
		})
	}
}

// TestDHCPLeaseDurations: neutron writes dhcp_lease_duration as "<n>s",
// and -1 as "infinite".
func TestDHCPLeaseDurations(t *testing.T) {
	sub := []SubnetPlan{{SubnetID: "s", IPVersion: 4, CIDR: "10.90.1.0/24", EnableDHCP: true}}
	for lease, want := range map[int]string{86400: "86400s", 120: "120s", -1: "infinite"} {
		if got := DHCPRanges(sub, lease); len(got) != 1 || got[0] != "set:subnet-s,10.90.1.0,static,255.255.255.0,"+want {
			t.Errorf("lease %d: ranges %q, want one ending %s", lease, got, want)
		}
	}
}
