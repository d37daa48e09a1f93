package topology

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/mdctl/mdctl/store"
)

// portPlan is one compute port Apply is about to write.
type portPlan struct {
	spec   *PortSpec
	host   string // the instance's Host: binding_host_id
	inst   store.Instance
	net    store.Network
	subs   []store.Subnet
	old    *store.Port
	port   store.Port
	index  int      // position in the instance's spec, for creation order
	groups []string // security groups to bind
	fixed  []store.FixedIP
}

// instances writes instance records, then removes ports no longer wanted,
// then plans addresses (explicit ones first, so an earlier instance's
// automatic address never takes one a later instance asked for), then
// writes the ports in the file's order.
func (a *applier) instances() error {
	var plans []*portPlan
	for i := range a.t.Instances {
		spec := &a.t.Instances[i]
		inst, err := a.instance(spec)
		if err == nil {
			var p []*portPlan
			p, err = a.instancePorts(spec, inst)
			plans = append(plans, p...)
		}
		if err := a.collect(err); err != nil {
			return err
		}
	}
	failed := map[*portPlan]bool{}
	for _, explicit := range []bool{true, false} {
		for _, p := range plans {
			if (p.spec.IP != "") != explicit {
				continue
			}
			if err := a.planAddresses(p); err != nil {
				failed[p] = true
				if err := a.collect(err); err != nil {
					return err
				}
			}
		}
	}
	if len(a.problems) > 0 {
		return nil // nothing commits: no need to write ports
	}
	for _, p := range plans {
		if err := a.writePort(p); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) instance(spec *InstanceSpec) (store.Instance, error) {
	pid, err := a.project(spec.Project)
	if err != nil {
		return store.Instance{}, err
	}
	old, found, err := lookup(a.tx.GetInstance, a.ctx, spec.Name)
	if err != nil {
		return old, fmt.Errorf("instance %s: %w", spec.Name, err)
	}
	in := old
	if !found {
		// EC2ID 0: the store hands out nova's never-reused integer id.
		in = store.Instance{ID: uuid.NewString(), Name: spec.Name, CreatedAt: a.now}
	}
	in.ProjectID = pid
	in.Hostname = spec.Hostname
	if in.Hostname == "" {
		in.Hostname = SanitizeHostname(spec.Name, "Server-"+in.ID)
	}
	in.AvailabilityZone = cmpOr(spec.AvailabilityZone, "nova")
	in.Flavor = cmpOr(spec.Flavor, "m1.small")
	in.LaunchIndex = spec.LaunchIndex
	// nova's metadata update: kept keys keep their rows, so their places.
	in.Meta = old.Meta.Updated(spec.Meta)
	in.Keys = []store.Key{}
	for _, k := range spec.Keys {
		in.Keys = append(in.Keys, store.Key{Name: k.Name, Type: cmpOr(k.Type, "ssh"), Data: k.Data})
	}
	in.UserData = spec.UserData
	in.ConfigDrive = spec.ConfigDrive
	in.AdminPass = spec.AdminPass
	in.MetadataTokens = spec.MetadataTokens
	action := Created
	if found {
		action = Unchanged
		if !instanceEqual(old, in) {
			action = Updated
		}
	}
	if action != Unchanged {
		in.UpdatedAt = a.now
		if err := a.tx.PutInstance(a.ctx, in); err != nil {
			return in, fmt.Errorf("instance %s: %w", spec.Name, err)
		}
	}
	a.res.add("instance", in.Name, in.ID, action, "")
	return in, nil
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func instanceEqual(a, b store.Instance) bool {
	return a.Name == b.Name && a.Hostname == b.Hostname && a.ProjectID == b.ProjectID &&
		a.AvailabilityZone == b.AvailabilityZone && a.Flavor == b.Flavor && a.LaunchIndex == b.LaunchIndex &&
		slices.Equal(a.Meta, b.Meta) && slices.Equal(a.Keys, b.Keys) && bytes.Equal(a.UserData, b.UserData) &&
		a.ConfigDrive == b.ConfigDrive && a.AdminPass == b.AdminPass && a.MetadataTokens == b.MetadataTokens
}

// instancePorts removes the instance's ports on networks it should no
// longer be on and plans one port per wanted network.
func (a *applier) instancePorts(spec *InstanceSpec, in store.Instance) ([]*portPlan, error) {
	existing, err := a.tx.ListPorts(a.ctx, store.PortFilter{DeviceIDs: []string{in.ID}, DeviceOwners: []string{store.OwnerCompute}})
	if err != nil {
		return nil, fmt.Errorf("instance %s: list ports: %w", in.Name, err)
	}
	var plans []*portPlan
	wanted := map[string]bool{}
	for i := range spec.Ports {
		ps := &spec.Ports[i]
		n, found, err := lookup(a.tx.GetNetwork, a.ctx, ps.Network)
		if err != nil {
			return nil, fmt.Errorf("instance %s: network %s: %w", in.Name, ps.Network, err)
		}
		if !found && a.broken[ps.Network] {
			return nil, Errors{} // its network's mistake is reported already
		}
		if !found {
			return nil, a.fail(ps.Pos, "network", "network %s is neither in the file nor in the store", ps.Network)
		}
		subs, err := a.tx.ListSubnets(a.ctx, n.ID)
		if err != nil {
			return nil, fmt.Errorf("network %s: list subnets: %w", n.Name, err)
		}
		wanted[n.ID] = true
		p := &portPlan{spec: ps, host: spec.Host, inst: in, net: n, subs: subs, index: i, groups: ps.securityGroups(spec)}
		if j := slices.IndexFunc(existing, func(p store.Port) bool { return p.NetworkID == n.ID }); j >= 0 {
			p.old = &existing[j]
		}
		plans = append(plans, p)
	}
	for _, p := range existing {
		if wanted[p.NetworkID] {
			continue
		}
		if err := a.tx.DeletePort(a.ctx, p.ID); err != nil {
			return nil, fmt.Errorf("instance %s: remove port %s: %w", in.Name, p.ID, err)
		}
		a.res.add("port", in.Name, p.ID, Deleted, fixedIPList(p.FixedIPs))
	}
	return plans, nil
}

// taken returns the addresses in use on a network and who holds them.
func (a *applier) taken(n store.Network, subs []store.Subnet) (map[netip.Addr]string, error) {
	if m, ok := a.addrs[n.ID]; ok {
		return m, nil
	}
	m := map[netip.Addr]string{}
	for _, s := range subs {
		if gw, err := netip.ParseAddr(s.GatewayIP); err == nil {
			m[gw] = "the gateway"
		}
	}
	ports, err := a.tx.ListPorts(a.ctx, store.PortFilter{NetworkIDs: []string{n.ID}})
	if err != nil {
		return nil, fmt.Errorf("network %s: list ports: %w", n.Name, err)
	}
	for _, p := range ports {
		for _, ip := range p.FixedIPs {
			if addr, err := netip.ParseAddr(ip.IPAddress); err == nil {
				m[addr] = a.describePort(p)
			}
		}
	}
	a.addrs[n.ID] = m
	return m, nil
}

// planAddresses picks a port's fixed IPs the way neutron does: the asked
// address on its subnet, or else keep what the port has, or else the next
// free address of the first subnet of each IP version; plus a SLAAC
// address on every SLAAC subnet.
func (a *applier) planAddresses(p *portPlan) error {
	used, err := a.taken(p.net, p.subs)
	if err != nil {
		return err
	}
	owner := "instance " + p.inst.Name
	mac := p.spec.MAC
	if mac == "" && p.old != nil {
		mac = p.old.MACAddress
	} else if mac == "" {
		if mac, err = a.newMAC(); err != nil {
			return err
		}
	}
	p.port = store.Port{NetworkID: p.net.ID, ProjectID: p.inst.ProjectID, MACAddress: mac, DeviceID: p.inst.ID,
		DeviceOwner: store.OwnerCompute, SecurityGroups: slices.Clone(p.groups), BindingHostID: p.host}
	var asked netip.Addr
	if p.spec.IP != "" {
		asked = netip.MustParseAddr(p.spec.IP) // Validate parsed it
		if msg := checkFixedIP(asked, p.net.Name, p.subs); msg != "" {
			return a.fail(p.spec.Pos, "ip", "%s", msg)
		}
		if holder, ok := used[asked]; ok && !a.holds(p.old, asked) {
			return a.fail(p.spec.Pos, "ip", "%s is already used by %s", asked, holder)
		}
	}
	done := map[int]bool{} // IP versions given a non-SLAAC address
	for _, s := range p.subs {
		pre, err := netip.ParsePrefix(s.CIDR)
		if err != nil {
			return fmt.Errorf("network %s: subnet %s: bad CIDR %q", p.net.Name, s.ID, s.CIDR)
		}
		var addr netip.Addr
		switch {
		case s.IPVersion == 6 && usesSLAAC(s.IPv6AddressMode):
			addr, err = eui64(pre, mac)
		case asked.IsValid():
			if !pre.Contains(asked) || done[s.IPVersion] {
				continue
			}
			addr = asked
		case done[s.IPVersion]:
			continue
		default:
			addr, err = a.keepOrAllocate(p.old, s, pre, used)
		}
		if err != nil {
			return a.fail(p.spec.Pos, "ip", "network %s: %v", p.net.Name, err)
		}
		if !addr.IsValid() {
			continue
		}
		done[s.IPVersion] = done[s.IPVersion] || !(s.IPVersion == 6 && usesSLAAC(s.IPv6AddressMode))
		used[addr] = owner
		p.fixed = append(p.fixed, store.FixedIP{SubnetID: s.ID, IPAddress: addr.String()})
	}
	if asked.IsValid() && !slices.ContainsFunc(p.fixed, func(f store.FixedIP) bool { return f.IPAddress == asked.String() }) {
		return a.fail(p.spec.Pos, "ip", "%s is not on a subnet of %s that takes fixed addresses", asked, p.net.Name)
	}
	return nil
}

// holds reports whether port already has addr (asking again for the
// address you have is no conflict).
func (a *applier) holds(port *store.Port, addr netip.Addr) bool {
	return port != nil && slices.ContainsFunc(port.FixedIPs, func(f store.FixedIP) bool { return f.IPAddress == addr.String() })
}

// keepOrAllocate keeps the port's address on s, else takes the next free
// one. A subnet with no room is skipped only if others might do; the
// error surfaces when it was the only one.
func (a *applier) keepOrAllocate(old *store.Port, s store.Subnet, pre netip.Prefix, used map[netip.Addr]string) (netip.Addr, error) {
	if old != nil {
		for _, f := range old.FixedIPs {
			if f.SubnetID == s.ID {
				return netip.ParseAddr(f.IPAddress)
			}
		}
	}
	set := make(map[netip.Addr]bool, len(used))
	for k := range used {
		set[k] = true
	}
	return nextFree(pre, set)
}

func (a *applier) writePort(p *portPlan) error {
	want := p.port
	want.FixedIPs = p.fixed
	action := Created
	if p.old != nil {
		want.ID, want.CreatedAt = p.old.ID, p.old.CreatedAt
		action = Updated
		if portEqual(*p.old, want) {
			action = Unchanged
		}
	} else {
		// Distinct creation times keep an instance's NICs in file order.
		want.ID, want.CreatedAt = uuid.NewString(), a.now.Add(time.Duration(p.index)*time.Microsecond)
	}
	if action != Unchanged {
		if err := a.tx.PutPort(a.ctx, want); err != nil {
			return fmt.Errorf("instance %s: port on %s: %w", p.inst.Name, p.net.Name, err)
		}
	}
	a.res.add("port", p.inst.Name+" on "+p.net.Name, want.ID, action, fixedIPList(want.FixedIPs))
	return nil
}
