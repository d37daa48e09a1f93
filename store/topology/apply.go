package topology

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/mdctl/mdctl/store"
)

// Apply validates t against itself and the store, then creates or updates
// everything it describes in one transaction: on any error nothing is
// written. Records are matched by name, so applying the same topology
// again changes nothing and keeps IDs, MACs and addresses.
func Apply(ctx context.Context, st store.Store, t *Topology) (Result, error) {
	return apply(ctx, st, t, nil)
}

// errDryRun rolls DryRun's transaction back.
var errDryRun = errors.New("dry run")

// DryRun is Apply without writing anything: the same checks against the
// store, and the Result Apply would return, in a transaction rolled back.
// Records it would create have no ID yet.
func DryRun(ctx context.Context, st store.Store, t *Topology) (Result, error) {
	var res Result
	_, err := apply(ctx, st, t, nil, func(r Result) error {
		res = r
		return errDryRun
	})
	if !errors.Is(err, errDryRun) {
		return Result{}, err
	}
	for i := range res.Changes {
		if res.Changes[i].Action == Created {
			res.Changes[i].ID = ""
		}
	}
	return res, nil
}

// apply runs pre (a check such as "must not exist yet") and then the
// topology in one transaction.
// post, when set, sees the Result before the commit and may refuse it.
func apply(ctx context.Context, st store.Store, t *Topology, pre func(tx store.Tx) error, post ...func(Result) error) (Result, error) {
	if err := t.Validate(); err != nil {
		return Result{}, err
	}
	var res Result
	err := st.Update(ctx, func(tx store.Tx) error {
		if pre != nil {
			if err := pre(tx); err != nil {
				return err
			}
		}
		a := &applier{ctx: ctx, tx: tx, t: t, now: time.Now().UTC(), projects: map[string]string{}, addrs: map[string]map[netip.Addr]string{}, macs: map[string]bool{}, broken: map[string]bool{}}
		if err := a.run(); err != nil {
			return err
		}
		res = a.res
		for _, p := range post {
			if err := p(res); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	return res, nil
}

// applier holds one Apply's transaction and what it learnt so far.
type applier struct {
	ctx      context.Context
	tx       store.Tx
	t        *Topology
	now      time.Time
	res      Result
	projects map[string]string // ref → ID
	// addrs is, per network ID, every address taken (by a port or planned)
	// and by what; loaded when an instance port first needs it.
	addrs map[string]map[netip.Addr]string
	macs  map[string]bool // drawn in this Apply, maybe not written yet
	// problems are the file's mistakes found so far; broken names the
	// networks among them, whose instances are skipped, not blamed.
	problems Errors
	broken   map[string]bool
}

func (a *applier) fail(p Pos, field, format string, args ...any) error {
	return Errors{{File: a.t.File, Line: p.line(field), Field: p.field(field), Msg: fmt.Sprintf(format, args...)}}
}

// run applies every step. A mistake in the file (an Errors) is collected
// and the next record tried, so that one apply reports all of them; any
// other error (the store's) stops at once. Either way nothing commits.
func (a *applier) run() error {
	steps := []func() error{a.settings, a.routers, a.networks, a.routerOverlaps, a.instances}
	for _, step := range steps {
		if err := a.collect(step()); err != nil {
			return err
		}
	}
	if len(a.problems) > 0 {
		return a.problems
	}
	return nil
}

// collect keeps err when it is a mistake in the file and returns it
// otherwise.
func (a *applier) collect(err error) error {
	var es Errors
	if errors.As(err, &es) {
		a.problems = append(a.problems, es...)
		return nil
	}
	return err
}

func (a *applier) settings() error {
	if len(a.t.Settings) == 0 {
		return nil
	}
	stored, err := a.tx.Settings(a.ctx)
	if err != nil {
		return fmt.Errorf("read settings: %w", err)
	}
	for _, s := range a.t.Settings {
		old, had := stored[s.Key]
		switch {
		case had && old == s.Value:
			a.res.add("setting", s.Key, "", Unchanged, s.Value)
			continue
		case had:
			a.res.add("setting", s.Key, "", Updated, old+" → "+s.Value)
		default:
			a.res.add("setting", s.Key, "", Created, s.Value)
		}
		if err := a.tx.SetSetting(a.ctx, s.Key, s.Value); err != nil {
			return fmt.Errorf("set %s: %w", s.Key, err)
		}
	}
	return nil
}

// project returns the ID of a project named (or identified by) ref,
// creating it the way keystone would when it does not exist.
func (a *applier) project(ref string) (string, error) {
	if id, ok := a.projects[ref]; ok {
		return id, nil
	}
	p, err := a.tx.GetProject(a.ctx, ref)
	switch {
	case errors.Is(err, store.ErrNotFound):
		p = store.Project{ID: newProjectID(), Name: ref}
		if err := a.tx.PutProject(a.ctx, p); err != nil {
			return "", fmt.Errorf("create project %s: %w", ref, err)
		}
		a.res.add("project", p.Name, p.ID, Created, "")
	case err != nil:
		return "", fmt.Errorf("project %s: %w", ref, err)
	}
	a.projects[ref] = p.ID
	return p.ID, nil
}

// lookup reads a record by name and tells "not there" from failures.
func lookup[T any](get func(context.Context, string) (T, error), ctx context.Context, ref string) (T, bool, error) {
	v, err := get(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		return v, false, nil
	}
	return v, err == nil, err
}

func (a *applier) routers() error {
	for _, spec := range a.t.Routers {
		pid, err := a.project(spec.Project)
		if err != nil {
			return err
		}
		r, found, err := lookup(a.tx.GetRouter, a.ctx, spec.Name)
		if err != nil {
			return fmt.Errorf("router %s: %w", spec.Name, err)
		}
		action := Unchanged
		switch {
		case !found:
			r = store.Router{ID: uuid.NewString(), Name: spec.Name, ProjectID: pid, CreatedAt: a.now, UpdatedAt: a.now}
			action = Created
		case r.ProjectID != pid:
			r.ProjectID, r.UpdatedAt = pid, a.now
			action = Updated
		}
		if spec.Node != nil && *spec.Node != r.Node {
			if *spec.Node != "" {
				if err := store.CheckNodeName(*spec.Node); err != nil {
					return a.fail(spec.Pos, "node", "router %s: %v", spec.Name, err)
				}
			}
			r.Node, r.UpdatedAt = *spec.Node, a.now
			if action == Unchanged {
				action = Updated
			}
		}
		if action != Unchanged {
			if err := a.tx.PutRouter(a.ctx, r); err != nil {
				return fmt.Errorf("router %s: %w", spec.Name, err)
			}
		}
		a.res.add("router", r.Name, r.ID, action, "")
	}
	return nil
}

func (a *applier) networks() error {
	for i := range a.t.Networks {
		spec := &a.t.Networks[i]
		if err := a.network(spec); err != nil {
			a.broken[spec.Name] = true // its instances are not told it is missing
			if err := a.collect(err); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *applier) network(spec *NetworkSpec) error {
	pid, err := a.project(spec.Project)
	if err != nil {
		return err
	}
	mtu := spec.MTU
	if mtu == 0 {
		mtu = 1500
	}
	n, found, err := lookup(a.tx.GetNetwork, a.ctx, spec.Name)
	if err != nil {
		return fmt.Errorf("network %s: %w", spec.Name, err)
	}
	action := Unchanged
	switch {
	case !found:
		n = store.Network{ID: uuid.NewString(), Name: spec.Name, ProjectID: pid, MTU: mtu,
			Bridge: spec.Bridge, VLAN: spec.VLAN, CreatedAt: a.now, UpdatedAt: a.now}
		action = Created
	case n.ProjectID != pid || n.MTU != mtu || n.Bridge != spec.Bridge || n.VLAN != spec.VLAN:
		n.ProjectID, n.MTU, n.Bridge, n.VLAN, n.UpdatedAt = pid, mtu, spec.Bridge, spec.VLAN, a.now
		action = Updated
	}
	if action != Unchanged {
		if err := a.tx.PutNetwork(a.ctx, n); err != nil {
			return fmt.Errorf("network %s: %w", spec.Name, err)
		}
	}
	a.res.add("network", n.Name, n.ID, action, "")
	subnets, err := a.subnets(spec, n)
	if err != nil {
		return err
	}
	if err := a.routerInterface(spec, n, subnets); err != nil {
		return err
	}
	return a.dhcpPort(spec, n, subnets)
}

// subnets matches the spec's subnets to stored ones by CIDR.
func (a *applier) subnets(spec *NetworkSpec, n store.Network) ([]store.Subnet, error) {
	stored, err := a.tx.ListSubnets(a.ctx, n.ID)
	if err != nil {
		return nil, fmt.Errorf("network %s: list subnets: %w", n.Name, err)
	}
	out := make([]store.Subnet, 0, len(spec.Subnets))
	for _, ss := range spec.Subnets {
		want := subnetFromSpec(ss, n.ID)
		i := slices.IndexFunc(stored, func(s store.Subnet) bool { return sameCIDR(s.CIDR, ss.CIDR) })
		action := Created
		if i >= 0 {
			want.ID = stored[i].ID
			action = Updated
			if subnetEqual(stored[i], want) {
				action = Unchanged
			}
			stored = slices.Delete(stored, i, i+1)
		}
		if action != Unchanged {
			if err := a.tx.PutSubnet(a.ctx, want); err != nil {
				return nil, fmt.Errorf("network %s: subnet %s: %w", n.Name, want.CIDR, err)
			}
		}
		a.res.add("subnet", want.Name, want.ID, action, want.CIDR)
		out = append(out, want)
	}
	if len(stored) > 0 {
		return nil, a.fail(spec.Pos, "cidr", "network %s also has subnet %s, which the file does not list; mdctl does not remove subnets: delete the network first (mdctl network delete %s)", n.Name, stored[0].CIDR, n.Name)
	}
	return out, nil
}

func sameCIDR(a, b string) bool {
	pa, err1 := netip.ParsePrefix(a)
	pb, err2 := netip.ParsePrefix(b)
	return err1 == nil && err2 == nil && pa.Masked() == pb.Masked()
}

func subnetFromSpec(ss SubnetSpec, networkID string) store.Subnet {
	p := netip.MustParsePrefix(ss.CIDR) // Validate checked it
	s := store.Subnet{
		ID: uuid.NewString(), NetworkID: networkID, Name: ss.Name, IPVersion: 4, CIDR: ss.CIDR,
		GatewayIP: ss.Gateway, EnableDHCP: ss.dhcpEnabled(), IPv6AddressMode: ss.IPv6AddressMode,
		DNSNameservers: slices.Clone(ss.DNS), HostRoutes: []store.HostRoute{},
	}
	if p.Addr().Is6() {
		s.IPVersion = 6
	}
	if s.DNSNameservers == nil {
		s.DNSNameservers = []string{}
	}
	for _, hr := range ss.HostRoutes {
		s.HostRoutes = append(s.HostRoutes, store.HostRoute{Destination: hr.Destination, NextHop: hr.NextHop})
	}
	return s
}

func subnetEqual(a, b store.Subnet) bool {
	return a.Name == b.Name && a.IPVersion == b.IPVersion && sameCIDR(a.CIDR, b.CIDR) && a.GatewayIP == b.GatewayIP &&
		a.EnableDHCP == b.EnableDHCP && a.IPv6AddressMode == b.IPv6AddressMode &&
		slices.Equal(a.DNSNameservers, b.DNSNameservers) && slices.Equal(a.HostRoutes, b.HostRoutes)
}

// routerInterface makes the network's router interface port match the
// spec: holding every subnet's gateway, owned by the named router. A port
// of another router is removed first, so a changed router moves the
// interface, and a network without a router has none.
func (a *applier) routerInterface(spec *NetworkSpec, n store.Network, subnets []store.Subnet) error {
	ports, err := a.tx.ListPorts(a.ctx, store.PortFilter{NetworkIDs: []string{n.ID}, DeviceOwners: []string{store.OwnerRouterInterface}})
	if err != nil {
		return fmt.Errorf("network %s: list router ports: %w", n.Name, err)
	}
	var r store.Router
	if spec.Router != "" {
		var found bool
		r, found, err = lookup(a.tx.GetRouter, a.ctx, spec.Router)
		if err != nil {
			return fmt.Errorf("network %s: router %s: %w", n.Name, spec.Router, err)
		}
		if !found {
			return a.fail(spec.Pos, "router", "router %s is neither in the file nor in the store", spec.Router)
		}
	}
	var keep *store.Port
	for _, p := range ports {
		if spec.Router != "" && p.DeviceID == r.ID && keep == nil {
			keep = &p
			continue
		}
		if err := a.tx.DeletePort(a.ctx, p.ID); err != nil {
			return fmt.Errorf("network %s: remove router interface %s: %w", n.Name, p.ID, err)
		}
		a.res.add("port", "router interface of "+n.Name, p.ID, Deleted, "detached from router "+p.DeviceID)
	}
	if spec.Router == "" {
		return nil
	}
	var fixed []store.FixedIP
	for _, s := range subnets {
		if s.GatewayIP != "" {
			fixed = append(fixed, store.FixedIP{SubnetID: s.ID, IPAddress: s.GatewayIP})
		}
	}
	return a.servicePort(spec, "router", n, keep, store.Port{
		NetworkID: n.ID, ProjectID: r.ProjectID, FixedIPs: fixed, DeviceID: r.ID, DeviceOwner: store.OwnerRouterInterface,
	}, "router interface of "+n.Name+" on "+r.Name)
}

// routerOverlaps refuses the file when a router it attaches a network to
// ends up with overlapping subnets, counting the networks the store
// already has on it: neutron refuses such a router interface. It runs
// once every network of the file is written, so a network the file moves
// away from the router no longer counts.
func (a *applier) routerOverlaps() error {
	checked := map[string]bool{}
	for i := range a.t.Networks {
		spec := &a.t.Networks[i]
		if spec.Router == "" {
			continue
		}
		r, found, err := lookup(a.tx.GetRouter, a.ctx, spec.Router)
		if err != nil || !found || checked[r.ID] {
			continue // an unknown router was refused by routerInterface
		}
		checked[r.ID] = true
		ports, err := a.tx.ListPorts(a.ctx, store.PortFilter{DeviceIDs: []string{r.ID}, DeviceOwners: []string{store.OwnerRouterInterface}})
		if err != nil {
			return fmt.Errorf("router %s: list interfaces: %w", r.Name, err)
		}
		var seen []placedCIDR
		for _, p := range ports {
			subs, err := a.tx.ListSubnets(a.ctx, p.NetworkID)
			if err != nil {
				return fmt.Errorf("router %s: network %s: %w", r.Name, p.NetworkID, err)
			}
			n, err := a.tx.GetNetwork(a.ctx, p.NetworkID)
			if err != nil {
				return fmt.Errorf("router %s: network %s: %w", r.Name, p.NetworkID, err)
			}
			for _, sub := range subs {
				pre, err := netip.ParsePrefix(sub.CIDR)
				if err != nil {
					continue
				}
				if o, ok := overlapping(pre, seen); ok && o.network != n.Name {
					return a.overlapError(r, placedCIDR{pre, n.Name, 0}, o)
				}
				seen = append(seen, placedCIDR{pre, n.Name, 0})
			}
		}
	}
	return nil
}

// overlapError names the file's network of the two (the other may be
// only in the store) at its router line.
func (a *applier) overlapError(r store.Router, x, y placedCIDR) error {
	for _, pair := range [][2]placedCIDR{{x, y}, {y, x}} {
		for i := range a.t.Networks {
			if spec := &a.t.Networks[i]; spec.Name == pair[0].network {
				return a.fail(spec.Pos, "router", "network %s's %s overlaps %s of network %s on router %s; neutron refuses overlapping subnets on one router",
					pair[0].network, pair[0].p, pair[1].p, pair[1].network, r.Name)
			}
		}
	}
	return fmt.Errorf("router %s: networks %s and %s overlap (%s, %s)", r.Name, x.network, y.network, x.p, y.p)
}

// dhcpPort gives a network with DHCP on any subnet one DHCP port holding
// each such subnet's DHCP address, and removes it when DHCP is off.
func (a *applier) dhcpPort(spec *NetworkSpec, n store.Network, subnets []store.Subnet) error {
	ports, err := a.tx.ListPorts(a.ctx, store.PortFilter{NetworkIDs: []string{n.ID}, DeviceOwners: []string{store.OwnerDHCP}})
	if err != nil {
		return fmt.Errorf("network %s: list DHCP ports: %w", n.Name, err)
	}
	var fixed []store.FixedIP
	for i, s := range subnets {
		if s.EnableDHCP {
			fixed = append(fixed, store.FixedIP{SubnetID: s.ID, IPAddress: spec.Subnets[i].DHCPIP})
		}
	}
	var keep *store.Port
	for _, p := range ports {
		if len(fixed) > 0 && keep == nil {
			keep = &p
			continue
		}
		if err := a.tx.DeletePort(a.ctx, p.ID); err != nil {
			return fmt.Errorf("network %s: remove DHCP port %s: %w", n.Name, p.ID, err)
		}
		a.res.add("port", "DHCP port of "+n.Name, p.ID, Deleted, "")
	}
	if len(fixed) == 0 {
		return nil
	}
	return a.servicePort(spec, "dhcp_ip", n, keep, store.Port{
		NetworkID: n.ID, ProjectID: n.ProjectID, FixedIPs: fixed, DeviceID: "dhcp-" + n.ID, DeviceOwner: store.OwnerDHCP,
	}, "DHCP port of "+n.Name)
}

// servicePort creates want, or updates old to it, after checking that no
// other port holds its addresses.
func (a *applier) servicePort(spec *NetworkSpec, field string, n store.Network, old *store.Port, want store.Port, name string) error {
	for _, ip := range want.FixedIPs {
		holders, err := a.tx.ListPorts(a.ctx, store.PortFilter{NetworkIDs: []string{n.ID}, IPAddresses: []string{ip.IPAddress}})
		if err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
		for _, h := range holders {
			if old == nil || h.ID != old.ID {
				return a.fail(spec.Pos, field, "%s for the %s is already used by %s", ip.IPAddress, name, a.describePort(h))
			}
		}
	}
	action := Created
	if old != nil {
		want.ID, want.MACAddress, want.CreatedAt = old.ID, old.MACAddress, old.CreatedAt
		action = Updated
		if portEqual(*old, want) {
			action = Unchanged
		}
	} else {
		mac, err := a.newMAC()
		if err != nil {
			return err
		}
		want.ID, want.MACAddress, want.CreatedAt = uuid.NewString(), mac, a.now
	}
	if action != Unchanged {
		if err := a.tx.PutPort(a.ctx, want); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	a.res.add("port", name, want.ID, action, fixedIPList(want.FixedIPs))
	return nil
}

func portEqual(a, b store.Port) bool {
	return a.NetworkID == b.NetworkID && a.ProjectID == b.ProjectID && a.MACAddress == b.MACAddress &&
		a.DeviceID == b.DeviceID && a.DeviceOwner == b.DeviceOwner && a.BindingHostID == b.BindingHostID &&
		slices.Equal(a.FixedIPs, b.FixedIPs) && slices.Equal(a.SecurityGroups, b.SecurityGroups)
}

func fixedIPList(f []store.FixedIP) string {
	var b bytes.Buffer
	for i, ip := range f {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(ip.IPAddress)
	}
	return b.String()
}

// describePort names a port's owner for error messages.
func (a *applier) describePort(p store.Port) string {
	switch p.DeviceOwner {
	case store.OwnerCompute:
		if in, err := a.tx.GetInstance(a.ctx, p.DeviceID); err == nil {
			return "instance " + in.Name
		}
		return "instance " + p.DeviceID
	case store.OwnerDHCP:
		return "the DHCP port"
	case store.OwnerRouterInterface:
		if r, err := a.tx.GetRouter(a.ctx, p.DeviceID); err == nil {
			return "router " + r.Name
		}
		return "router " + p.DeviceID
	}
	return "port " + p.ID
}

// newMAC draws MACs until one is unused; the bound only matters once
// millions of ports share the 24 random bits.
func (a *applier) newMAC() (string, error) {
	for range 64 {
		mac := randomMAC()
		if a.macs[mac] {
			continue
		}
		ports, err := a.tx.ListPorts(a.ctx, store.PortFilter{MACAddresses: []string{mac}})
		if err != nil {
			return "", fmt.Errorf("check MAC %s: %w", mac, err)
		}
		if len(ports) == 0 {
			a.macs[mac] = true
			return mac, nil
		}
	}
	return "", errors.New("could not find an unused MAC address in fa:16:3e:00:00:00/24")
}
