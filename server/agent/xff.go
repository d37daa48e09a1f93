package agent

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// source is the guest's address as the proxy reported it.
type source struct {
	IP netip.Addr
	// MAC is set for an IPv6 link-local source: neutron matches such a
	// guest by the MAC its EUI-64 interface id encodes, because the
	// link-local address is not one of the port's fixed IPs.
	MAC string
}

// parseXFF parses the X-Forwarded-For value the proxy set. Like neutron's
// netaddr.IPAddress(forwarded_for) it accepts exactly one address: several
// values (a guest-sent XFF that the proxy appended to, joined ", ") do not
// parse. An IPv4-mapped IPv6 address (a dual-stack listener) is unmapped.
func parseXFF(v string) (source, error) {
	if v == "" {
		return source{}, errors.New("X-Forwarded-For header is missing")
	}
	ip, err := netip.ParseAddr(v)
	if err != nil {
		return source{}, fmt.Errorf("X-Forwarded-For %q is not one IP address", v)
	}
	if ip.Zone() != "" {
		return source{}, fmt.Errorf("X-Forwarded-For %q has a zone", v)
	}
	ip = ip.Unmap()
	s := source{IP: ip}
	if ip.Is6() && ip.IsLinkLocalUnicast() {
		s.MAC = eui64MAC(ip)
	}
	return s, nil
}

// eui64MAC is oslo.utils' get_mac_addr_by_ipv6: drop the middle two bytes
// of the interface id and flip the universal/local bit. Like oslo it does
// not check for ff:fe, so a privacy address yields a MAC no port has.
func eui64MAC(ip netip.Addr) string {
	b := ip.As16()
	return net.HardwareAddr{b[8] ^ 0x02, b[9], b[10], b[13], b[14], b[15]}.String()
}
