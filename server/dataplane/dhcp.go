package dataplane

import (
	"net"
	"sort"

	"github.com/mdctl/mdctl/store"
)

// DHCPServer is one network's DHCP service: a dnsmasq in qdhcp-<network>
// bound to the DHCP port's ns- interface, answering the network's ports
// with their fixed IPs and neutron's per-subnet options.
type DHCPServer struct {
	NetworkID string
	Namespace string    // qdhcp-<network id>
	Interface Interface // ns-<port[:11]>, holding the DHCP port's IPs
	// Subnets are all the network's subnets, as Plan decided them: the opts
	// need the others for same-segment routes.
	Subnets []SubnetPlan
	Hosts   []DHCPHost
	MTU     int
	// LeaseSeconds is neutron's dhcp_lease_duration (-1: infinite).
	LeaseSeconds int
	// Domain is neutron's dns_domain: dnsmasq's --domain (DHCP option
	// 15) and the domain of the host names it hands out and resolves.
	Domain string
}

// DHCPHost is one line of dnsmasq's hosts file: a port's MAC and its fixed
// IP on one DHCP subnet.
type DHCPHost struct {
	PortID   string
	MAC      string
	IP       string
	SubnetID string
}

// planDHCPServer gives the network a DHCP server when it has a DHCP port
// and an IPv4 subnet with DHCP on (mdctl serves DHCPv4 only: the lab
// configures IPv6 addresses as SLAAC would).
func planDHCPServer(n store.Network, seg NetSegment, ports []store.Port, subnetByID map[string]store.Subnet, cfg store.Config) *DHCPServer {
	dhcpPort := firstDHCPPort(n.ID, ports)
	if dhcpPort == nil {
		return nil
	}
	served := map[string]bool{}
	for _, s := range seg.Subnets {
		if s.IPVersion == 4 && s.EnableDHCP {
			served[s.SubnetID] = true
		}
	}
	if len(served) == 0 {
		return nil
	}
	srv := &DHCPServer{
		NetworkID: n.ID, Namespace: DHCPNamespace(n.ID), MTU: n.MTU,
		Interface:    portInterface(*dhcpPort, DHCPInterfaceName(dhcpPort.ID), n, subnetByID),
		Subnets:      seg.Subnets,
		LeaseSeconds: cfg.DHCPLeaseSeconds, Domain: cfg.DNSDomain,
	}
	for _, p := range ports {
		if p.NetworkID != n.ID || p.MACAddress == "" {
			continue
		}
		for _, ip := range p.FixedIPs {
			if served[ip.SubnetID] {
				srv.Hosts = append(srv.Hosts, DHCPHost{PortID: p.ID, MAC: p.MACAddress, IP: ip.IPAddress, SubnetID: ip.SubnetID})
			}
		}
	}
	sort.Slice(srv.Hosts, func(i, j int) bool {
		if srv.Hosts[i].PortID != srv.Hosts[j].PortID {
			return srv.Hosts[i].PortID < srv.Hosts[j].PortID
		}
		return srv.Hosts[i].IP < srv.Hosts[j].IP
	})
	return srv
}

// routerOwnedMACs maps "<subnet id>|<ip>" held by a router interface to
// that port's MAC, whose EUI-64 link-local address radvd would speak from.
func routerOwnedMACs(ports []store.Port) map[string]string {
	macs := map[string]string{}
	for _, p := range ports {
		if p.DeviceOwner != store.OwnerRouterInterface {
			continue
		}
		for _, ip := range p.FixedIPs {
			macs[ip.SubnetID+"|"+ip.IPAddress] = p.MACAddress
		}
	}
	return macs
}

// setMetadataHops6 gives each routed IPv6 subnet the router's link-local
// address as the next hop for fe80::a9fe:a9fe/128 (neutron's radvd route).
func setMetadataHops6(subnets []SubnetPlan, routerMACs map[string]string) {
	for i := range subnets {
		s := &subnets[i]
		if s.IPVersion != 6 || s.Isolated || s.GatewayIP == "" {
			continue
		}
		s.MetadataHop6 = LinkLocalFromMAC(routerMACs[s.SubnetID+"|"+s.GatewayIP])
	}
}

// LinkLocalFromMAC is the EUI-64 link-local address the kernel gives an
// interface with this MAC (RFC 4291 appendix A); "" when mac does not parse.
func LinkLocalFromMAC(mac string) string {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return ""
	}
	ip := net.IP{0xfe, 0x80, 0, 0, 0, 0, 0, 0, hw[0] ^ 0x02, hw[1], hw[2], 0xff, 0xfe, hw[3], hw[4], hw[5]}
	return ip.String()
}
