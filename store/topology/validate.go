package topology

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/mdctl/mdctl/store"
)

// maxUserData is nova's limit: 65535 bytes once base64 encoded.
const maxUserData = 65535

var ipv6Modes = []string{"slaac", "dhcpv6-stateful", "dhcpv6-stateless"}

// Validate checks everything that can be checked without the store, fills
// in defaults (gateway, DHCP address, canonical setting values), and
// returns every mistake found. It is idempotent.
func (t *Topology) Validate() error {
	c := &errs{file: t.File}
	t.validateSettings(c)
	routers := t.validateRouters(c)
	nets := t.validateNetworks(c, routers)
	t.validateInstances(c, nets)
	return c.err()
}

func (t *Topology) validateSettings(c *errs) {
	for i := range t.Settings {
		s := &t.Settings[i]
		v, err := store.NormalizeSetting(s.Key, s.Value)
		if err != nil {
			c.at(s.Pos, s.Key, "%s", strings.TrimPrefix(err.Error(), s.Key+": "))
			continue
		}
		s.Value = v
	}
}

// nameRe keeps names usable on a command line and in interface listings.
var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// displayNameRe is nova's looser rule for instance names, which people
// write with spaces ("Web server 1"); the hostname is derived from it.
var displayNameRe = regexp.MustCompile(`^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]{0,253}[^\s\x00-\x1f\x7f])?$`)

func checkName(c *errs, p Pos, kind, name string, seen map[string]int) {
	re := nameRe
	if kind == "instance" {
		re = displayNameRe
	}
	switch {
	case name == "":
		c.at(p, "name", "is required")
	case !re.MatchString(name) && kind == "instance":
		c.at(p, "name", "%q is not a valid instance name: up to 255 printable characters, no space at either end", name)
	case !re.MatchString(name):
		c.at(p, "name", "%q is not a valid %s name: use up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", name, kind)
	default:
		if l, dup := seen[name]; dup {
			c.at(p, "name", "%s %s is already defined at line %d", kind, name, l)
			return
		}
		seen[name] = p.line("name")
	}
}

func checkProject(c *errs, p Pos, project string) {
	if project == "" {
		c.at(p, "project", "is required (a project name; it is created when missing)")
	} else if !nameRe.MatchString(project) {
		c.at(p, "project", "%q is not a valid project name", project)
	}
}

func (t *Topology) validateRouters(c *errs) map[string]bool {
	seen := map[string]int{}
	for _, r := range t.Routers {
		checkName(c, r.Pos, "router", r.Name, seen)
		checkProject(c, r.Pos, r.Project)
	}
	names := map[string]bool{}
	for n := range seen {
		names[n] = true
	}
	return names
}

func (t *Topology) validateNetworks(c *errs, routers map[string]bool) map[string]*NetworkSpec {
	seen := map[string]int{}
	nets := map[string]*NetworkSpec{}
	for i := range t.Networks {
		n := &t.Networks[i]
		checkName(c, n.Pos, "network", n.Name, seen)
		checkProject(c, n.Pos, n.Project)
		if n.MTU != 0 && (n.MTU < 68 || n.MTU > 65535) {
			c.at(n.Pos, "mtu", "%d is not an MTU between 68 and 65535", n.MTU)
		}
		validateAttach(c, n)
		if len(n.Subnets) == 0 {
			c.at(n.Pos, "cidr", "is required: give cidr, ipv6_cidr or subnets")
		}
		var cidrs []placedCIDR
		for j := range n.Subnets {
			validateSubnet(c, &n.Subnets[j], &cidrs, n.Name)
		}
		if n.Router != "" && !slices.ContainsFunc(n.Subnets, func(s SubnetSpec) bool { return s.Gateway != "" }) {
			c.at(n.Pos, "router", "network %s has no subnet with a gateway for router %s to attach to", n.Name, n.Router)
		}
		if n.Name != "" {
			nets[n.Name] = n
		}
	}
	_ = routers // references to routers are resolved by Apply, which also sees the store
	t.validateRouterOverlaps(c)
	return nets
}

