package metadata

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/mdctl/mdctl/store"
)

// mdctl's guests attach through taps, one of the VIF types nova exposes by
// name (others would read "phy").
const vifType = "tap"

// nicNameLen is nova's NIC_NAME_LEN: devnames are "tap" + the port id cut
// to 14 characters.
const nicNameLen = 14

// networkData is nova's netutils.get_network_metadata over the instance's
// ports: links, networks (first IPv4 and first IPv6 subnet of each port)
// and deduplicated DNS services; {} when the instance has no ports (nova's
// empty network info).
func networkData(ports []store.PortView) any {
	if len(ports) == 0 {
		return obj{}
	}
	links, nets, services := []any{}, []any{}, []any{}
	seenDNS := map[string]bool{}
	addDNS := func(sn subnetIPs) {
		for _, d := range dnsServices(sn.subnet) {
			addr, _ := d.get("address")
			if !seenDNS[addr.(string)] {
				seenDNS[addr.(string)] = true
				services = append(services, d)
			}
		}
	}
	ifc, netNum := -1, -1
	for _, pv := range ports {
		subnets := portSubnets(pv)
		if len(subnets) == 0 {
			continue // nova skips VIFs without subnets
		}
		v4, has4 := firstSubnet(subnets, 4)
		v6, has6 := firstSubnet(subnets, 6)
		ifc++
		if !has4 && !has6 {
			continue
		}
		link := ethLink(pv, subnets)
		linkID, _ := link.get("id")
		links = append(links, link)
		for _, sn := range []struct {
			s   subnetIPs
			ok  bool
			ver int
		}{{v4, has4, 4}, {v6, has6, 6}} {
			if !sn.ok || len(sn.s.ips) == 0 {
				continue
			}
			netNum++
			nets = append(nets, netEntry(pv, sn.s, sn.ver, netNum, linkID.(string)))
			addDNS(sn.s)
		}
	}
	return obj{{"links", links}, {"networks", nets}, {"services", services}}
}

// subnetIPs is a subnet of a port with the port's addresses on it, as
// nova's network model nests them.
type subnetIPs struct {
	subnet store.Subnet
	ips    []string
}

// portSubnets groups a port's fixed IPs by subnet, subnets in first-seen
// order.
func portSubnets(pv store.PortView) []subnetIPs {
	byID := map[string]store.Subnet{}
	for _, s := range pv.Subnets {
		byID[s.ID] = s
	}
	var out []subnetIPs
	index := map[string]int{}
	for _, ip := range pv.Port.FixedIPs {
		s, ok := byID[ip.SubnetID]
		if !ok {
			continue
		}
		i, seen := index[s.ID]
		if !seen {
			i = len(out)
			index[s.ID] = i
			out = append(out, subnetIPs{subnet: s})
		}
		out[i].ips = append(out[i].ips, ip.IPAddress)
	}
	return out
}

func firstSubnet(subnets []subnetIPs, version int) (subnetIPs, bool) {
	for _, s := range subnets {
		if s.subnet.IPVersion == version {
			return s, true
		}
	}
	return subnetIPs{}, false
}

// ethLink is nova's _get_eth_link. The MTU is null when any subnet has a
// DHCP server, which then announces it.
func ethLink(pv store.PortView, subnets []subnetIPs) obj {
	devname := "tap" + pv.Port.ID
	if len(devname) > nicNameLen {
		devname = devname[:nicNameLen]
	}
	var mtu any
	if pv.Network.MTU > 0 {
		mtu = pv.Network.MTU
	}
	for _, s := range subnets {
		if s.subnet.EnableDHCP {
			mtu = nil
		}
	}
	return obj{
		{"id", devname},
		{"vif_id", pv.Port.ID},
		{"type", vifType},
		{"mtu", mtu},
		{"ethernet_mac_address", pv.Port.MACAddress},
	}
}

// netEntry is nova's _get_nets. An IPv6 address mode wins over DHCP and
// gives a static entry typed ipv6_<mode>; otherwise a DHCP subnet gives only
// ipv4_dhcp/ipv6_dhcp.
func netEntry(pv store.PortView, sn subnetIPs, version, num int, linkID string) obj {
	id := fmt.Sprintf("network%d", num)
	s := sn.subnet
	suffix := ""
	if version == 6 && s.IPv6AddressMode != "" {
		suffix = "_" + s.IPv6AddressMode
	} else if s.EnableDHCP {
		return obj{
			{"id", id},
			{"type", fmt.Sprintf("ipv%d_dhcp", version)},
			{"link", linkID},
			{"network_id", pv.Network.ID},
		}
	}
	routes := defaultRoute(version, s)
	for _, hr := range s.HostRoutes {
		network, mask := cidrParts(hr.Destination)
		routes = append(routes, obj{
			{"network", network},
			{"netmask", mask},
			{"gateway", hr.NextHop},
		})
	}
	_, mask := cidrParts(s.CIDR)
	e := obj{
		{"id", id},
		{"type", fmt.Sprintf("ipv%d%s", version, suffix)},
		{"link", linkID},
		{"ip_address", sn.ips[0]},
		{"netmask", mask},
		{"routes", routes},
		{"network_id", pv.Network.ID},
	}
	services := []any{}
	for _, d := range dnsServices(s) {
		services = append(services, d)
	}
	return append(e, member{"services", services})
}

// defaultRoute is nova's _get_default_route: none without a gateway.
func defaultRoute(version int, s store.Subnet) []any {
	if s.GatewayIP == "" {
		return []any{}
	}
	any4 := "0.0.0.0"
	if version == 6 {
		any4 = "::"
	}
	return []any{obj{{"network", any4}, {"netmask", any4}, {"gateway", s.GatewayIP}}}
}

func dnsServices(s store.Subnet) []obj {
	out := make([]obj, 0, len(s.DNSNameservers))
	for _, ns := range s.DNSNameservers {
		out = append(out, obj{{"type", "dns"}, {"address", ns}})
	}
	return out
}

// cidrParts gives a CIDR's network address and netmask as netaddr prints
// them ("10.0.0.0", "255.255.255.0"; "2001:db8::", "ffff:ffff::"). A value
// that does not parse is passed through with an empty mask, since the store
// validates CIDRs and nova would fail instead.
func cidrParts(cidr string) (network, mask string) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return cidr, ""
	}
	p = p.Masked()
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	m := net.IP(net.CIDRMask(p.Bits(), bits))
	return p.Addr().String(), m.String()
}
