package dataplane

import (
	"context"
	"fmt"
)

// VMNamespace is the namespace a lab VM's QEMU runs in so that the taps
// it makes for g's port land beside g's bridge: the segment namespace, or
// the host's (Options.HostNamespace, "" for the one mdctl started in) for
// a network on the operator's L2.
func VMNamespace(opts Options, g Guest) string {
	opts = opts.withDefaults()
	if g.OnHost {
		return opts.HostNamespace
	}
	return opts.SegmentNamespace
}

// EnsureVMBridge makes the segment namespace and g's bridge if serve has
// not yet, so a lab VM can boot before (or without) serve; PlugVMTap then
// plugs its tap. An operator's bridge is the operator's: it must exist.
func EnsureVMBridge(ctx context.Context, opts Options, g Guest) error {
	if g.OnHost {
		if tap := TapOf(opts, g.PortID, true); tap.Problem != "" {
			return fmt.Errorf("host namespace: %s", tap.Problem)
		}
		return nil
	}
	opts = opts.withDefaults()
	unlock, err := lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	seg, err := ensureOwnedNamespace(opts.SegmentNamespace, ownerMark(opts.SegmentNamespace), opts.Logger)
	if err != nil {
		return fmt.Errorf("vm bridge: segment namespace: %w", err)
	}
	defer seg.Close()
	return ensureBridge(seg, g.Bridge, aliasNetwork+g.NetworkID, g.MTU)
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