// validateAttach checks bridge and vlan, and applies dhcp: false to the
// subnets (their enable_dhcp defaults to it; turning one on contradicts it).
func validateAttach(c *errs, n *NetworkSpec) {
	if n.Bridge != "" {
		if err := store.CheckIfName(n.Bridge); err != nil {
			c.at(n.Pos, "bridge", "%q: %v", n.Bridge, err)
		}
	}
	if err := store.CheckVLAN(n.Bridge, n.VLAN); err != nil {
		c.at(n.Pos, "vlan", "%v", err)
	}
	if n.DHCP == nil || *n.DHCP {
		return
	}
	for j := range n.Subnets {
		s := &n.Subnets[j]
		switch {
		case s.EnableDHCP == nil:
			off := false
			s.EnableDHCP = &off
		case *s.EnableDHCP:
			c.at(s.Pos, "enable_dhcp", "is true on network %s, which says dhcp: false", n.Name)
		}
	}
}

// placedCIDR is a subnet's prefix and where the file gave it.
type placedCIDR struct {
	p       netip.Prefix
	network string
	line    int
}

// overlapping returns the first of cidrs that overlaps p.
func overlapping(p netip.Prefix, cidrs []placedCIDR) (placedCIDR, bool) {
	for _, o := range cidrs {
		if o.p.Overlaps(p) {
			return o, true
		}
	}
	return placedCIDR{}, false
}

// validateRouterOverlaps refuses networks on one router (as the file
// names it) whose subnets overlap, as neutron refuses to add such an
// interface: the router could not tell the guests apart. Apply checks
// the same against the networks the store already has on the router.
func (t *Topology) validateRouterOverlaps(c *errs) {
	byRouter := map[string][]placedCIDR{}
	for _, n := range t.Networks {
		if n.Router == "" {
			continue
		}
		for _, s := range n.Subnets {
			p, err := netip.ParsePrefix(s.CIDR)
			if err != nil {
				continue // reported by validateSubnet
			}
			if o, ok := overlapping(p, byRouter[n.Router]); ok && o.network != n.Name {
				c.at(s.Pos, "cidr", "%s overlaps %s of network %s (line %d) on router %s; neutron refuses overlapping subnets on one router",
					p, o.p, o.network, o.line, n.Router)
				continue
			}
			byRouter[n.Router] = append(byRouter[n.Router], placedCIDR{p, n.Name, s.Pos.line("cidr")})
		}
	}
}

