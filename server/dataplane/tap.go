package dataplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
)

// aliasVM marks a tap a lab VM's QEMU holds: the reconciler leaves it, and
// `lab status` reads whose it is.
const aliasVM = "mdctl:vm:"

// TapSpec says where a VM's tap goes: Name in Namespace ("" for the host
// namespace, e.g. an operator's br0), enslaved to Bridge there.
type TapSpec struct {
	Namespace string
	Name      string
	Bridge    string
	MTU       int
	Owner     string // written to the tap's alias, "mdctl:vm:<Owner>"
}

// VMTap is where a lab VM's NIC for guest g goes: tap<port[:11]> on the
// network's bridge in the segment namespace, as a lab guest's veth would.
func VMTap(opts Options, g Guest) TapSpec {
	opts = opts.withDefaults()
	return TapSpec{
		Namespace: opts.SegmentNamespace, Name: TapName(g.PortID), Bridge: BridgeName(g.NetworkID),
		MTU: g.MTU, Owner: g.InstanceID,
	}
}

// PlugVM makes the segment namespace and g's bridge if serve has not yet,
// then opens g's tap there (OpenTap). The caller hands the file to QEMU
// (-netdev tap,fd=N) and closes its own copy.
func PlugVM(ctx context.Context, opts Options, g Guest) (*os.File, error) {
	opts = opts.withDefaults()
	unlock, err := lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	seg, err := ensureOwnedNamespace(opts.SegmentNamespace, ownerMark(opts.SegmentNamespace), opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("vm tap: segment namespace: %w", err)
	}
	defer seg.Close()
	if err := ensureBridge(seg, BridgeName(g.NetworkID), aliasNetwork+g.NetworkID, g.MTU); err != nil {
		return nil, err
	}
	return OpenTap(VMTap(opts, g))
}

// OpenTap creates the tap s names, not persistent, so it lives exactly as
// long as a file refers to it: the VM's QEMU holding the returned file is
// its only owner, and the tap goes when QEMU exits. The tap is up and on
// s.Bridge. It fails if a link of that name exists (a lab guest's veth,
// another VM).
func OpenTap(s TapSpec) (*os.File, error) {
	var f *os.File
	open := func() error {
		var err error
		f, err = openTap(s)
		return err
	}
	var err error
	if s.Namespace == "" {
		err = onLockedThread(open)
	} else {
		err = Do(s.Namespace, open)
	}
	if err != nil {
		return nil, fmt.Errorf("tap %s in %s: %w", s.Name, nsLabel(s.Namespace), err)
	}
	return f, nil
}

// openTap runs on a thread in the tap's namespace: /dev/net/tun makes the
// device where the opening thread is, and the package-level netlink calls
// speak to that namespace too.
func openTap(s TapSpec) (*os.File, error) {
	br, err := netlink.LinkByName(s.Bridge)
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", s.Bridge, err)
	}
	if br.Type() != "bridge" {
		return nil, fmt.Errorf("%s is a %s, not a bridge", s.Bridge, br.Type())
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU = s.Name, s.MTU
	tap := &netlink.Tuntap{
		LinkAttrs: attrs, Mode: netlink.TUNTAP_MODE_TAP,
		Flags:  netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR,
		Queues: 1, NonPersist: true,
	}
	if err := netlink.LinkAdd(tap); err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	f := tap.Fds[0]
	fail := func(err error) (*os.File, error) {
		f.Close() // the tap goes with its only file
		return nil, err
	}
	l, err := netlink.LinkByName(s.Name)
	if err != nil {
		return fail(err)
	}
	// The tun ioctls leave the MTU at 1500: the network's goes on after.
	if s.MTU > 0 && l.Attrs().MTU != s.MTU {
		if err := netlink.LinkSetMTU(l, s.MTU); err != nil {
			return fail(fmt.Errorf("mtu %d: %w", s.MTU, err))
		}
	}
	if err := netlink.LinkSetMaster(l, br); err != nil {
		return fail(fmt.Errorf("plug into %s: %w", s.Bridge, err))
	}
	if s.Owner != "" {
		if err := netlink.LinkSetAlias(l, aliasVM+s.Owner); err != nil {
			return fail(fmt.Errorf("alias: %w", err))
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fail(fmt.Errorf("up: %w", err))
	}
	return f, nil
}

// TapOwner reports whether a tap of that name is in ns and, when it is a
// lab VM's, the owner its alias names ("" otherwise).
func TapOwner(ns, name string) (exists bool, owner string, err error) {
	read := func() error {
		l, err := netlink.LinkByName(name)
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		if err != nil {
			return err
		}
		exists = true
		if a := l.Attrs().Alias; len(a) > len(aliasVM) && a[:len(aliasVM)] == aliasVM {
			owner = a[len(aliasVM):]
		}
		return nil
	}
	if ns == "" {
		err = onLockedThread(read)
	} else {
		err = Do(ns, read)
	}
	return exists, owner, err
}

func onLockedThread(fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return fn()
}

func nsLabel(ns string) string {
	if ns == "" {
		return "the host namespace"
	}
	return "namespace " + ns
}
