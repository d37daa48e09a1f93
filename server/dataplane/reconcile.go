package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/coreos/go-iptables/iptables"
)

// Options name the parts of the data plane that belong to one mdctl. Tests
// give every run its own SegmentNamespace (and so its own owner mark) and
// GuestPrefix, so they never touch each other's namespaces.
type Options struct {
	// SegmentNamespace holds the bridges; default DefaultSegmentNamespace.
	// It is also the owner mark of every namespace this mdctl makes.
	SegmentNamespace string
	// GuestPrefix starts lab guest namespace names; default DefaultGuestPrefix.
	GuestPrefix string
	// StateDir holds the files of DHCP servers and lab DHCP clients (pid,
	// lease, config); default /run/mdctl/<SegmentNamespace>.
	StateDir string
	// GuestRoutes is GuestRoutesDHCP (default) or GuestRoutesStatic: how
	// LabUp gives lab guests their IPv4 routes.
	GuestRoutes string
	// DHCPClient is the lab guests' DHCP client; default DHCPClientBinary.
	DHCPClient string
	// HostNamespace stands for the host: where the operator's bridges of
	// networks attached to one (store Network.Bridge) live, and where mdctl
	// plugs its router and DHCP taps into them. "" is the namespace mdctl
	// started in; tests name a namespace of their own.
	HostNamespace string
	// AwaitDHCP, when set, is asked by LabUp and LabRepair to wait for the
	// DHCP servers (DHCPWaiter).
	AwaitDHCP DHCPWaiter
	Logger    *slog.Logger

	// noServeSaid: AwaitDHCP returned false (see there).
	noServeSaid bool
}

// DHCPWaiter is called once by LabUp and LabRepair after the guests are
// wired and before any asks for a lease, with those that will: `mdctl lab
// up` waits there for serve's DHCP servers. It returns false when no serve
// will answer, having said so itself; the guests' fallbacks to static
// routes for want of a DHCP server are then logged at info, not each as a
// warning. (An interface, not a func, keeps Options comparable.)
type DHCPWaiter interface {
	AwaitDHCP(ctx context.Context, guests []Guest) (serveRuns bool)
}

func (o Options) withDefaults() Options {
	if o.SegmentNamespace == "" {
		o.SegmentNamespace = DefaultSegmentNamespace
	}
	if o.GuestPrefix == "" {
		o.GuestPrefix = DefaultGuestPrefix
	}
	if o.StateDir == "" {
		o.StateDir = filepath.Join("/run/mdctl", o.SegmentNamespace)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Reconciler makes the kernel match a Desired. One Apply runs at a time.
type Reconciler struct {
	opts Options
	mu   sync.Mutex
	// ruleChanges counts wrapped chains rewritten and jumps added by the
	// last Apply; tests read it to prove a second Apply changes nothing.
	ruleChanges int
	// nsMade counts the namespaces the last Apply had to create.
	nsMade int
}

// NewReconciler returns a Reconciler for the data plane named by opts.
func NewReconciler(opts Options) *Reconciler {
	return &Reconciler{opts: opts.withDefaults()}
}

// Changes is how much the last Apply had to change in the kernel:
// namespaces created, wrapped chains rewritten and jumps added. An Apply of
// an unchanged Desired that changes something has repaired what someone
// else removed.
func (r *Reconciler) Changes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nsMade + r.ruleChanges
}

// ensureNamespace is ensureOwnedNamespace, counting the ones it creates.
func (r *Reconciler) ensureNamespace(name, mark string) (*nsLink, error) {
	existed, _ := NamespaceExists(name)
	n, err := ensureOwnedNamespace(name, mark, r.opts.Logger)
	if err == nil && !existed {
		r.nsMade++
	}
	return n, err
}

// Options returns the options in force, defaults filled in.
func (r *Reconciler) Options() Options { return r.opts }

// Apply makes the kernel match d: it creates what is missing, adopts what
// already exists (a restart duplicates nothing) and removes the routers, DHCP
// namespaces, bridges and veths this mdctl made that d no longer wants. It
// never touches a namespace or link without mdctl's names and owner mark.
// One broken router or network does not stop the others; all errors are
// returned joined.
func (r *Reconciler) Apply(ctx context.Context, d Desired) error {
	unlock, err := lock()
	if err != nil {
		return err
	}
	defer unlock()
	return r.apply(ctx, d)
}

func (r *Reconciler) apply(ctx context.Context, d Desired) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ruleChanges, r.nsMade = 0, 0
	mark := ownerMark(r.opts.SegmentNamespace)

	seg, err := r.ensureNamespace(r.opts.SegmentNamespace, mark)
	if err != nil {
		return fmt.Errorf("segment namespace: %w", err)
	}
	defer seg.Close()

	host, err := r.openHost(d)
	if err != nil {
		return err
	}
	if host != nil {
		defer host.Close()
	}
	links := planeLinks{seg: seg, host: host, segNS: r.opts.SegmentNamespace}

	var errs error
	for _, n := range d.Networks {
		var err error
		if n.OnHost {
			err = ensureHostSegment(host, n, hostAlias(r.opts.SegmentNamespace, aliasNetwork+n.NetworkID))
		} else {
			err = ensureBridge(seg, n.Bridge, aliasNetwork+n.NetworkID, n.MTU)
		}
		if err != nil {
			errs = errors.Join(errs, fmt.Errorf("network %s: %w", n.NetworkID, err))
		}
	}
	for _, rt := range d.Routers {
		if err := ctx.Err(); err != nil {
			return errors.Join(errs, err)
		}
		if err := r.applyRouter(links, rt, mark); err != nil {
			errs = errors.Join(errs, fmt.Errorf("router %s: %w", rt.RouterID, err))
		}
	}
	for _, dh := range dhcpNamespaces(d) {
		if err := ctx.Err(); err != nil {
			return errors.Join(errs, err)
		}
		if err := r.applyDHCP(links, dh, mark); err != nil {
			errs = errors.Join(errs, fmt.Errorf("dhcp %s: %w", dh.NetworkID, err))
		}
	}
	if err := r.sweepNamespaces(d, mark); err != nil {
		errs = errors.Join(errs, err)
	}
	if err := sweepSegment(seg, d); err != nil {
		errs = errors.Join(errs, err)
	}
	if host != nil {
		errs = errors.Join(errs, sweepHost(host, d, r.opts.SegmentNamespace))
	}
	return errs
}