func validateSubnet(c *errs, s *SubnetSpec, cidrs *[]placedCIDR, network string) {
	if s.CIDR == "" {
		c.at(s.Pos, "cidr", "is required")
		return
	}
	p, err := netip.ParsePrefix(s.CIDR)
	if err != nil {
		c.at(s.Pos, "cidr", "%q is not a CIDR like 10.90.1.0/24", s.CIDR)
		return
	}
	if p.Masked() != p {
		c.at(s.Pos, "cidr", "%s has host bits set; did you mean %s?", s.CIDR, p.Masked())
		return
	}
	if p.Addr().Is4() && p.Bits() > 29 || p.Addr().Is6() && p.Bits() > 125 {
		c.at(s.Pos, "cidr", "%s is too small for a gateway, a DHCP port and guests", s.CIDR)
		return
	}
	if o, ok := overlapping(p, *cidrs); ok {
		if o.p == p {
			c.at(s.Pos, "cidr", "%s is given twice on this network", s.CIDR)
		} else {
			c.at(s.Pos, "cidr", "%s overlaps %s (line %d) on this network; neutron refuses overlapping subnets on one network", p, o.p, o.line)
		}
		return
	}
	*cidrs = append(*cidrs, placedCIDR{p, network, s.Pos.line("cidr")})
	s.CIDR = p.String()
	if p.Addr().Is4() && s.IPv6AddressMode != "" {
		c.at(s.Pos, "ipv6_address_mode", "only applies to IPv6 subnets")
	}
	if p.Addr().Is6() && s.IPv6AddressMode != "" && !slices.Contains(ipv6Modes, s.IPv6AddressMode) {
		c.at(s.Pos, "ipv6_address_mode", "%q is not allowed; allowed: %s", s.IPv6AddressMode, strings.Join(ipv6Modes, ", "))
	}
	first := p.Addr().Next()
	switch {
	case s.Gateway == "none", s.Gateway == "" && s.noGateway:
		s.Gateway, s.noGateway = "", true
	case s.Gateway == "":
		s.Gateway = first.String()
	default:
		if a, ok := hostAddr(c, s.Pos, "gateway", s.Gateway, p); ok {
			s.Gateway = a.String()
		}
	}
	if s.DHCPIP == "" {
		d := first
		if d.String() == s.Gateway {
			d = d.Next()
		}
		s.DHCPIP = d.String()
	} else if a, ok := hostAddr(c, s.Pos, "dhcp_ip", s.DHCPIP, p); ok {
		s.DHCPIP = a.String()
		if s.DHCPIP == s.Gateway && s.dhcpEnabled() {
			c.at(s.Pos, "dhcp_ip", "%s is the gateway", s.DHCPIP)
		}
	}
	for i, d := range s.DNS {
		if _, err := netip.ParseAddr(d); err != nil {
			c.at(s.Pos, "dns", "dns[%d]: %q is not an IP address", i, d)
		}
	}
	for i, hr := range s.HostRoutes {
		dst, err := netip.ParsePrefix(hr.Destination)
		if err != nil || dst.Masked() != dst {
			c.at(s.Pos, "host_routes", "host_routes[%d].destination: %q is not a CIDR like 192.168.0.0/24", i, hr.Destination)
		}
		nh, err := netip.ParseAddr(hr.NextHop)
		if err != nil || !p.Contains(nh) {
			c.at(s.Pos, "host_routes", "host_routes[%d].nexthop: %q is not an address inside %s", i, hr.NextHop, p)
		}
	}
}

// hostAddr parses an address that must be a usable host address of p.
func hostAddr(c *errs, pos Pos, field, s string, p netip.Prefix) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		c.at(pos, field, "%q is not an IP address", s)
		return a, false
	}
	if !p.Contains(a) {
		c.at(pos, field, "%s is outside %s", s, p)
		return a, false
	}
	if a == p.Addr() {
		c.at(pos, field, "%s is the network address of %s", s, p)
		return a, false
	}
	if a.Is4() && a == lastAddr(p) {
		c.at(pos, field, "%s is the broadcast address of %s", s, p)
		return a, false
	}
	return a, true
}

func (t *Topology) validateInstances(c *errs, nets map[string]*NetworkSpec) {
	seen := map[string]int{}
	ips := map[string]string{} // network/ip → instance that holds it
	for i := range t.Instances {
		in := &t.Instances[i]
		checkName(c, in.Pos, "instance", in.Name, seen)
		checkProject(c, in.Pos, in.Project)
		if in.Hostname != "" && SanitizeHostname(in.Hostname, "") != in.Hostname {
			c.at(in.Pos, "hostname", "%q is not a valid hostname; nova would use %q", in.Hostname, SanitizeHostname(in.Hostname, "x"))
		}
		if len(in.Ports) == 0 {
			c.at(in.Pos, "network", "is required: give network, networks or ports")
		}
		if err := store.CheckMetadataTokens(in.MetadataTokens); err != nil {
			c.at(in.Pos, "metadata_tokens", "%s", strings.TrimPrefix(err.Error(), "metadata_tokens "))
		}
		if len(base64.StdEncoding.EncodeToString(in.UserData)) > maxUserData {
			c.at(in.Pos, "user_data", "is %d bytes; nova allows at most %d bytes once base64 encoded", len(in.UserData), maxUserData)
		}
		keys := map[string]bool{}
		for _, k := range in.Keys {
			if k.Name == "" || k.Data == "" {
				c.at(in.Pos, keysField(in.Pos), "every key needs a name and data")
			} else if keys[k.Name] {
				c.at(in.Pos, keysField(in.Pos), "key %s is given twice", k.Name)
			}
			keys[k.Name] = true
		}
		for _, m := range in.Meta {
			if m.Key == "" || len(m.Key) > 255 {
				c.at(in.Pos, "meta", "meta keys must be 1 to 255 characters")
			}
		}
		validateGroups(c, in.Pos, in.SecurityGroups)
		usedNets := map[string]bool{}
		for j := range in.Ports {
			validatePort(c, in, &in.Ports[j], nets, ips, usedNets)
		}
	}
}

