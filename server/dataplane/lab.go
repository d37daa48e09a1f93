package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mdctl/mdctl/store"
)

// Guest is one instance port simulated by a namespace: what a VM on that
// port would have after DHCP.
type Guest struct {
	InstanceID   string
	InstanceName string
	PortIndex    int // 0 for the instance's first NIC
	PortID       string
	NetworkID    string
	NetworkName  string // for people: "waiting for serve's DHCP server on net2"
	Bridge       string // the bridge its tap goes on (NetworkBridge)
	OnHost       bool   // Bridge is in the host namespace: the operator's L2
	// BoundHost is the port's binding_host_id: a VM on that host plays the
	// port, so the lab never builds, touches or reports it missing.
	BoundHost string
	MAC       string
	Addrs     []string // the port's fixed IPs, CIDR notation
	Gateway   string   // IPv4 default gateway, "" for none
	Gateway6  string   // IPv6 default gateway, "" for none
	// DHCPPortIP and MetadataViaDHCP tell whether 169.254.169.254 is served
	// from the network's DHCP namespace; MetadataHop is the option 121 next
	// hop for it ("" for no route), as Plan chose it.
	DHCPPortIP      string
	MetadataViaDHCP bool
	MetadataHop     string
	HostRoutes      []store.HostRoute
	OnLink          []string // other IPv4 subnets of the same segment (option 121 "<cidr>,0.0.0.0")
	MTU             int
	// MetadataHop6 is the router's link-local address that radvd would
	// announce fe80::a9fe:a9fe/128 via; "" on an isolated network, where
	// the DHCP port holds that address on the link.
	MetadataHop6 string
	// DHCPServer is the network's DHCP port IP on the guest's IPv4 subnet
	// when a dnsmasq serves it ("" for none): LabUp then runs a DHCP client.
	DHCPServer string
}

// Via says how the guest reaches metadata, for people: "dhcp <hop>",
// "router <hop>" or "none".
func (g Guest) Via() string {
	switch {
	case g.MetadataViaDHCP:
		return "dhcp " + g.MetadataHop
	case g.MetadataHop != "":
		return "router " + g.MetadataHop
	}
	return "none"
}

// Route is one route a guest gets; Via "" means on-link.
type Route struct {
	Dst string
	Via string
}

// Routes are what DHCP would push (facts §6): same-segment subnets on-link,
// the subnet's host routes, 169.254.169.254/32 via the metadata hop, then the
// default route via the gateway; and the IPv6 default route.
func (g Guest) Routes() []Route {
	var rs []Route
	for _, c := range g.OnLink {
		rs = append(rs, Route{Dst: c})
	}
	for _, h := range g.HostRoutes {
		rs = append(rs, Route{Dst: h.Destination, Via: h.NextHop})
	}
	if g.MetadataHop != "" {
		rs = append(rs, Route{Dst: MetadataIPv4 + "/32", Via: g.MetadataHop})
	}
	if g.Gateway != "" {
		rs = append(rs, Route{Dst: "0.0.0.0/0", Via: g.Gateway})
	}
	if g.MetadataHop6 != "" {
		rs = append(rs, Route{Dst: MetadataIPv6 + "/128", Via: g.MetadataHop6})
	}
	if g.Gateway6 != "" {
		rs = append(rs, Route{Dst: "::/0", Via: g.Gateway6})
	}
	return rs
}

// Guests turns instances into lab guests, one per port, using the
// decisions in d for their metadata routes.
func Guests(d Desired, views []store.InstanceView) []Guest {
	segs := map[string]NetSegment{}
	for _, n := range d.Networks {
		segs[n.NetworkID] = n
	}
	servers := map[string]DHCPServer{}
	for _, srv := range d.DHCPServers {
		servers[srv.NetworkID] = srv
	}
	var out []Guest
	for _, v := range views {
		for i, pv := range v.Ports {
			g := guestFor(v.Instance, i, pv, segs[pv.Port.NetworkID])
			g.DHCPServer = dhcpServerFor(g, pv, servers)
			out = append(out, g)
		}
	}
	return out
}

