package dataplane

import (
	"fmt"
	"net"
	"sort"

	"github.com/mdctl/mdctl/store"
)

// Desired is the data plane mdctl wants, computed from the store by Plan and
// made real by Reconciler.Apply.
type Desired struct {
	Networks []NetSegment
	Routers  []RouterNS
	DHCP     []DHCPNS
	// DHCPServers is one dnsmasq per network with a DHCP port and an IPv4
	// DHCP subnet, as neutron's DHCP agent runs one whether or not it serves
	// metadata: guests get their routes (option 121) from it either way.
	// Its namespace is the same qdhcp-<network>; DHCP lists the subset that
	// also serves metadata.
	DHCPServers []DHCPServer
}

// NetSegment is one tenant network: a bridge in the segment namespace, or
// on the operator's L2 in the host namespace, and neutron's metadata
// decisions for it.
type NetSegment struct {
	NetworkID string
	Bridge    string // in the segment namespace, or in the host one when OnHost
	// OnHost: the network is attached to the operator's L2 (store
	// Network.Bridge). Without a VLAN, Bridge is the operator's own bridge,
	// which mdctl never creates, changes or removes; with one, mdctl makes
	// VLANLink (<HostDevice>.<VLAN>) and Bridge (brq<network>) holding it,
	// as neutron's linuxbridge agent does for a VLAN provider network.
	OnHost     bool
	HostDevice string // the operator's bridge or trunk (store Network.Bridge)
	VLAN       int
	VLANLink   string // <HostDevice>.<VLAN>, "" without a VLAN
	MTU        int    // 0: kernel default
	Subnets    []SubnetPlan
	DHCP       DHCPDecision
}

// DHCPDecision says whether the network's DHCP namespace serves metadata,
// and why (the tracer shows Reason verbatim).
type DHCPDecision struct {
	Served    bool   // neutron would run a metadata proxy in qdhcp-<network>
	Reason    string // why it is or is not served
	Namespace string // qdhcp-<network id>, set when Served
	Problem   string // set when Served but the namespace cannot be built (no DHCP port)
}

// SubnetPlan is one subnet with the routing facts DHCP hands its guests.
type SubnetPlan struct {
	SubnetID   string
	IPVersion  int
	CIDR       string
	GatewayIP  string
	EnableDHCP bool
	// Isolated: no router interface port owns the gateway IP (neutron's
	// get_isolated_subnets); a subnet without a gateway is isolated.
	Isolated bool
	// MetadataHop is the next hop DHCP option 121 gives for 169.254.169.254/32
	// (IPv4 only): the DHCP port's IP, the gateway, or "" for no route.
	MetadataHop string
	// MetadataVia is "dhcp", "router" or "" to match MetadataHop.
	MetadataVia string
	// MetadataHop6 is, on a routed IPv6 subnet, the link-local address of
	// the router port owning the gateway: radvd announces
	// fe80::a9fe:a9fe/128 via it (facts §5). "" elsewhere: on an isolated
	// network the DHCP port holds fe80::a9fe:a9fe on the link itself.
	MetadataHop6    string
	HostRoutes      []store.HostRoute
	DNSNameservers  []string
	IPv6AddressMode string
}

// Interface is one veth: Name inside a router/DHCP/guest namespace, Tap on
// the network's bridge in the segment namespace (in the host namespace when
// OnHost).
type Interface struct {
	PortID    string
	NetworkID string
	Name      string   // qr-…, ns-… or eth0
	Tap       string   // tap… on Bridge
	Bridge    string   // brq…, or the operator's bridge
	OnHost    bool     // Tap and Bridge are in the host namespace
	MAC       string   // the port's MAC, on Name
	Addrs     []string // CIDR notation ("10.90.1.1/24"), on Name
	MTU       int
}

