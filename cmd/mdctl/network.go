package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/store"
	"github.com/mdctl/mdctl/store/topology"
)

// networkView is a network as mdctl prints it: the record, its subnets and
// the router it is attached to (neutron shows these on separate calls).
type networkView struct {
	store.Network `yaml:",inline"`
	Subnets       []store.Subnet `json:"subnets" yaml:"subnets"`
	RouterID      string         `json:"router_id" yaml:"router_id"` // "" when isolated
	Router        string         `json:"router" yaml:"router"`
}

func newCmdNetwork(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "network",
		Aliases: []string{"networks", "net"},
		Short:   "Create, list, show and delete networks",
		Example: `  mdctl network create net1 --project demo --cidr 10.90.1.0/24 --router r1
  mdctl network create iso --project demo --cidr 10.90.2.0/24   # isolated: DHCP-namespace metadata
  mdctl network list
  mdctl network delete iso`,
	}
	k := networkKind()
	cmd.AddCommand(newCmdNetworkCreate(f, nil), newCmdRecordList(f, k, nil), newCmdRecordShow(f, k, nil), newCmdRecordDelete(f, k, nil))
	return cmd
}

// networkKind is how network list, show and delete read, delete and print
// a network: with its subnets and router.
func networkKind() recordKind[store.Network, networkView] {
	return recordKind[store.Network, networkView]{
		name: "network",
		list: func(ctx context.Context, st store.Reader) ([]store.Network, error) { return st.ListNetworks(ctx) },
		get: func(ctx context.Context, st store.Reader, ref string) (store.Network, error) {
			return st.GetNetwork(ctx, ref)
		},
		view:   readNetworkView,
		remove: topology.DeleteNetwork,
		ident:  func(n store.Network) (string, string) { return n.Name, n.ID },
		table:  printNetworkTable,
		listHelp: recordHelp{
			Short: "List networks with their subnets and routers",
			Example: `  mdctl network list
  mdctl network list -o json`,
		},
		showHelp: recordHelp{
			Short:   "Show one network with its subnets and router",
			Example: `  mdctl network show net1 -o yaml`,
		},
		deleteHelp: recordHelp{
			Short:   "Delete a network with its subnets, DHCP and router ports",
			Long:    "Delete a network. Like neutron, mdctl refuses while instances still have ports on it.",
			Example: `  mdctl network delete net1`,
		},
	}
}

type networkCreateOptions struct {
	IO        *iostreams
	Store     func(context.Context) (store.Store, error)
	Spec      topology.NetworkSpec
	Subnet    topology.SubnetSpec
	IPv6CIDR  string
	NoDHCP    bool
	HostRoute []string
	Output    string
}