func guestFor(inst store.Instance, index int, pv store.PortView, seg NetSegment) Guest {
	g := Guest{
		InstanceID: inst.ID, InstanceName: inst.Name, PortIndex: index,
		PortID: pv.Port.ID, NetworkID: pv.Port.NetworkID, NetworkName: pv.Network.Name, MAC: pv.Port.MACAddress, MTU: pv.Network.MTU,
		BoundHost: pv.Port.BindingHostID,
	}
	g.Bridge, g.OnHost = NetworkBridge(pv.Network)
	plans := map[string]SubnetPlan{}
	for _, s := range seg.Subnets {
		plans[s.SubnetID] = s
	}
	own := map[string]bool{}
	have4 := false
	for i, ip := range pv.Port.FixedIPs {
		var sub store.Subnet
		if i < len(pv.Subnets) {
			sub = pv.Subnets[i]
		}
		if cidr := withPrefix(ip.IPAddress, sub.CIDR); cidr != "" {
			g.Addrs = append(g.Addrs, cidr)
		}
		own[ip.SubnetID] = true
		p := plans[ip.SubnetID]
		switch {
		case sub.IPVersion == 6 && g.Gateway6 == "":
			g.Gateway6 = sub.GatewayIP
			g.MetadataHop6 = p.MetadataHop6
		case sub.IPVersion == 4 && !have4:
			// The first IPv4 subnet's DHCP answer is the one the guest keeps.
			have4 = true
			g.Gateway = sub.GatewayIP
			g.HostRoutes = sub.HostRoutes
			g.MetadataHop = p.MetadataHop
			if p.MetadataVia == "dhcp" {
				g.MetadataViaDHCP, g.DHCPPortIP = true, p.MetadataHop
			}
		}
	}
	for _, s := range seg.Subnets {
		if s.IPVersion == 4 && !own[s.SubnetID] {
			g.OnLink = append(g.OnLink, s.CIDR)
		}
	}
	return g
}

// LabUp builds one namespace per guest: eth0 with the port's MAC and
// addresses, its veth peer tap<port id[:11]> on the network's bridge in the
// segment namespace (the host namespace for a network on the operator's
// L2), and the routes DHCP would push. It is idempotent and removes lab
// guests of this mdctl that guests no longer lists.
//
// A port played by a VM outside the lab is never touched: one bound to a
// host (Guest.BoundHost), or one whose tap name a device mdctl did not make
// already holds (a real VM's tap). LabUp skips it, says so in the log, and
// LabStatus reports it as external.
func LabUp(ctx context.Context, opts Options, guests []Guest) error {
	opts = opts.withDefaults()
	wired, err := wireGuests(ctx, opts, guests, true)
	// Routes come after the lock is released: a DHCP lease can take
	// seconds, and serve's reconciler must not wait behind it (nor
	// behind AwaitDHCP, which waits for it).
	opts = awaitDHCP(ctx, opts, wired)
	return errors.Join(err, routeGuests(ctx, opts, wired))
}

// wireGuests makes each guest's namespace and veth under the data plane
// lock, and removes the guests no longer listed. It returns the guests it
// wired, by namespace name.
func wireGuests(ctx context.Context, opts Options, guests []Guest, sweep bool) (map[string]Guest, error) {
	unlock, err := lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	mark := ownerMark(opts.SegmentNamespace)
	seg, err := ensureOwnedNamespace(opts.SegmentNamespace, mark, opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("lab: segment namespace: %w", err)
	}
	defer seg.Close()
	links := planeLinks{seg: seg, segNS: opts.SegmentNamespace}
	if host, err := openHostNS(opts); err == nil {
		defer host.Close()
		links.host = host
	}
	wanted := map[string]bool{}
	wired := map[string]Guest{}
	var errs error
	for _, g := range guests {
		if err := ctx.Err(); err != nil {
			return wired, errors.Join(errs, err)
		}
		name := GuestNamespace(opts.GuestPrefix, g)
		if why := ExternalWhy(opts, g); why != "" {
			opts.Logger.Info("lab leaves a port to its VM", "instance", g.InstanceName, "port", g.PortID, "why", why)
			continue
		}
		wanted[name] = true
		if err := labGuestUp(links, name, mark, g, opts.Logger); err != nil {
			errs = errors.Join(errs, fmt.Errorf("lab guest %s: %w", name, err))
			continue
		}
		wired[name] = g
	}
	if !sweep {
		return wired, errs
	}
	return wired, errors.Join(errs, sweepGuests(opts, mark, wanted))
}