// RouterNS is one qrouter namespace.
type RouterNS struct {
	RouterID   string
	Namespace  string // qrouter-<router id>; proxies listen on 0.0.0.0:9697 and [::]:9697 here
	Interfaces []Interface
	IPv6       bool // some interface has an IPv6 subnet: ip6tables rules too
	// MetadataProxy mirrors enable_metadata_proxy: without it only the
	// mangle mark and the FORWARD drop are installed (no REDIRECT).
	MetadataProxy bool
}

// IPv6Rules says whether the namespace needs ip6tables rules: with an IPv6
// subnet, and whenever a proxy runs, because its [::]:9697 listener is
// reachable on every qr- interface's link-local address and only the
// INPUT pair (DROP :9697 unless marked) keeps guests from it. Neutron
// installs the IPv6 set on every host with IPv6 enabled for the same
// reason.
func (rt RouterNS) IPv6Rules() bool { return rt.IPv6 || rt.MetadataProxy }

// DHCPNS is one qdhcp namespace that serves metadata.
type DHCPNS struct {
	NetworkID string
	Namespace string // qdhcp-<network id>; proxies listen on 169.254.169.254:80 and [fe80::a9fe:a9fe%<Interface.Name>]:80
	Interface Interface
	// MetadataAddrs are added to Interface.Name besides the port's own IPs:
	// 169.254.169.254/32, and fe80::a9fe:a9fe/128 when the host has IPv6
	// (Host.IPv6), as neutron adds it, whatever the network's subnets.
	MetadataAddrs []string
	// IPv6 says the proxy also listens on [fe80::a9fe:a9fe%<Interface>]:80.
	IPv6 bool
}

// Plan computes the wanted data plane from store records, following
// neutron's l3 and DHCP agents (facts §5, §6). It does no I/O.
func Plan(networks []store.Network, subnets []store.Subnet, ports []store.Port, routers []store.Router, cfg store.Config, host Host) Desired {
	var d Desired
	subnetByID := map[string]store.Subnet{}
	for _, s := range subnets {
		subnetByID[s.ID] = s
	}
	netByID := map[string]store.Network{}
	for _, n := range networks {
		netByID[n.ID] = n
	}
	routerIPs := routerOwnedIPs(ports)
	routerMACs := routerOwnedMACs(ports)

	nets := append([]store.Network(nil), networks...)
	sort.Slice(nets, func(i, j int) bool { return nets[i].ID < nets[j].ID })
	for _, n := range nets {
		seg, dhcp := planNetwork(n, subnets, ports, routerIPs, subnetByID, cfg, host)
		setMetadataHops6(seg.Subnets, routerMACs)
		d.Networks = append(d.Networks, seg)
		if dhcp != nil {
			d.DHCP = append(d.DHCP, *dhcp)
		}
		if srv := planDHCPServer(n, seg, ports, subnetByID, cfg); srv != nil {
			d.DHCPServers = append(d.DHCPServers, *srv)
		}
	}

	rs := append([]store.Router(nil), routers...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].ID < rs[j].ID })
	for _, r := range rs {
		d.Routers = append(d.Routers, planRouter(r, ports, subnetByID, netByID, cfg))
	}
	return d
}

// routerOwnedIPs is the set of "<subnet id>|<ip>" held by router interfaces.
func routerOwnedIPs(ports []store.Port) map[string]bool {
	owned := map[string]bool{}
	for _, p := range ports {
		if p.DeviceOwner != store.OwnerRouterInterface {
			continue
		}
		for _, ip := range p.FixedIPs {
			owned[ip.SubnetID+"|"+ip.IPAddress] = true
		}
	}
	return owned
}

