// Package dataplane owns everything mdctl does to the kernel: named network
// namespaces, veths, bridges, addresses, routes and the metadata iptables
// rules of router namespaces, reconciled from the store; and the lab guests
// that stand in for VMs. It must never serve HTTP or read the store itself:
// callers hand it store records and it hands back namespace names.
//
// Namespaces, done once:
//
//	Do(ns, fn)                         run fn on a thread inside ns (the only setns caller)
//	ListenTCP(ns, network, addr)       a listener that lives in ns (proxies)
//	DialContext(ctx, ns, network, addr) a connection from ns (tracer probes)
//	RunIn(ns, *exec.Cmd)               a process in ns
//	EnsureNamespace / DeleteNamespace / NamespaceExists / ListNamespaces,
//	compatible with `ip netns` (bind mounts under /run/netns).
//
// The wanted state: Plan(networks, subnets, ports, routers, cfg) is a pure
// function returning a Desired — one bridge per network in mdctl's segment
// namespace (Options.SegmentNamespace, default "mdctl-seg"), one
// qrouter-<router id> namespace per router with a qr-<port[:11]> veth per
// router interface and neutron's four metadata rules (wrapped chains
// neutron-l3-agent-*, IPv6 too when the router has IPv6), and one
// qdhcp-<network id> namespace per network neutron's DHCP agent would serve
// metadata from (force_metadata, or enable_isolated_metadata and an isolated
// DHCP subnet), its ns-<port[:11]> veth holding 169.254.169.254/32 (and
// fe80::a9fe:a9fe/128 with IPv6). NetSegment.DHCP says why a network is or
// is not DHCP-served and SubnetPlan.MetadataHop is the option 121 next hop.
// Every veth's other end is tap<port[:11]> on brq<network[:11]>.
//
// The operator's L2 (host.go): a network whose record names a host bridge
// (store Network.Bridge) has no segment bridge. Its router and DHCP taps go
// on that bridge in the host namespace (Options.HostNamespace, default the
// one mdctl started in), as neutron's linuxbridge agent plugs a flat
// provider network; with a VLAN, mdctl makes <device>.<vlan> and a
// brq<network> bridge holding it (ensure_vlan_bridge). Links mdctl makes on
// the host carry hostAlias (the owner mark, then what they serve), so
// sweepHost removes only this mdctl's: the operator's bridge and everything
// else on it stay. A tap name held by a device mdctl did not make (a real
// VM's tap) is never deleted or replaced (ErrForeignTap); TapOf says what
// holds a port's tap name.
//
// DHCP: Desired.DHCPServers has one entry per network with a DHCP port and
// an IPv4 DHCP subnet, whether or not it serves metadata (guests need their
// routes either way), so a qdhcp namespace exists for each; the switches
// only add or remove the metadata addresses. Dnsmasq (Sync/Close) runs
// one /usr/sbin/dnsmasq per server inside its namespace with neutron's
// hosts file, opts file (DHCPOpts: option 121 and 249 as neutron orders
// them) and static --dhcp-range per subnet, and sends SIGHUP when a switch
// rewrites the opts, so a guest's next renewal carries the new route.
// Files live under Options.DHCPStateDir().
//
// Reconciler.Apply(ctx, d) makes the kernel match: idempotent, adopting what
// exists, and removing only what carries this mdctl's owner mark (an alias
// on lo of each namespace it made, and on each segment link), so neutron's
// own namespaces and another mdctl's are never touched. Proxies listen in
// RouterNS.Namespace on 0.0.0.0:9697 and [::]:9697, and in DHCPNS.Namespace
// on 169.254.169.254:80 and [fe80::a9fe:a9fe%<DHCPNS.Interface.Name>]:80.
//
// A namespace Apply removes lives on while a listener still holds it:
// callers close the proxies of routers and networks that left Desired.
//
// Read-only views for the tracer and `lab status` (they work on a real
// neutron node too): LinkAddrs(ns, link), RouteTo(ns, dst) (`ip route get`),
// SaveRules(ns, ipv6) (iptables-save per table), RouterRules(ipv6, proxy)
// (the lines Apply installs, to compare with).
//
// Lab guests (mdctl lab): Guests(d, instance views) gives one Guest per
// instance port; LabUp builds a namespace per guest (GuestNamespace: prefix
// + instance name) with eth0 carrying the port's MAC and addresses, its tap
// on the network's bridge, and its IPv4 routes from a real DHCP lease
// (dhclient with mdctl's own config and script, routes proto dhcp) or,
// with Options.GuestRoutes static or when no client or server is there,
// the static routes DHCP would push (Guest.Routes). IPv6 routes are
// static, as RAs would give them, fe80::a9fe:a9fe/128 via the router's
// link-local address on routed networks (neutron's radvd route);
// LabStatus inspects, LabExec runs a command inside, LabDown removes them.
// A port bound to a host (binding_host_id), or whose tap a VM already
// holds, is external: LabUp builds nothing for it and LabStatus reports it
// as external, not missing. GuestLease runs the lab's DHCP client in any
// namespace (tests' stand-ins for VMs outside the lab use it).
//
// Lab VMs (tap.go, for server.LabVMUp): VMNamespace says where QEMU runs so
// its taps land beside their bridge (segment, or host for the operator's
// L2), EnsureVMBridge makes the segment and bridge when serve has not,
// and PlugVMTap plugs the tap QEMU made into its bridge, marked as the lab's.
package dataplane