// LabRepair rebuilds only guests, as LabUp does, and leaves every other
// lab guest as it is: trace --fix repairs the traced instance's guest and
// nobody else's.
func LabRepair(ctx context.Context, opts Options, guests []Guest) error {
	opts = opts.withDefaults()
	wired, err := wireGuests(ctx, opts, guests, false)
	opts = awaitDHCP(ctx, opts, wired)
	return errors.Join(err, routeGuests(ctx, opts, wired))
}

// labParallel bounds how many guests wait for a DHCP lease at once: a boot
// storm of lab guests should not take 200 lease times, nor start 200
// clients in one go.
const labParallel = 16

// routeGuests gives every wired guest its routes, several at a time.
func routeGuests(ctx context.Context, opts Options, wired map[string]Guest) error {
	var (
		mu   sync.Mutex
		errs error
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, labParallel)
	for name, g := range wired {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := routeGuest(ctx, opts, name, g); err != nil {
				mu.Lock()
				errs = errors.Join(errs, fmt.Errorf("lab guest %s: %w", name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

func routeGuest(ctx context.Context, opts Options, name string, g Guest) error {
	n, err := openNS(name)
	if err != nil {
		return err
	}
	defer n.Close()
	return guestRoutes(ctx, opts, n, name, g)
}

// ExternalWhy says why a VM outside the lab plays g's port, or "" when the
// lab may: the port is bound to a host, or its tap name is held by a device
// mdctl did not make.
func ExternalWhy(opts Options, g Guest) string {
	if g.BoundHost != "" {
		return "port bound to host " + g.BoundHost + " (binding_host_id)"
	}
	if tap := TapOf(opts, g.PortID, g.OnHost); tap.Exists && !tap.Ours {
		return fmt.Sprintf("%s is a %s mdctl did not make (a VM's tap)", TapName(g.PortID), tap.Type)
	}
	return ""
}

func labGuestUp(links planeLinks, name, mark string, g Guest, log *slog.Logger) error {
	if !g.OnHost {
		// The bridge normally comes from Apply; making it here lets the lab
		// run before (or without) serve. The operator's L2 comes from Apply
		// alone: a VLAN's bridge needs the network's record.
		if err := ensureBridge(links.seg, g.Bridge, aliasNetwork+g.NetworkID, g.MTU); err != nil {
			return err
		}
	}
	n, err := ensureOwnedNamespace(name, mark, log)
	if err != nil {
		return err
	}
	defer n.Close()
	ifc := Interface{
		PortID: g.PortID, NetworkID: g.NetworkID, Name: GuestInterface, Tap: TapName(g.PortID),
		Bridge: g.Bridge, OnHost: g.OnHost, MAC: g.MAC, Addrs: g.Addrs, MTU: g.MTU,
	}
	return links.ensureVeth(n, ifc, aliasGuest+name)
}

// guestRoutes gives the guest its routes: IPv4 from a real DHCP lease when
// it can (IPv6 stays static, as RAs would give it), else all static.
func guestRoutes(ctx context.Context, opts Options, n *nsLink, name string, g Guest) error {
	client, why := dhcpClientFor(opts, g)
	level := slog.LevelWarn
	if client != "" && !DHCPServerListening(g.NetworkID) {
		client, why = "", "no DHCP server answers in "+DHCPNamespace(g.NetworkID)+" yet (is mdctl serve running?)"
		if opts.noServeSaid {
			level = slog.LevelInfo // AwaitDHCP said it once for all guests
		}
	}
	if client != "" {
		var v6 []Route
		for _, r := range g.Routes() {
			if strings.Contains(r.Dst, ":") {
				v6 = append(v6, r)
			}
		}
		if err := ensureRoutes(n, GuestInterface, v6); err != nil {
			return err
		}
		err := runDHCPClient(ctx, opts, name, client)
		if err == nil {
			return nil
		}
		why = err.Error()
	}
	if why != "" {
		opts.Logger.Log(ctx, level, "lab guest gets static routes instead of DHCP", "guest", name, "why", why)
	}
	stopDHCPClient(opts, name)
	if err := flushDHCPRoutes(n, GuestInterface); err != nil {
		return err
	}
	return ensureRoutes(n, GuestInterface, g.Routes())
}

// awaitDHCP calls opts.AwaitDHCP, when set, with the wired guests that
// will ask for a lease, and notes whether it said that no serve answers.
func awaitDHCP(ctx context.Context, opts Options, wired map[string]Guest) Options {
	if opts.AwaitDHCP == nil {
		return opts
	}
	var asking []Guest
	for _, name := range slices.Sorted(maps.Keys(wired)) {
		if client, _ := dhcpClientFor(opts, wired[name]); client != "" {
			asking = append(asking, wired[name])
		}
	}
	if len(asking) > 0 && !opts.AwaitDHCP.AwaitDHCP(ctx, asking) {
		opts.noServeSaid = true
	}
	return opts
}

// dhcpServerFor is the DHCP port's IP on the guest's first IPv4 DHCP
// subnet, when the network has a DHCP server.
func dhcpServerFor(g Guest, pv store.PortView, servers map[string]DHCPServer) string {
	srv, ok := servers[g.NetworkID]
	if !ok {
		return ""
	}
	for _, ip := range pv.Port.FixedIPs {
		for _, s := range srv.Subnets {
			if s.SubnetID != ip.SubnetID || s.IPVersion != 4 || !s.EnableDHCP {
				continue
			}
			for _, a := range srv.Interface.Addrs {
				if p, _, err := net.ParseCIDR(a); err == nil {
					if _, cidr, err := net.ParseCIDR(s.CIDR); err == nil && cidr.Contains(p) {
						return p.String()
					}
				}
			}
		}
	}
	return ""
}

// ensureRoutes makes the static routes on dev exactly rs. Routes the kernel
// made for the addresses themselves are left alone.
func ensureRoutes(n *nsLink, dev string, rs []Route) error {
	l, err := n.linkByName(dev)
	if err != nil || l == nil {
		return fmt.Errorf("%s: %s missing: %v", n.name, dev, err)
	}
	want := map[string]bool{}
	for _, r := range rs {
		_, dst, err := net.ParseCIDR(r.Dst)
		if err != nil {
			return fmt.Errorf("%s: route %s: %w", n.name, r.Dst, err)
		}
		nr := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst, Protocol: unix.RTPROT_STATIC}
		if r.Via == "" {
			nr.Scope = netlink.SCOPE_LINK
		} else if nr.Gw = net.ParseIP(r.Via); nr.Gw == nil {
			return fmt.Errorf("%s: route %s via %q: bad next hop", n.name, r.Dst, r.Via)
		}
		if err := n.h.RouteReplace(nr); err != nil {
			return fmt.Errorf("%s: route %s via %s: %w", n.name, r.Dst, r.Via, err)
		}
		want[dst.String()] = true
	}
	have, err := n.h.RouteList(l, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("%s: list routes: %w", n.name, err)
	}
	for _, r := range have {
		if r.Protocol != unix.RTPROT_STATIC || want[routeDst(r)] {
			continue
		}
		if err := n.h.RouteDel(&r); err != nil {
			return fmt.Errorf("%s: remove stale route %s: %w", n.name, routeDst(r), err)
		}
	}
	return nil
}

func routeDst(r netlink.Route) string {
	if r.Dst == nil {
		if r.Family == netlink.FAMILY_V6 {
			return "::/0"
		}
		return "0.0.0.0/0"
	}
	return r.Dst.String()
}

// LabDown removes every lab guest namespace this mdctl made (their taps go
// with them) and ends every lab DHCP client of this mdctl, found by the
// state files on its command line even without its pid file.
func LabDown(ctx context.Context, opts Options) error {
	unlock, err := lock()
	if err != nil {
		return err
	}
	defer unlock()
	opts = opts.withDefaults()
	err = sweepGuests(opts, ownerMark(opts.SegmentNamespace), nil)
	// Clients whose namespace is gone (deleted under them: they hold it
	// alive) or whose pid file is were not found by the sweep.
	stopLabDHCPClients(opts)
	return err
}

func sweepGuests(opts Options, mark string, wanted map[string]bool) error {
	names, err := ListNamespaces(opts.GuestPrefix)
	if err != nil {
		return err
	}
	var errs error
	for _, name := range names {
		if wanted[name] {
			continue
		}
		if ours, err := ownedBy(name, mark); err != nil || !ours {
			continue
		}
		// Its DHCP client would otherwise hold the namespace alive.
		removeGuestState(opts, name)
		if err := removeOwnedNamespace(name); err != nil {
			errs = errors.Join(errs, err)
		}
	}
	return errs
}

// GuestStatus is what the kernel holds for one lab guest.
type GuestStatus struct {
	Namespace string
	Guest     Guest // zero for a stray
	// External says why a VM outside the lab plays this port (ExternalWhy);
	// the lab built nothing for it, and nothing is missing.
	External string
	Exists   bool
	// Stray: an mdctl guest namespace no listed guest wants (LabUp removes it).
	Stray    bool
	Addrs    []string // on eth0
	Problems []string // empty when the guest is wired as LabUp would wire it
}

// OK reports whether the guest exists and is wired as wanted.
func (s GuestStatus) OK() bool {
	return s.External != "" || s.Exists && !s.Stray && len(s.Problems) == 0
}

// LabStatus inspects each guest (and any stray guest namespaces of this
// mdctl) without changing anything.
func LabStatus(ctx context.Context, opts Options, guests []Guest) ([]GuestStatus, error) {
	opts = opts.withDefaults()
	mark := ownerMark(opts.SegmentNamespace)
	var out []GuestStatus
	listed := map[string]bool{}
	for _, g := range guests {
		name := GuestNamespace(opts.GuestPrefix, g)
		if why := ExternalWhy(opts, g); why != "" {
			out = append(out, GuestStatus{Namespace: name, Guest: g, External: why})
			continue
		}
		listed[name] = true
		out = append(out, inspectGuest(opts, name, g))
	}
	names, err := ListNamespaces(opts.GuestPrefix)
	if err != nil {
		return out, err
	}
	sort.Strings(names)
	for _, name := range names {
		if listed[name] {
			continue
		}
		if ours, err := ownedBy(name, mark); err == nil && ours {
			out = append(out, GuestStatus{Namespace: name, Exists: true, Stray: true})
		}
	}
	return out, nil
}

func inspectGuest(opts Options, name string, g Guest) GuestStatus {
	st := GuestStatus{Namespace: name, Guest: g}
	ok, err := NamespaceExists(name)
	if err != nil || !ok {
		st.Problems = append(st.Problems, "namespace missing")
		return st
	}
	st.Exists = true
	n, err := openNS(name)
	if err != nil {
		st.Problems = append(st.Problems, err.Error())
		return st
	}
	defer n.Close()
	l, err := n.linkByName(GuestInterface)
	if err != nil || l == nil {
		st.Problems = append(st.Problems, GuestInterface+" missing")
		return st
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		st.Problems = append(st.Problems, GuestInterface+" down")
	}
	if mac, _ := net.ParseMAC(g.MAC); mac != nil && l.Attrs().HardwareAddr.String() != mac.String() {
		st.Problems = append(st.Problems, fmt.Sprintf("%s MAC %s, want %s", GuestInterface, l.Attrs().HardwareAddr, mac))
	}
	addrs, _ := n.h.AddrList(l, netlink.FAMILY_ALL)
	have := map[string]bool{}
	for _, a := range addrs {
		if !kernelLinkLocal(a) {
			st.Addrs = append(st.Addrs, a.IPNet.String())
			have[a.IPNet.String()] = true
		}
	}
	for _, w := range g.Addrs {
		if a, err := netlink.ParseAddr(w); err == nil && !have[a.IPNet.String()] {
			st.Problems = append(st.Problems, "address "+w+" missing")
		}
	}
	st.Problems = append(st.Problems, checkTap(opts, g)...)
	return st
}

func checkTap(opts Options, g Guest) []string {
	where := opts.SegmentNamespace
	if g.OnHost {
		where = "the host namespace"
	}
	tap := TapOf(opts, g.PortID, g.OnHost)
	switch {
	case tap.Problem != "":
		return []string{tap.Problem}
	case !tap.Exists:
		return []string{TapName(g.PortID) + " missing in " + where}
	case tap.Master != g.Bridge:
		return []string{TapName(g.PortID) + " not on bridge " + g.Bridge + " in " + where}
	}
	return nil
}

// LabExec runs cmd as the guest sees its system and waits for it: in the
// guest's network namespace with /sys remounted for it, as under
// `ip netns exec` (StartInGuestView), so the process (and everything it
// starts) finds the guest's NIC, not the host's, in /sys/class/net.
func LabExec(opts Options, g Guest, cmd *exec.Cmd) error {
	opts = opts.withDefaults()
	if err := StartInGuestView(GuestNamespace(opts.GuestPrefix, g), cmd); err != nil {
		return err
	}
	return cmd.Wait()
}

// RunIn starts cmd inside the named namespace and waits for it.
func RunIn(nsName string, cmd *exec.Cmd) error {
	if err := Do(nsName, cmd.Start); err != nil {
		return err
	}
	return cmd.Wait()
}
