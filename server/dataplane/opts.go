package dataplane

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// DHCP option names and codes as neutron writes them for dnsmasq
// (neutron/agent/linux/dhcp.py, Dnsmasq._generate_opts_per_subnet).
const (
	subnetTagPrefix = "subnet-"
	// optWin2k3StaticRoutes is option 249, Microsoft's twin of 121, which
	// neutron writes beside classless-static-route for old Windows guests.
	optWin2k3StaticRoutes = "249"
	ipv4Any               = "0.0.0.0/0"
)

// DHCPOpts is the dnsmasq opts file for a network, line by line, in
// neutron's order per subnet (Dnsmasq._generate_opts_per_subnet):
// dns-server when the subnet names servers (a bare dns-server, announcing
// none, when it names only 0.0.0.0 or ::; without servers dnsmasq names
// itself, as it serves DNS), domain-search for IPv6 when there is a
// domain, then for IPv4 the classless static routes (121) and their 249
// twin, then the router. The route list is neutron's: same-segment subnets on-link
// (each inserted at the front, so in reverse), the host routes (a 0.0.0.0/0
// host route only supplies a missing gateway), 169.254.169.254/32 via the
// metadata hop Plan chose, and 0.0.0.0/0 via the gateway when any route
// precedes it. Subnets without DHCP and SLAAC IPv6 subnets get no lines.
func DHCPOpts(subnets []SubnetPlan, domain string) []string {
	var out []string
	for _, s := range subnets {
		if !s.EnableDHCP || (s.IPVersion == 6 && s.IPv6AddressMode == "slaac") {
			continue
		}
		tag := subnetTagPrefix + s.SubnetID
		switch {
		case anyAddress(s.IPVersion, s.DNSNameservers):
			out = append(out, formatOption(s.IPVersion, tag, "dns-server"))
		case len(s.DNSNameservers) > 0:
			out = append(out, formatOption(s.IPVersion, tag, "dns-server", strings.Join(literalAddrs(s.IPVersion, s.DNSNameservers), ",")))
		}
		if s.IPVersion != 4 {
			if domain != "" {
				out = append(out, formatOption(6, tag, "domain-search", domain))
			}
			continue
		}
		gateway := s.GatewayIP
		var routes []string
		for _, hr := range s.HostRoutes {
			if hr.Destination == ipv4Any {
				if gateway == "" {
					gateway = hr.NextHop
				}
				continue
			}
			routes = append(routes, hr.Destination+","+hr.NextHop)
		}
		if s.MetadataHop != "" {
			routes = append(routes, MetadataIPv4+"/32,"+s.MetadataHop)
		}
		for _, o := range subnets {
			if o.IPVersion == 4 && o.CIDR != s.CIDR {
				routes = append([]string{o.CIDR + ",0.0.0.0"}, routes...)
			}
		}
		if len(routes) > 0 {
			if gateway != "" {
				routes = append(routes, ipv4Any+","+gateway)
			}
			out = append(out,
				formatOption(4, tag, "classless-static-route", strings.Join(routes, ",")),
				formatOption(4, tag, optWin2k3StaticRoutes, strings.Join(routes, ",")))
		}
		if gateway != "" {
			out = append(out, formatOption(4, tag, "router", gateway))
		} else {
			out = append(out, formatOption(4, tag, "router"))
		}
	}
	return out
}

// formatOption is neutron's _format_option: IPv6 options are option6:NAME,
// named IPv4 options option:NAME, numbered IPv4 options bare.
func formatOption(ipVersion int, tag, option string, args ...string) string {
	switch {
	case ipVersion == 6:
		option = "option6:" + option
	case !isDigits(option):
		option = "option:" + option
	}
	return strings.Join(append([]string{"tag:" + tag, option}, args...), ",")
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// anyAddress is neutron's is_dns_servers_any_address: the subnet's only
// name server is 0.0.0.0 (IPv4) or :: (IPv6), which says "announce none".
func anyAddress(ipVersion int, servers []string) bool {
	if len(servers) != 1 {
		return false
	}
	ip := net.ParseIP(servers[0])
	return ip != nil && ip.IsUnspecified() && (ip.To4() != nil) == (ipVersion == 4)
}

func literalAddrs(ipVersion int, ips []string) []string {
	if ipVersion == 4 {
		return ips
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = "[" + ip + "]"
	}
	return out
}

// DHCPHostsFile is dnsmasq's --dhcp-hostsfile: one line per port address,
// "<mac>,host-<ip with dashes>.<domain>,<ip>", neutron's line
// (Dnsmasq._output_hosts_file) for a port without extra DHCP options: it
// writes "set:port-<id>" only for those, which mdctl has none of (and
// Debian's dnsmasq 2.90 crashes on SIGHUP when a host line carries a tag
// and a lease exists, the very reload a live switch needs).
func DHCPHostsFile(hosts []DHCPHost, domain string) []string {
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		_, fqdn := hostNames(h.IP, domain)
		out = append(out, fmt.Sprintf("%s,%s,%s", h.MAC, fqdn, h.IP))
	}
	return out
}

// DHCPAddnHostsFile is dnsmasq's --addn-hosts, neutron's
// _output_addn_hosts_file: "<ip>\t<fqdn> <hostname>" per port address (the
// FQDN first, so PTR answers carry it), the names the DHCP port's DNS
// resolves for guests.
func DHCPAddnHostsFile(hosts []DHCPHost, domain string) []string {
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		name, fqdn := hostNames(h.IP, domain)
		out = append(out, fmt.Sprintf("%s\t%s %s", h.IP, fqdn, name))
	}
	return out
}

// hostNames is neutron's _get_dns_assignment for a port without a
// dns_name: host-<ip with dashes>, and that name in domain.
func hostNames(ip, domain string) (hostname, fqdn string) {
	hostname = "host-" + strings.NewReplacer(".", "-", ":", "-").Replace(ip)
	if domain == "" {
		return hostname, hostname
	}
	return hostname, hostname + "." + domain
}

// DHCPRanges are the --dhcp-range values for the server's IPv4 DHCP
// subnets: static (only hosts-file addresses are handed out), tagged
// set:subnet-<id> so the opts file's tags select them, with neutron's
// dhcp_lease_duration ("infinite" for -1).
func DHCPRanges(subnets []SubnetPlan, leaseSeconds int) []string {
	lease := strconv.Itoa(leaseSeconds) + "s"
	if leaseSeconds < 0 {
		lease = "infinite"
	}
	var out []string
	for _, s := range subnets {
		if s.IPVersion != 4 || !s.EnableDHCP {
			continue
		}
		_, n, err := net.ParseCIDR(s.CIDR)
		if err != nil {
			continue
		}
		out = append(out, fmt.Sprintf("set:%s%s,%s,static,%s,%s",
			subnetTagPrefix, s.SubnetID, n.IP, net.IP(n.Mask), lease))
	}
	return out
}
