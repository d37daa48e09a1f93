package dataplane

import (
	"os"
	"strings"
)

// Host is what the plan needs to know about the machine it runs on, read
// once per plan (ReadHost) so that Plan itself does no I/O.
type Host struct {
	// IPv6 is oslo.utils' netutils.is_ipv6_enabled(): neutron's DHCP agent
	// adds fe80::a9fe:a9fe/128 to every metadata DHCP port, and binds the
	// proxy there, whenever it holds, whatever the network's subnets.
	IPv6 bool
}

// ipv6DisabledPath is the file netutils.is_ipv6_enabled reads: the value
// new interfaces (a namespace's veth among them) start with. It is
// conf/default, not conf/all; a kernel without IPv6 has no such file.
const ipv6DisabledPath = "/proc/sys/net/ipv6/conf/default/disable_ipv6"

// ReadHost reads the host's facts as neutron reads them.
func ReadHost() Host { return Host{IPv6: ipv6Enabled(ipv6DisabledPath)} }

// ipv6Enabled is netutils.is_ipv6_enabled on path: enabled when the file
// exists and says 0.
func ipv6Enabled(path string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.TrimSpace(string(b)) == "0"
}

// PlugVMTap plugs the tap a lab VM's QEMU made for g's port (named
// TapName(g.PortID), in the namespace of g's bridge: the host's for a
// network on the operator's L2, else the segment's) into g's bridge, up,
// and marks it as the lab's, so the lab and the reconciler count it as
// mdctl's and never as a VM outside the lab. The lab's VM launcher calls
// it once QEMU is up.
func PlugVMTap(opts Options, g Guest) error {
	opts = opts.withDefaults()
	unlock, err := lock()
	if err != nil {
		return err
	}
	defer unlock()
	var n *nsLink
	alias := aliasGuest + GuestNamespace(opts.GuestPrefix, g)
	if g.OnHost {
		n, err = openHostNS(opts)
		alias = hostAlias(opts.SegmentNamespace, alias)
	} else {
		n, err = openNS(opts.SegmentNamespace)
	}
	if err != nil {
		return err
	}
	defer n.Close()
	name := TapName(g.PortID)
	tap, err := n.linkByName(name)
	switch {
	case err != nil:
		return err
	case tap == nil:
		return fmt.Errorf("%s: no %s: QEMU makes it (-netdev tap,ifname=%s) before it is plugged", n.name, name, name)
	case tap.Type() != "tuntap":
		return fmt.Errorf("%s: %s is a %s, not a VM's tap", n.name, name, tap.Type())
	}
	return plugTap(n, tap, g.Bridge, alias)
}