// openHost opens the host namespace. It is nil when a named stand-in for
// the host (tests) is gone and nothing wants it: there is nothing of ours
// there to sweep either.
func (r *Reconciler) openHost(d Desired) (*nsLink, error) {
	host, err := openHostNS(r.opts)
	if err == nil {
		return host, nil
	}
	for _, n := range d.Networks {
		if n.OnHost {
			return nil, fmt.Errorf("network %s: host namespace: %w", n.NetworkID, err)
		}
	}
	if ok, _ := NamespaceExists(r.opts.HostNamespace); r.opts.HostNamespace != "" && !ok {
		return nil, nil
	}
	return nil, fmt.Errorf("host namespace: %w", err)
}

func (r *Reconciler) applyRouter(links planeLinks, rt RouterNS, mark string) error {
	n, err := r.ensureNamespace(rt.Namespace, mark)
	if err != nil {
		return err
	}
	defer n.Close()
	keep := map[string]bool{}
	var errs error
	for _, ifc := range rt.Interfaces {
		keep[ifc.Name] = true
		if err := links.ensureVeth(n, ifc, aliasRouter+rt.RouterID); err != nil {
			errs = errors.Join(errs, fmt.Errorf("port %s: %w", ifc.PortID, err))
		}
	}
	errs = errors.Join(errs, removeStaleLinks(n, "qr-", keep))
	errs = errors.Join(errs, writeSysctl(rt.Namespace, "net/ipv4/ip_forward", "1"))
	if rt.IPv6 {
		errs = errors.Join(errs, writeSysctl(rt.Namespace, "net/ipv6/conf/all/forwarding", "1"))
	}
	errs = errors.Join(errs, Do(rt.Namespace, func() error {
		return r.syncRules(rt)
	}))
	return errs
}

// syncRules runs inside the router namespace.
func (r *Reconciler) syncRules(rt RouterNS) error {
	ipt4, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv4))
	if err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	n, err := syncRouterRules(ipt4, false, true, rt.MetadataProxy)
	r.ruleChanges += n
	if err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	ipt6, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv6))
	if err != nil {
		if rt.IPv6Rules() {
			return fmt.Errorf("ip6tables: %w", err)
		}
		return nil // no ip6tables and nothing to do with it
	}
	n, err = syncRouterRules(ipt6, true, rt.IPv6Rules(), rt.MetadataProxy)
	r.ruleChanges += n
	if err != nil {
		return fmt.Errorf("ip6tables: %w", err)
	}
	return nil
}

func (r *Reconciler) applyDHCP(links planeLinks, dh DHCPNS, mark string) error {
	n, err := r.ensureNamespace(dh.Namespace, mark)
	if err != nil {
		return err
	}
	defer n.Close()
	ifc := dh.Interface
	ifc.Addrs = append(append([]string{}, ifc.Addrs...), dh.MetadataAddrs...)
	err = links.ensureVeth(n, ifc, aliasDHCP+dh.NetworkID)
	return errors.Join(err, removeStaleLinks(n, "ns-", map[string]bool{ifc.Name: true}))
}

