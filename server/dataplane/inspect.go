package dataplane

import (
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"strings"

	"github.com/vishvananda/netlink"
)

// Read-only views of a namespace for the tracer and `lab status`, so that
// no other package speaks netlink or parses iptables-save. None of them
// changes anything; they work as well on a real neutron node's namespaces.

// LinkAddrs returns the addresses on a link inside ns, in CIDR notation,
// without the kernel's own IPv6 link-local /64.
func LinkAddrs(nsName, link string) ([]string, error) {
	n, err := openNS(nsName)
	if err != nil {
		return nil, err
	}
	defer n.Close()
	l, err := n.linkByName(link)
	if err != nil {
		return nil, err
	}
	if l == nil {
		return nil, fmt.Errorf("%s: no link %s", nsName, link)
	}
	addrs, err := n.h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("%s: addresses of %s: %w", nsName, link, err)
	}
	var out []string
	for _, a := range addrs {
		if !kernelLinkLocal(a) {
			out = append(out, a.IPNet.String())
		}
	}
	return out, nil
}

// RouteInfo is the kernel's answer to "how does this namespace reach dst".
type RouteInfo struct {
	Dev string // outgoing interface
	Via string // next hop, "" when on-link
	Src string // preferred source address
}

// RouteTo asks the kernel inside ns how it would reach dst (`ip route get`).
func RouteTo(nsName, dst string) (RouteInfo, error) {
	ip := net.ParseIP(dst)
	if ip == nil {
		return RouteInfo{}, fmt.Errorf("bad address %q", dst)
	}
	n, err := openNS(nsName)
	if err != nil {
		return RouteInfo{}, err
	}
	defer n.Close()
	rs, err := n.h.RouteGet(ip)
	if err != nil {
		return RouteInfo{}, fmt.Errorf("%s: route to %s: %w", nsName, dst, err)
	}
	if len(rs) == 0 {
		return RouteInfo{}, fmt.Errorf("%s: no route to %s", nsName, dst)
	}
	r := rs[0]
	var info RouteInfo
	if l, err := n.h.LinkByIndex(r.LinkIndex); err == nil {
		info.Dev = l.Attrs().Name
	}
	if r.Gw != nil {
		info.Via = r.Gw.String()
	}
	if r.Src != nil {
		info.Src = r.Src.String()
	}
	return info, nil
}

// SaveRules runs iptables-save (ip6tables-save for ipv6) inside ns and
// returns its rule lines ("-A …") per table, in order.
func SaveRules(nsName string, ipv6 bool) (map[string][]string, error) {
	bin := "iptables-save"
	if ipv6 {
		bin = "ip6tables-save"
	}
	var out, errb bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := RunIn(nsName, cmd); err != nil {
		return nil, fmt.Errorf("%s in %s: %w: %s", bin, nsName, err, strings.TrimSpace(errb.String()))
	}
	return parseSave(out.String()), nil
}

func parseSave(s string) map[string][]string {
	tables := map[string][]string{}
	table := ""
	for _, l := range strings.Split(s, "\n") {
		switch {
		case strings.HasPrefix(l, "*"):
			table = l[1:]
			if tables[table] == nil {
				tables[table] = []string{}
			}
		case strings.HasPrefix(l, "-A "):
			tables[table] = append(tables[table], l)
		}
	}
	return tables
}