func newCmdNetworkCreate(f *factory, runF func(context.Context, *networkCreateOptions) error) *cobra.Command {
	opts := &networkCreateOptions{IO: f.IO, Store: f.CreateStore}
	cmd := &cobra.Command{
		Use:   "create NAME --project PROJECT --cidr CIDR",
		Short: "Create a network with a subnet, a DHCP port and optionally a router interface",
		Long: `Create a network as neutron would: a subnet (gateway .1 and DHCP port .2
unless given), a DHCP port when DHCP is on, and, with --router, a router
interface holding the gateway. Without --router the network is isolated and
guests reach metadata through its DHCP namespace.

With --bridge the network is the operator's own L2, as neutron's linuxbridge
agent plugs a provider network: mdctl plugs its router and DHCP ports into
that existing host bridge (with --vlan, into a brq bridge holding
<bridge>.<vlan>), and VMs whose taps are on it get DHCP and metadata. mdctl
never removes the operator's bridge or anything else on it. With --no-dhcp
the operator's DHCP hands out addresses and guests reach 169.254.169.254
through the router, their gateway.`,
		Example: `  mdctl network create net1 --project demo --cidr 10.90.1.0/24 --router r1
  mdctl network create net2 --project demo --cidr 10.90.2.0/24 --gateway 10.90.2.254 --dns 10.90.0.53
  mdctl network create net6 --project demo --cidr 10.90.6.0/24 --ipv6-cidr fd00:90:6::/64
  mdctl network create lan --project demo --cidr 192.168.50.0/24 --router r1 --bridge br0   # the operator's L2
  mdctl network create v30 --project demo --cidr 10.90.30.0/24 --router r1 --bridge eth1 --vlan 30 --no-dhcp`,
		Args: exactArgs(1, "one network NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Spec.Name = args[0]
			if err := checkOutput(opts.Output); err != nil {
				return err
			}
			if err := opts.build(); err != nil {
				return err
			}
			return runOrTest(cmd, opts, runF, networkCreateRun)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Spec.Project, "project", "", "project name (created when missing)")
	fl.StringVar(&opts.Subnet.CIDR, "cidr", "", "IPv4 (or IPv6) subnet, e.g. 10.90.1.0/24")
	fl.StringVar(&opts.IPv6CIDR, "ipv6-cidr", "", "an extra SLAAC IPv6 subnet, e.g. fd00:90:1::/64")
	fl.StringVar(&opts.Spec.Router, "router", "", "router to attach (omit for an isolated network)")
	_ = cmd.RegisterFlagCompletionFunc("router", completeNamesFlag(f, routerKind().names))
	fl.StringVar(&opts.Subnet.Gateway, "gateway", "", "gateway address (default: first host; none for no gateway)")
	fl.StringVar(&opts.Subnet.DHCPIP, "dhcp-ip", "", "DHCP port address (default: first host after the gateway)")
	fl.StringSliceVar(&opts.Subnet.DNS, "dns", nil, "DNS servers handed to guests (comma-separated or repeated)")
	fl.StringArrayVar(&opts.HostRoute, "host-route", nil, "static route DEST=NEXTHOP, e.g. 192.168.0.0/16=10.90.1.254 (repeatable)")
	fl.BoolVar(&opts.NoDHCP, "no-dhcp", false, "turn DHCP off (no DHCP port, no DHCP-namespace metadata; the operator's DHCP may serve it)")
	fl.StringVar(&opts.Spec.Bridge, "bridge", "", "attach to this existing host bridge (or, with --vlan, bridge or trunk) instead of mdctl's own segment")
	fl.IntVar(&opts.Spec.VLAN, "vlan", 0, "802.1Q VLAN id on --bridge: mdctl makes <bridge>.<vlan> and a brq bridge for it")
	fl.IntVar(&opts.Spec.MTU, "mtu", 0, "MTU (default 1500)")
	_ = cmd.MarkFlagRequired("project")
	_ = cmd.MarkFlagRequired("cidr")
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

func (o *networkCreateOptions) build() error {
	s := o.Subnet
	if o.NoDHCP {
		off := false
		s.EnableDHCP = &off
		o.Spec.DHCP = &off
	}
	for _, hr := range o.HostRoute {
		dst, nh, ok := strings.Cut(hr, "=")
		if !ok {
			return usageErrorf("--host-route %q: use DEST=NEXTHOP, e.g. 192.168.0.0/16=10.90.1.254", hr)
		}
		s.HostRoutes = append(s.HostRoutes, topology.HostRouteSpec{Destination: dst, NextHop: nh})
	}
	o.Spec.Subnets = []topology.SubnetSpec{s}
	if o.IPv6CIDR != "" {
		o.Spec.Subnets = append(o.Spec.Subnets, topology.SubnetSpec{CIDR: o.IPv6CIDR, IPv6AddressMode: "slaac"})
	}
	return nil
}

func networkCreateRun(ctx context.Context, opts *networkCreateOptions) error {
	return withStoreFn(ctx, opts.Store, func(st store.Store) error {
		n, _, err := topology.CreateNetwork(ctx, st, opts.Spec)
		if err != nil {
			return err
		}
		return networkKind().show(ctx, st, opts.IO, opts.Output, n)
	})
}

func readNetworkView(ctx context.Context, st store.Reader, n store.Network) (networkView, error) {
	subs, err := st.ListSubnets(ctx, n.ID)
	if err != nil {
		return networkView{}, fmt.Errorf("network %s: %w", n.Name, err)
	}
	v := networkView{Network: n, Subnets: subs}
	ri, err := st.ListPorts(ctx, store.PortFilter{NetworkIDs: []string{n.ID}, DeviceOwners: []string{store.OwnerRouterInterface}})
	if err != nil {
		return v, fmt.Errorf("network %s: %w", n.Name, err)
	}
	if len(ri) > 0 {
		v.RouterID = ri[0].DeviceID
		if r, err := st.GetRouter(ctx, v.RouterID); err == nil {
			v.Router = r.Name
		}
	}
	return v, nil
}

// l2Name says where a network's L2 is: mdctl's own segment, an operator's
// bridge, or a VLAN on an operator's bridge or trunk.
func l2Name(n store.Network) string {
	switch {
	case n.Bridge == "":
		return "mdctl"
	case n.VLAN != 0:
		return fmt.Sprintf("%s vlan %d", n.Bridge, n.VLAN)
	}
	return n.Bridge
}

func printNetworkTable(io *iostreams, views []networkView) error {
	t := newTable(io.Out, "NAME", "ID", "SUBNETS", "GATEWAYS", "DHCP", "ROUTER", "MTU", "L2")
	for _, v := range views {
		var cidrs, gws, dhcp []string
		for _, s := range v.Subnets {
			cidrs = append(cidrs, s.CIDR)
			gws = append(gws, s.GatewayIP)
			dhcp = append(dhcp, yesNo(s.EnableDHCP))
		}
		t.row(v.Name, v.ID, strings.Join(cidrs, ","), strings.Join(gws, ","), strings.Join(dhcp, ","), v.Router, fmt.Sprint(v.MTU), l2Name(v.Network))
	}
	return t.flush()
}
