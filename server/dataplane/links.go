package dataplane

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Aliases (IFLA_IFALIAS) are mdctl's ownership records, kept by the kernel:
// a namespace is mdctl's when its lo carries the owner mark, and a link in
// the segment namespace says which router, DHCP namespace or guest it serves.
// They survive a restart, so Apply adopts instead of duplicating, and they
// let the sweeps remove only what this mdctl made.
const (
	aliasRouter  = "mdctl:router:"
	aliasDHCP    = "mdctl:dhcp:"
	aliasGuest   = "mdctl:guest:"
	aliasNetwork = "mdctl:network:"
)

// ownerMark is the lo alias of every namespace an mdctl with this segment
// namespace owns.
func ownerMark(segNS string) string { return ownerMarkPrefix + segNS }

const ownerMarkPrefix = "mdctl:owner:"

// nsLink is a netlink handle bound to one named namespace.
type nsLink struct {
	name string
	ns   netns.NsHandle
	h    *netlink.Handle
}

func openNS(name string) (*nsLink, error) {
	ns, err := netns.GetFromPath(nsPath(name))
	if err != nil {
		return nil, fmt.Errorf("namespace %s: open: %w", name, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("namespace %s: netlink: %w", name, err)
	}
	return &nsLink{name: name, ns: ns, h: h}, nil
}

func (n *nsLink) Close() {
	n.h.Close()
	n.ns.Close()
}

// linkByName returns nil, nil when the link is missing.
func (n *nsLink) linkByName(name string) (netlink.Link, error) {
	l, err := n.h.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: link %s: %w", n.name, name, err)
	}
	return l, nil
}

// ensureOwnedNamespace creates or adopts a namespace, marks it as this
// mdctl's and brings lo up.
func ensureOwnedNamespace(name, mark string, log *slog.Logger) (*nsLink, error) {
	created, err := EnsureNamespace(name)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("created namespace", "namespace", name)
	}
	n, err := openNS(name)
	if err != nil {
		return nil, err
	}
	lo, err := n.linkByName("lo")
	if err == nil && lo == nil {
		err = fmt.Errorf("%s: no lo", name)
	}
	if err == nil && lo.Attrs().Alias != mark && strings.HasPrefix(lo.Attrs().Alias, ownerMarkPrefix) {
		// Another mdctl's (another data dir or profile): adopting it would
		// let this one's sweeps remove it.
		err = fmt.Errorf("%s belongs to another mdctl (segment %s); remove it with that one's mdctl cleanup, or choose another --profile",
			name, strings.TrimPrefix(lo.Attrs().Alias, ownerMarkPrefix))
	}
	if err == nil && lo.Attrs().Alias != mark {
		if e := n.h.LinkSetAlias(lo, mark); e != nil {
			err = fmt.Errorf("%s: mark lo: %w", name, e)
		}
	}
	if err == nil && lo.Attrs().Flags&net.FlagUp == 0 {
		if e := n.h.LinkSetUp(lo); e != nil {
			err = fmt.Errorf("%s: lo up: %w", name, e)
		}
	}
	if err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// ownedBy reports whether the namespace's lo carries mark.
func ownedBy(name, mark string) (bool, error) {
	n, err := openNS(name)
	if err != nil {
		return false, err
	}
	defer n.Close()
	lo, err := n.linkByName("lo")
	if err != nil || lo == nil {
		return false, err
	}
	return lo.Attrs().Alias == mark, nil
}

// removeOwnedNamespace deletes the namespace's veths first, so their bridge
// ends vanish even while a listener still pins the namespace, then the
// namespace.
func removeOwnedNamespace(name string) error {
	n, err := openNS(name)
	if err != nil {
		return err
	}
	links, err := n.h.LinkList()
	if err == nil {
		for _, l := range links {
			if l.Type() == "veth" {
				if e := n.h.LinkDel(l); e != nil {
					err = errors.Join(err, fmt.Errorf("%s: delete %s: %w", name, l.Attrs().Name, e))
				}
			}
		}
	}
	n.Close()
	return errors.Join(err, DeleteNamespace(name))
}

