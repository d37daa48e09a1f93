package dataplane

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// startNS is the network namespace the process started in: package
// initialisation runs on the main thread before any Do can switch a thread,
// so this is the host's namespace as mdctl was given it.
var startNS, startNSErr = netns.Get()

// openHostNS opens the namespace that stands for the host
// (Options.HostNamespace, or the one mdctl started in).
func openHostNS(opts Options) (*nsLink, error) {
	if opts.HostNamespace != "" {
		return openNS(opts.HostNamespace)
	}
	if startNSErr != nil {
		return nil, fmt.Errorf("host namespace: %w", startNSErr)
	}
	fd, err := unix.Dup(int(startNS))
	if err != nil {
		return nil, fmt.Errorf("host namespace: %w", err)
	}
	ns := netns.NsHandle(fd)
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("host namespace: netlink: %w", err)
	}
	return &nsLink{name: "host", ns: ns, h: h}, nil
}

// hostAlias is the owner record of a link mdctl makes in the host
// namespace. The host is shared (with the operator, neutron, other mdctls),
// so the alias names this mdctl's owner mark before what the link serves;
// the "/" ends the mark so one segment name is never a prefix of another's.
func hostAlias(segNS, alias string) string { return ownerMark(segNS) + "/" + alias }

// ErrForeignTap is returned (wrapped) when the name mdctl wants for a tap
// is held by a device mdctl did not make: a real VM's tap, most likely.
// mdctl leaves it alone.
var ErrForeignTap = errors.New("held by a device mdctl did not make (a VM's own tap?); leaving it alone")

// planeLinks are the two namespaces a veth's bridge end may live in: the
// segment (mdctl's own networks) and the host (networks on the operator's
// L2).
type planeLinks struct {
	seg, host *nsLink
	segNS     string
}

// side returns the namespace, alias and ownership test for ifc's bridge end.
func (p planeLinks) side(ifc Interface, alias string) (*nsLink, string, func(netlink.Link) bool, error) {
	if !ifc.OnHost {
		return p.seg, alias, ownedInSegment, nil
	}
	if p.host == nil {
		return nil, "", nil, fmt.Errorf("port %s: host namespace missing for bridge %s", ifc.PortID, ifc.Bridge)
	}
	prefix := hostAlias(p.segNS, "")
	return p.host, hostAlias(p.segNS, alias), func(l netlink.Link) bool { return strings.HasPrefix(l.Attrs().Alias, prefix) }, nil
}

// ensureVeth is ensureVeth with the bridge end in the right namespace.
func (p planeLinks) ensureVeth(target *nsLink, ifc Interface, alias string) error {
	br, a, owned, err := p.side(ifc, alias)
	if err != nil {
		return err
	}
	return ensureVeth(br, target, ifc, a, owned)
}

// ownedInSegment: in mdctl's own segment namespace every veth is mdctl's
// (one without an alias is half of a pair a crash left); anything else, a
// QEMU tap the operator made there, is not.
func ownedInSegment(l netlink.Link) bool {
	return strings.HasPrefix(l.Attrs().Alias, "mdctl:") || l.Type() == "veth"
}

// ensureHostSegment makes a network on the operator's L2 ready for mdctl's
// ports. Without a VLAN the operator's bridge must exist and is used as it
// is: mdctl never creates, configures or removes it. With a VLAN, mdctl
// makes <device>.<vlan> and brq<network> holding it (neutron linuxbridge's
// ensure_vlan_bridge), marked with alias so sweepHost removes them with the
// network; ones that exist without the mark are used and left in place.
func ensureHostSegment(host *nsLink, n NetSegment, alias string) error {
	if host == nil {
		return fmt.Errorf("host namespace missing for %s", n.HostDevice)
	}
	dev, err := host.linkByName(n.HostDevice)
	if err != nil {
		return err
	}
	if dev == nil {
		return fmt.Errorf("%s: %s does not exist: attach the network to an existing bridge (mdctl never creates the operator's)", host.name, n.HostDevice)
	}
	if n.VLAN == 0 {
		if dev.Type() != "bridge" {
			return fmt.Errorf("%s: %s is a %s, not a bridge; give vlan to use it as a trunk", host.name, n.HostDevice, dev.Type())
		}
		return nil
	}
	vl, err := ensureHostVLAN(host, dev, n, alias)
	if err != nil {
		return err
	}
	br, err := ensureHostBridge(host, n.Bridge, alias, n.MTU)
	if err != nil {
		return err
	}
	switch m := vl.Attrs().MasterIndex; {
	case m == br.Attrs().Index:
		return nil
	case m != 0:
		return fmt.Errorf("%s: %s is already on another bridge (index %d)", host.name, n.VLANLink, m)
	}
	if err := host.h.LinkSetMaster(vl, br); err != nil {
		return fmt.Errorf("%s: plug %s into %s: %w", host.name, n.VLANLink, n.Bridge, err)
	}
	return nil
}