func planNetwork(n store.Network, subnets []store.Subnet, ports []store.Port, routerIPs map[string]bool, subnetByID map[string]store.Subnet, cfg store.Config, host Host) (NetSegment, *DHCPNS) {
	seg := NetSegment{NetworkID: n.ID, MTU: n.MTU}
	seg.Bridge, seg.OnHost = NetworkBridge(n)
	if seg.OnHost {
		seg.HostDevice, seg.VLAN = n.Bridge, n.VLAN
		if n.VLAN != 0 {
			seg.VLANLink = VLANLinkName(n.Bridge, n.VLAN)
		}
	}
	dhcpPort := firstDHCPPort(n.ID, ports)
	for _, s := range subnets {
		if s.NetworkID != n.ID {
			continue
		}
		sp := SubnetPlan{
			SubnetID: s.ID, IPVersion: s.IPVersion, CIDR: s.CIDR, GatewayIP: s.GatewayIP,
			EnableDHCP: s.EnableDHCP, HostRoutes: s.HostRoutes,
			DNSNameservers: s.DNSNameservers, IPv6AddressMode: s.IPv6AddressMode,
			Isolated: s.GatewayIP == "" || !routerIPs[s.ID+"|"+s.GatewayIP],
		}
		seg.Subnets = append(seg.Subnets, sp)
	}
	sort.Slice(seg.Subnets, func(i, j int) bool { return seg.Subnets[i].SubnetID < seg.Subnets[j].SubnetID })

	seg.DHCP = decideDHCP(seg.Subnets, cfg)
	if seg.DHCP.Served {
		seg.DHCP.Namespace = DHCPNamespace(n.ID)
	}
	for i := range seg.Subnets {
		setMetadataHop(&seg.Subnets[i], dhcpPort, cfg)
	}
	if !seg.DHCP.Served {
		return seg, nil
	}
	if dhcpPort == nil {
		seg.DHCP.Problem = "no " + store.OwnerDHCP + " port on this network"
		return seg, nil
	}
	ns := &DHCPNS{
		NetworkID: n.ID,
		Namespace: seg.DHCP.Namespace,
		Interface: portInterface(*dhcpPort, DHCPInterfaceName(dhcpPort.ID), n, subnetByID),
	}
	// neutron/agent/linux/dhcp.py DeviceManager.setup: METADATA_CIDR, and
	// METADATA_V6_CIDR whenever netutils.is_ipv6_enabled(), an IPv4-only
	// network too (its test_setup_device_* expect it on an IPv4 port):
	// cloud-init >= 23.1 asks [fe80::a9fe:a9fe%eth0] first on any guest.
	ns.MetadataAddrs = []string{MetadataIPv4 + "/32"}
	if host.IPv6 {
		ns.IPv6 = true
		ns.MetadataAddrs = append(ns.MetadataAddrs, MetadataIPv6+"/128")
	}
	return seg, ns
}

// decideDHCP is neutron's should_enable_metadata for one network (facts §6).
func decideDHCP(subnets []SubnetPlan, cfg store.Config) DHCPDecision {
	var dhcpSubnets, isolated []SubnetPlan
	for _, s := range subnets {
		if !s.EnableDHCP {
			continue
		}
		dhcpSubnets = append(dhcpSubnets, s)
		if s.Isolated {
			isolated = append(isolated, s)
		}
	}
	switch {
	case len(dhcpSubnets) == 0:
		return DHCPDecision{Reason: "no DHCP-enabled subnet"}
	case cfg.ForceMetadata:
		return DHCPDecision{Served: true, Reason: "force_metadata is on"}
	case cfg.EnableIsolatedMetadata && len(isolated) > 0:
		return DHCPDecision{Served: true, Reason: fmt.Sprintf("enable_isolated_metadata is on and subnet %s is isolated (%s)", isolated[0].SubnetID, isolationWhy(isolated[0]))}
	case cfg.EnableIsolatedMetadata:
		return DHCPDecision{Reason: "enable_isolated_metadata is on but every DHCP subnet's gateway is a router interface (metadata goes via the router)"}
	default:
		return DHCPDecision{Reason: "force_metadata and enable_isolated_metadata are both off"}
	}
}

func isolationWhy(s SubnetPlan) string {
	if s.GatewayIP == "" {
		return "no gateway"
	}
	return "no router interface owns gateway " + s.GatewayIP
}