// ensureBridge creates or adopts a bridge in the segment namespace.
func ensureBridge(seg *nsLink, name, alias string, mtu int) error {
	l, err := seg.linkByName(name)
	if err != nil {
		return err
	}
	if l == nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.MTU = name, mtu
		if err := seg.h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
			return fmt.Errorf("%s: add bridge %s: %w", seg.name, name, err)
		}
		if l, err = seg.linkByName(name); err != nil || l == nil {
			return fmt.Errorf("%s: bridge %s vanished after add: %v", seg.name, name, err)
		}
	} else if l.Type() != "bridge" {
		return fmt.Errorf("%s: %s exists but is a %s, not a bridge", seg.name, name, l.Type())
	}
	return setAliasUp(seg, l, alias)
}

func setAliasUp(n *nsLink, l netlink.Link, alias string) error {
	if l.Attrs().Alias != alias {
		if err := n.h.LinkSetAlias(l, alias); err != nil {
			return fmt.Errorf("%s: alias %s: %w", n.name, l.Attrs().Name, err)
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := n.h.LinkSetUp(l); err != nil {
			return fmt.Errorf("%s: up %s: %w", n.name, l.Attrs().Name, err)
		}
	}
	return nil
}

// ensureVeth makes ifc real: Name inside target with the port's MAC and
// addresses, Tap on the bridge in seg, both up. An existing pair is adopted;
// half a pair is removed and rebuilt, but only when owned says the tap end
// is mdctl's: a device it did not make under that name is left alone
// (ErrForeignTap).
func ensureVeth(seg, target *nsLink, ifc Interface, alias string, owned func(netlink.Link) bool) error {
	inner, err := target.linkByName(ifc.Name)
	if err != nil {
		return err
	}
	tap, err := seg.linkByName(ifc.Tap)
	if err != nil {
		return err
	}
	if tap != nil && !owned(tap) {
		return fmt.Errorf("%s: %s (a %s): %w", seg.name, ifc.Tap, tap.Type(), ErrForeignTap)
	}
	if inner == nil || tap == nil || inner.Type() != "veth" || tap.Type() != "veth" {
		if inner != nil {
			if err := target.h.LinkDel(inner); err != nil {
				return fmt.Errorf("%s: delete stale %s: %w", target.name, ifc.Name, err)
			}
		}
		if tap, _ = seg.linkByName(ifc.Tap); tap != nil {
			if err := seg.h.LinkDel(tap); err != nil {
				return fmt.Errorf("%s: delete stale %s: %w", seg.name, ifc.Tap, err)
			}
		}
		if err := addVeth(seg, target, ifc); err != nil {
			return err
		}
		if inner, err = target.linkByName(ifc.Name); err == nil && inner == nil {
			err = fmt.Errorf("%s: %s missing after add", target.name, ifc.Name)
		}
		if err != nil {
			return err
		}
		if tap, err = seg.linkByName(ifc.Tap); err == nil && tap == nil {
			err = fmt.Errorf("%s: %s missing after add", seg.name, ifc.Tap)
		}
		if err != nil {
			return err
		}
	}
	if err := plugTap(seg, tap, ifc.Bridge, alias); err != nil {
		return err
	}
	return configureInner(target, inner, ifc)
}

func addVeth(seg, target *nsLink, ifc Interface) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU = ifc.Tap, ifc.MTU
	v := &netlink.Veth{LinkAttrs: attrs, PeerName: ifc.Name, PeerNamespace: netlink.NsFd(int(target.ns)), PeerTxQLen: -1}
	if ifc.MTU > 0 {
		v.PeerMTU = uint32(ifc.MTU)
	}
	if ifc.MAC != "" {
		mac, err := net.ParseMAC(ifc.MAC)
		if err != nil {
			return fmt.Errorf("port %s: MAC %q: %w", ifc.PortID, ifc.MAC, err)
		}
		v.PeerHardwareAddr = mac
	}
	if err := seg.h.LinkAdd(v); err != nil {
		return fmt.Errorf("add veth %s(%s) / %s(%s): %w", ifc.Tap, seg.name, ifc.Name, target.name, err)
	}
	return nil
}

