package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

// The rules layer: what a valid record is and its one canonical form,
// whichever backend stores it. Uniqueness is the schema's (unique indexes,
// which hold across processes and hosts); the record layer's lookups before
// a write only name the record a conflict is with.

func notFound(kind, ref string) error {
	return fmt.Errorf("%s %q: %w", kind, ref, ErrNotFound)
}

// nodeName is what a node's name may be: a host name, or a label of one,
// as `serve --node` defaults to the host name.
var nodeName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,252}[A-Za-z0-9])?$`)

// CheckNodeName refuses a node name that is not a host-name-like label.
func CheckNodeName(name string) error {
	if !nodeName.MatchString(name) {
		return fmt.Errorf("node name %q: use letters, digits, '.', '-' and '_' (a host name)", name)
	}
	return nil
}

// canonicalNode writes no components as [] and the times in UTC, as they
// read back.
func canonicalNode(n *Node) {
	n.Components = slices.Clone(n.Components)
	if n.Components == nil {
		n.Components = []string{}
	}
	slices.Sort(n.Components)
	n.Components = slices.Compact(n.Components)
}

func required(kind, field, v string) error {
	if v == "" {
		return fmt.Errorf("%s: %s is required", kind, field)
	}
	return nil
}

// checkSubnet validates what the rest of mdctl relies on: a parseable
// CIDR whose family matches IPVersion (filled in when 0), and a gateway
// inside it.
func checkSubnet(s *Subnet) error {
	pfx, err := netip.ParsePrefix(s.CIDR)
	if err != nil {
		return fmt.Errorf("subnet %s: cidr %q: %w", s.ID, s.CIDR, err)
	}
	v := 4
	if pfx.Addr().Is6() {
		v = 6
	}
	switch s.IPVersion {
	case 0:
		s.IPVersion = v
	case v:
	default:
		return fmt.Errorf("subnet %s: ip_version %d does not match cidr %s", s.ID, s.IPVersion, s.CIDR)
	}
	if s.GatewayIP != "" {
		gw, err := netip.ParseAddr(s.GatewayIP)
		if err != nil || !pfx.Contains(gw) {
			return fmt.Errorf("subnet %s: gateway_ip %q is not an address in %s", s.ID, s.GatewayIP, s.CIDR)
		}
		s.GatewayIP = gw.String()
	}
	return nil
}

// canonicalIP writes addresses one way so lookups by the guest's address
// match however the port was written ("fe80::0001" = "fe80::1").
func canonicalIP(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().String()
	}
	return s
}

func canonicalMAC(s string) string {
	if hw, err := net.ParseMAC(s); err == nil {
		return hw.String()
	}
	return strings.ToLower(s)
}

// canonicalPort writes p's MAC, addresses and security groups in their
// canonical forms (on a copy of FixedIPs: the caller's stays as it was)
// and refuses an address that does not parse or is listed twice.
func canonicalPort(p *Port) error {
	p.MACAddress = canonicalMAC(p.MACAddress)
	p.FixedIPs = slices.Clone(p.FixedIPs)
	if len(p.FixedIPs) == 0 {
		p.FixedIPs = nil // as it reads back
	}
	if len(p.SecurityGroups) == 0 {
		p.SecurityGroups = nil // none reads back as nil
	}
	seen := map[string]bool{}
	for i := range p.FixedIPs {
		f := &p.FixedIPs[i]
		addr, err := netip.ParseAddr(f.IPAddress)
		if err != nil {
			return fmt.Errorf("put port %s: ip_address %q: %w", p.ID, f.IPAddress, err)
		}
		f.IPAddress = addr.Unmap().String()
		if seen[f.IPAddress] {
			return fmt.Errorf("put port %s: address %s listed twice: %w", p.ID, f.IPAddress, ErrConflict)
		}
		seen[f.IPAddress] = true
	}
	return nil
}

// canonicalInstance writes no user data and no meta as nil, as they read
// back.
func canonicalInstance(i *Instance) {
	if len(i.UserData) == 0 {
		i.UserData = nil
	}
	if len(i.Meta) == 0 {
		i.Meta = nil
	}
}

// unchanged reports whether putting next would leave the record stored
// under id as it is, apart from what the store stamps itself (stamp copies
// those fields from the stored record into next). Such a put writes
// nothing and leaves the generation alone, so servers keep their caches.
func unchanged[T any](ctx context.Context, get func(context.Context, string) (T, error), id string, next T, stamp func(cur T, next *T)) (bool, error) {
	cur, err := get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if stamp != nil {
		stamp(cur, &next)
	}
	return reflect.DeepEqual(cur, next), nil
}

// The stamps of each kind: timestamps the store sets, and an instance's
// EC2 id when the put leaves it to the store (0).
func stampNetwork(cur Network, n *Network) { n.CreatedAt, n.UpdatedAt = cur.CreatedAt, cur.UpdatedAt }
func stampRouter(cur Router, r *Router)    { r.CreatedAt, r.UpdatedAt = cur.CreatedAt, cur.UpdatedAt }
func stampPort(cur Port, p *Port)          { p.CreatedAt = cur.CreatedAt }
func stampInstance(cur Instance, i *Instance) {
	i.CreatedAt, i.UpdatedAt = cur.CreatedAt, cur.UpdatedAt
	if i.EC2ID == 0 {
		i.EC2ID = cur.EC2ID
	}
}