func ensureHostVLAN(host *nsLink, dev netlink.Link, n NetSegment, alias string) (netlink.Link, error) {
	vl, err := host.linkByName(n.VLANLink)
	if err != nil {
		return nil, err
	}
	if vl != nil {
		if v, ok := vl.(*netlink.Vlan); !ok || v.VlanId != n.VLAN || v.ParentIndex != dev.Attrs().Index {
			return nil, fmt.Errorf("%s: %s exists but is not VLAN %d of %s", host.name, n.VLANLink, n.VLAN, n.HostDevice)
		}
		if vl.Attrs().Alias == alias {
			return vl, setAliasUp(host, vl, alias)
		}
		return vl, nil
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.ParentIndex = n.VLANLink, dev.Attrs().Index
	if err := host.h.LinkAdd(&netlink.Vlan{LinkAttrs: attrs, VlanId: n.VLAN}); err != nil {
		return nil, fmt.Errorf("%s: add VLAN %s: %w", host.name, n.VLANLink, err)
	}
	if vl, err = host.linkByName(n.VLANLink); err != nil || vl == nil {
		return nil, fmt.Errorf("%s: %s vanished after add: %v", host.name, n.VLANLink, err)
	}
	return vl, setAliasUp(host, vl, alias)
}

func ensureHostBridge(host *nsLink, name, alias string, mtu int) (netlink.Link, error) {
	l, err := host.linkByName(name)
	if err != nil {
		return nil, err
	}
	if l != nil {
		if l.Type() != "bridge" {
			return nil, fmt.Errorf("%s: %s exists but is a %s, not a bridge", host.name, name, l.Type())
		}
		if l.Attrs().Alias == alias {
			return l, setAliasUp(host, l, alias)
		}
		return l, nil
	}
	if err := ensureBridge(host, name, alias, mtu); err != nil {
		return nil, err
	}
	return host.linkByName(name)
}

// sweepHost removes the links this mdctl made in the host namespace that d
// no longer wants: router and DHCP taps, VLAN links and their brq bridges.
// The operator's bridges, and everything else on them, carry no mark of
// ours and stay; lab guest taps belong to the lab.
func sweepHost(host *nsLink, d Desired, segNS string) error {
	wanted := map[string]bool{}
	for _, n := range d.Networks {
		if n.OnHost && n.VLAN != 0 {
			wanted[n.Bridge], wanted[n.VLANLink] = true, true
		}
	}
	for _, rt := range d.Routers {
		for _, ifc := range rt.Interfaces {
			wanted[ifc.Tap] = wanted[ifc.Tap] || ifc.OnHost
		}
	}
	for _, dh := range dhcpNamespaces(d) {
		wanted[dh.Interface.Tap] = wanted[dh.Interface.Tap] || dh.Interface.OnHost
	}
	links, err := host.h.LinkList()
	if err != nil {
		return fmt.Errorf("%s: list links: %w", host.name, err)
	}
	prefix := hostAlias(segNS, "")
	var errs error
	for _, l := range links {
		a := l.Attrs()
		kind, ours := strings.CutPrefix(a.Alias, prefix)
		if !ours || strings.HasPrefix(kind, aliasGuest) || wanted[a.Name] {
			continue
		}
		if err := host.h.LinkDel(l); err != nil {
			errs = errors.Join(errs, fmt.Errorf("%s: delete %s: %w", host.name, a.Name, err))
		}
	}
	return errs
}

// BridgeLink is what the host (or segment) namespace holds at a port's tap
// name, for the lab, the tracer and `instance show`.
type BridgeLink struct {
	Exists  bool
	Type    string // "veth" for mdctl's and lab guests', "tun" for a QEMU/libvirt tap
	Ours    bool   // carries this mdctl's owner mark
	Master  string // the bridge it is on, "" for none
	Up      bool
	MAC     string
	Problem string // set when the namespace could not be read
}

// TapOf reports what holds the tap name of port portID on the bridge side
// of a network (host namespace when onHost, else the segment namespace).
func TapOf(opts Options, portID string, onHost bool) BridgeLink {
	opts = opts.withDefaults()
	var n *nsLink
	var err error
	owned := ownedInSegment
	if onHost {
		n, err = openHostNS(opts)
		prefix := hostAlias(opts.SegmentNamespace, "")
		owned = func(l netlink.Link) bool { return strings.HasPrefix(l.Attrs().Alias, prefix) }
	} else {
		n, err = openNS(opts.SegmentNamespace)
	}
	if err != nil {
		return BridgeLink{Problem: err.Error()}
	}
	defer n.Close()
	l, err := n.linkByName(TapName(portID))
	if err != nil {
		return BridgeLink{Problem: err.Error()}
	}
	if l == nil {
		return BridgeLink{}
	}
	bl := BridgeLink{Exists: true, Type: l.Type(), Ours: owned(l), Up: l.Attrs().Flags&net.FlagUp != 0, MAC: l.Attrs().HardwareAddr.String()}
	if m := l.Attrs().MasterIndex; m != 0 {
		if br, err := n.h.LinkByIndex(m); err == nil {
			bl.Master = br.Attrs().Name
		}
	}
	return bl
}