func plugTap(seg *nsLink, tap netlink.Link, bridge, alias string) error {
	br, err := seg.linkByName(bridge)
	if err != nil {
		return err
	}
	if br == nil {
		return fmt.Errorf("%s: bridge %s missing for %s", seg.name, bridge, tap.Attrs().Name)
	}
	if tap.Attrs().MasterIndex != br.Attrs().Index {
		if err := seg.h.LinkSetMaster(tap, br); err != nil {
			return fmt.Errorf("%s: plug %s into %s: %w", seg.name, tap.Attrs().Name, bridge, err)
		}
	}
	return setAliasUp(seg, tap, alias)
}

func configureInner(target *nsLink, inner netlink.Link, ifc Interface) error {
	if ifc.MAC != "" {
		mac, err := net.ParseMAC(ifc.MAC)
		if err != nil {
			return fmt.Errorf("port %s: MAC %q: %w", ifc.PortID, ifc.MAC, err)
		}
		if inner.Attrs().HardwareAddr.String() != mac.String() {
			if err := target.h.LinkSetHardwareAddr(inner, mac); err != nil {
				return fmt.Errorf("%s: set MAC of %s: %w", target.name, ifc.Name, err)
			}
		}
	}
	if err := ensureAddrs(target, inner, ifc.Addrs); err != nil {
		return err
	}
	if inner.Attrs().Flags&net.FlagUp == 0 {
		if err := target.h.LinkSetUp(inner); err != nil {
			return fmt.Errorf("%s: up %s: %w", target.name, ifc.Name, err)
		}
	}
	return nil
}

// ensureAddrs makes the link's addresses exactly want, leaving alone the
// kernel's own IPv6 link-local /64. IPv6 addresses skip DAD: the proxy must
// bind fe80::a9fe:a9fe at once, and mdctl owns the segment.
func ensureAddrs(n *nsLink, l netlink.Link, want []string) error {
	have, err := n.h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("%s: addresses of %s: %w", n.name, l.Attrs().Name, err)
	}
	wanted := map[string]bool{}
	for _, w := range want {
		a, err := netlink.ParseAddr(w)
		if err != nil {
			return fmt.Errorf("%s: address %q: %w", n.name, w, err)
		}
		wanted[a.IPNet.String()] = true
	}
	present := map[string]bool{}
	for _, a := range have {
		key := a.IPNet.String()
		if wanted[key] || kernelLinkLocal(a) {
			present[key] = true
			continue
		}
		if err := n.h.AddrDel(l, &a); err != nil {
			return fmt.Errorf("%s: remove %s from %s: %w", n.name, key, l.Attrs().Name, err)
		}
	}
	for _, w := range want {
		a, _ := netlink.ParseAddr(w)
		if present[a.IPNet.String()] {
			continue
		}
		if a.IP.To4() == nil {
			a.Flags |= unix.IFA_F_NODAD
		}
		if err := n.h.AddrAdd(l, a); err != nil {
			return fmt.Errorf("%s: add %s to %s: %w", n.name, w, l.Attrs().Name, err)
		}
	}
	return nil
}

func kernelLinkLocal(a netlink.Addr) bool {
	ones, _ := a.Mask.Size()
	return a.IP.To4() == nil && a.IP.IsLinkLocalUnicast() && ones == 64
}

// removeStaleLinks deletes links in n whose name starts with prefix and is
// not in keep (a router's old qr- ports, a DHCP namespace's old ns- port).
func removeStaleLinks(n *nsLink, prefix string, keep map[string]bool) error {
	links, err := n.h.LinkList()
	if err != nil {
		return fmt.Errorf("%s: list links: %w", n.name, err)
	}
	var errs error
	for _, l := range links {
		name := l.Attrs().Name
		if len(name) >= len(prefix) && name[:len(prefix)] == prefix && !keep[name] {
			if err := n.h.LinkDel(l); err != nil {
				errs = errors.Join(errs, fmt.Errorf("%s: delete %s: %w", n.name, name, err))
			}
		}
	}
	return errs
}

// writeSysctl writes a /proc/sys/net value inside a namespace (the file
// resolves against the writing thread's namespace).
func writeSysctl(nsName, key, value string) error {
	return Do(nsName, func() error {
		p := filepath.Join("/proc/sys", key)
		if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
			return fmt.Errorf("%s: sysctl %s=%s: %w", nsName, key, value, err)
		}
		return nil
	})
}