// validateGroups checks security group names as neutron does: 1 to 255
// characters; a port is bound to a group once.
func validateGroups(c *errs, p Pos, groups []string) {
	seen := map[string]bool{}
	for _, g := range groups {
		switch {
		case g == "" || len(g) > 255:
			c.at(p, "security_groups", "security group names must be 1 to 255 characters")
		case seen[g]:
			c.at(p, "security_groups", "security group %s is given twice", g)
		}
		seen[g] = true
	}
}

func keysField(p Pos) string {
	if _, ok := p.Lines["public_keys"]; ok {
		return "public_keys"
	}
	return "keys"
}

func validatePort(c *errs, in *InstanceSpec, ps *PortSpec, nets map[string]*NetworkSpec, ips map[string]string, usedNets map[string]bool) {
	validateGroups(c, ps.Pos, ps.SecurityGroups)
	if ps.Network == "" {
		c.at(ps.Pos, "network", "is required")
		return
	}
	if usedNets[ps.Network] {
		c.at(ps.Pos, "network", "instance %s is already on network %s", in.Name, ps.Network)
	}
	usedNets[ps.Network] = true
	if ps.MAC != "" {
		if mac, err := net.ParseMAC(ps.MAC); err != nil || len(mac) != 6 || mac[0]&1 != 0 {
			c.at(ps.Pos, "mac", "%q is not a unicast Ethernet address like fa:16:3e:12:34:56", ps.MAC)
		} else {
			ps.MAC = mac.String()
		}
	}
	if ps.IP == "" {
		return
	}
	a, err := netip.ParseAddr(ps.IP)
	if err != nil {
		c.at(ps.Pos, "ip", "%q is not an IP address", ps.IP)
		return
	}
	ps.IP = a.String()
	n, ok := nets[ps.Network]
	if !ok {
		return // a stored network: Apply checks the address against it
	}
	if msg := checkFixedIP(a, n.Name, specSubnets(n)); msg != "" {
		c.at(ps.Pos, "ip", "%s", msg)
		return
	}
	for _, s := range n.Subnets {
		if s.dhcpEnabled() && s.DHCPIP == a.String() {
			c.at(ps.Pos, "ip", "%s is the DHCP port of %s", a, n.Name)
			return
		}
	}
	key := n.Name + "/" + a.String()
	if other, dup := ips[key]; dup {
		c.at(ps.Pos, "ip", "%s is already given to instance %s", a, other)
		return
	}
	ips[key] = in.Name
}

func specSubnets(n *NetworkSpec) []store.Subnet {
	out := make([]store.Subnet, 0, len(n.Subnets))
	for _, s := range n.Subnets {
		out = append(out, store.Subnet{CIDR: s.CIDR, GatewayIP: s.Gateway, EnableDHCP: s.dhcpEnabled()})
	}
	return out
}

// checkFixedIP says why a could not be an instance's address on a network
// with these subnets, or "". Addresses held by ports are checked by Apply.
func checkFixedIP(a netip.Addr, netName string, subnets []store.Subnet) string {
	for _, s := range subnets {
		p, err := netip.ParsePrefix(s.CIDR)
		if err != nil || !p.Contains(a) {
			continue
		}
		switch {
		case a == p.Addr():
			return fmt.Sprintf("%s is the network address of %s", a, p)
		case a.Is4() && a == lastAddr(p):
			return fmt.Sprintf("%s is the broadcast address of %s", a, p)
		case a.String() == s.GatewayIP:
			return fmt.Sprintf("%s is the gateway of %s's %s", a, netName, p)
		}
		return ""
	}
	cidrs := make([]string, 0, len(subnets))
	for _, s := range subnets {
		cidrs = append(cidrs, s.CIDR)
	}
	return fmt.Sprintf("%s is outside %s's %s", a, netName, strings.Join(cidrs, ", "))
}
