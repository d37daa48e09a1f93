package dataplane

import (
	"slices"

	"github.com/mdctl/mdctl/store"
)

// Hosting is which node hosts each router and DHCP network, as the
// scheduler bound them in the store, seen from one node.
type Hosting struct {
	Node     string              // the node planning
	Routers  map[string][]string // router ID → its host (one)
	Networks map[string][]string // network ID → its DHCP hosts
}

// NewHosting indexes the store's bindings for node.
func NewHosting(node string, routers, networks []store.Binding) Hosting {
	index := func(bs []store.Binding) map[string][]string {
		m := make(map[string][]string, len(bs))
		for _, b := range bs {
			m[b.ID] = append(m[b.ID], b.Node)
		}
		return m
	}
	return Hosting{Node: node, Routers: index(routers), Networks: index(networks)}
}

// HostsRouter reports whether h's node hosts the router.
func (h Hosting) HostsRouter(id string) bool { return slices.Contains(h.Routers[id], h.Node) }

// HostsNetwork reports whether h's node hosts the network's DHCP.
func (h Hosting) HostsNetwork(id string) bool { return slices.Contains(h.Networks[id], h.Node) }

// Hosted is the part of d that h's node builds: the routers and DHCP
// networks bound to it, each with its namespace, rules, proxy and dnsmasq.
// Every network's segment stays: any node may have ports to plug into
// it. What another node hosts is left out, so the reconciler sweeps this
// node's own copy of it (and only that: it removes only what carries its
// owner mark). It does no I/O.
func Hosted(d Desired, h Hosting) Desired {
	out := Desired{Networks: d.Networks}
	for _, rt := range d.Routers {
		if h.HostsRouter(rt.RouterID) {
			out.Routers = append(out.Routers, rt)
		}
	}
	for _, dh := range d.DHCP {
		if h.HostsNetwork(dh.NetworkID) {
			out.DHCP = append(out.DHCP, dh)
		}
	}
	for _, srv := range d.DHCPServers {
		if h.HostsNetwork(srv.NetworkID) {
			out.DHCPServers = append(out.DHCPServers, srv)
		}
	}
	return out
}