// setMetadataHop is the dnsmasq opts choice for 169.254.169.254/32 (facts §6):
// the DHCP port when forced or isolated with enable_isolated_metadata, else
// the gateway when routed, else none. IPv4 only: DHCPv6 has no route option.
func setMetadataHop(s *SubnetPlan, dhcpPort *store.Port, cfg store.Config) {
	if s.IPVersion != 4 || !s.EnableDHCP {
		return
	}
	if cfg.ForceMetadata || (s.Isolated && cfg.EnableIsolatedMetadata) {
		if ip := portIPOnSubnet(dhcpPort, s.SubnetID); ip != "" {
			s.MetadataHop, s.MetadataVia = ip, "dhcp"
		}
		return
	}
	if !s.Isolated && s.GatewayIP != "" {
		s.MetadataHop, s.MetadataVia = s.GatewayIP, "router"
	}
}

func portIPOnSubnet(p *store.Port, subnetID string) string {
	if p == nil {
		return ""
	}
	for _, ip := range p.FixedIPs {
		if ip.SubnetID == subnetID {
			return ip.IPAddress
		}
	}
	return ""
}

// firstDHCPPort is the network's oldest DHCP port: mdctl runs one DHCP
// "agent", so one port serves (neutron needs exactly one for IPv6 too).
func firstDHCPPort(networkID string, ports []store.Port) *store.Port {
	var best *store.Port
	for i := range ports {
		p := &ports[i]
		if p.NetworkID != networkID || p.DeviceOwner != store.OwnerDHCP {
			continue
		}
		if best == nil || p.CreatedAt.Before(best.CreatedAt) || (p.CreatedAt.Equal(best.CreatedAt) && p.ID < best.ID) {
			best = p
		}
	}
	return best
}

func planRouter(r store.Router, ports []store.Port, subnetByID map[string]store.Subnet, netByID map[string]store.Network, cfg store.Config) RouterNS {
	rn := RouterNS{RouterID: r.ID, Namespace: RouterNamespace(r.ID), MetadataProxy: cfg.EnableMetadataProxy}
	for _, p := range ports {
		if p.DeviceOwner != store.OwnerRouterInterface || p.DeviceID != r.ID {
			continue
		}
		n, ok := netByID[p.NetworkID]
		if !ok {
			continue // a port on a network the store no longer has: nothing to plug into
		}
		rn.Interfaces = append(rn.Interfaces, portInterface(p, RouterInterfaceName(p.ID), n, subnetByID))
		for _, ip := range p.FixedIPs {
			if subnetByID[ip.SubnetID].IPVersion == 6 {
				rn.IPv6 = true
			}
		}
	}
	sort.Slice(rn.Interfaces, func(i, j int) bool { return rn.Interfaces[i].PortID < rn.Interfaces[j].PortID })
	return rn
}

// portInterface wires a port: its MAC and each fixed IP with its subnet's
// prefix length.
func portInterface(p store.Port, name string, n store.Network, subnetByID map[string]store.Subnet) Interface {
	ifc := Interface{
		PortID: p.ID, NetworkID: p.NetworkID, Name: name, Tap: TapName(p.ID),
		MAC: p.MACAddress, MTU: n.MTU,
	}
	ifc.Bridge, ifc.OnHost = NetworkBridge(n)
	for _, ip := range p.FixedIPs {
		if cidr := withPrefix(ip.IPAddress, subnetByID[ip.SubnetID].CIDR); cidr != "" {
			ifc.Addrs = append(ifc.Addrs, cidr)
		}
	}
	return ifc
}

// withPrefix gives ip the prefix length of cidr ("10.90.1.1", "10.90.1.0/24"
// → "10.90.1.1/24"); "" when either does not parse.
func withPrefix(ip, cidr string) string {
	addr := net.ParseIP(ip)
	_, n, err := net.ParseCIDR(cidr)
	if addr == nil || err != nil {
		return ""
	}
	ones, _ := n.Mask.Size()
	return fmt.Sprintf("%s/%d", addr, ones)
}