// dhcpNamespaces is every qdhcp namespace d wants: those serving metadata
// (d.DHCP, with the metadata addresses) and those only serving DHCP
// (d.DHCPServers not in d.DHCP, whose port holds no metadata address, so a
// switch turned off takes 169.254.169.254 away while dnsmasq stays).
func dhcpNamespaces(d Desired) []DHCPNS {
	out := append([]DHCPNS(nil), d.DHCP...)
	have := map[string]bool{}
	for _, dh := range d.DHCP {
		have[dh.Namespace] = true
	}
	for _, srv := range d.DHCPServers {
		if !have[srv.Namespace] {
			out = append(out, DHCPNS{NetworkID: srv.NetworkID, Namespace: srv.Namespace, Interface: srv.Interface})
		}
	}
	return out
}

// sweepNamespaces removes qrouter-/qdhcp- namespaces that carry this mdctl's
// owner mark and are not wanted. Anyone else's (neutron's, another mdctl's)
// are left alone.
func (r *Reconciler) sweepNamespaces(d Desired, mark string) error {
	wanted := map[string]bool{}
	for _, rt := range d.Routers {
		wanted[rt.Namespace] = true
	}
	for _, dh := range dhcpNamespaces(d) {
		wanted[dh.Namespace] = true
	}
	var errs error
	for _, prefix := range []string{RouterNSPrefix, DHCPNSPrefix} {
		names, err := ListNamespaces(prefix)
		if err != nil {
			errs = errors.Join(errs, err)
			continue
		}
		for _, name := range names {
			if wanted[name] {
				continue
			}
			ours, err := ownedBy(name, mark)
			if err != nil || !ours {
				continue // not ours, or a leftover file that is no namespace
			}
			r.opts.Logger.Info("removing namespace no longer wanted", "namespace", name)
			if err := removeOwnedNamespace(name); err != nil {
				errs = errors.Join(errs, err)
			}
		}
	}
	return errs
}

// sweepSegment removes bridges and router/DHCP taps in the segment namespace
// that d no longer wants. Lab guest taps belong to the lab and stay.
func sweepSegment(seg *nsLink, d Desired) error {
	wanted := map[string]bool{}
	for _, n := range d.Networks {
		wanted[n.Bridge] = true
	}
	for _, rt := range d.Routers {
		for _, ifc := range rt.Interfaces {
			wanted[ifc.Tap] = true
		}
	}
	for _, dh := range dhcpNamespaces(d) {
		wanted[dh.Interface.Tap] = true
	}
	links, err := seg.h.LinkList()
	if err != nil {
		return fmt.Errorf("%s: list links: %w", seg.name, err)
	}
	var errs error
	for _, l := range links {
		a := l.Attrs()
		managed := strings.HasPrefix(a.Alias, aliasNetwork) || strings.HasPrefix(a.Alias, aliasRouter) || strings.HasPrefix(a.Alias, aliasDHCP)
		if !managed || wanted[a.Name] {
			continue
		}
		if err := seg.h.LinkDel(l); err != nil {
			errs = errors.Join(errs, fmt.Errorf("%s: delete %s: %w", seg.name, a.Name, err))
		}
	}
	return errs
}

// Teardown removes everything this mdctl's Apply made: its router and DHCP
// namespaces and the segment namespace (and with it every bridge and tap).
// Lab guests go with LabDown.
func (r *Reconciler) Teardown(ctx context.Context) error {
	unlock, err := lock()
	if err != nil {
		return err
	}
	defer unlock()
	if ok, err := NamespaceExists(r.opts.SegmentNamespace); err != nil || !ok {
		// No segment, so no router or DHCP namespace; what this mdctl
		// left on the host's bridges still goes.
		return errors.Join(err, r.sweepHostOnly())
	}
	err = r.apply(ctx, Desired{})
	err = errors.Join(err, os.RemoveAll(r.opts.DHCPStateDir()))
	os.Remove(filepath.Join(r.opts.StateDir, "lab")) // only when no guest is left
	os.Remove(r.opts.StateDir)
	return errors.Join(err, DeleteNamespace(r.opts.SegmentNamespace))
}

func (r *Reconciler) sweepHostOnly() error {
	host, err := r.openHost(Desired{})
	if err != nil || host == nil {
		return err
	}
	defer host.Close()
	return sweepHost(host, Desired{}, r.opts.SegmentNamespace)
}
