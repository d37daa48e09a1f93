package diag

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mdctl/mdctl/server/dataplane"
)

// fixHint is the repair mdctl can do itself.
func (t *target) fixHint() string { return "mdctl trace " + t.instanceName() + " --fix" }

// wantHop is the next hop the guest's metadata route should use: DHCP
// option 121's, or on a routed subnet without mdctl's DHCP the gateway.
func (t *target) wantHop() string {
	if t.subnet.MetadataHop == "" && t.mode == ModeRouter {
		return t.subnet.GatewayIP
	}
	return t.subnet.MetadataHop
}

// wantLine says where the guest's metadata route should lead, and why.
func (t *target) wantLine() string {
	via, how := "the router's gateway", "DHCP option 121"
	if t.mode == ModeDHCP {
		via = "the DHCP port"
	}
	if !t.subnet.EnableDHCP {
		how = "the guest's default route: mdctl runs no DHCP on this subnet"
	}
	return fmt.Sprintf("want 169.254.169.254 via %s (%s, %s)", t.wantHop(), via, how)
}

func checkRoute(ctx context.Context, o Options, t *target) Hop {
	if t.mode == ModeNone {
		h := Hop{Detail: "no route to 169.254.169.254 is handed out: " + t.why}
		switch {
		case !t.subnet.EnableDHCP && t.subnet.SubnetID != "":
			h.settingHint("enable DHCP on subnet " + t.subnet.SubnetID + " (enable_dhcp: true in the topology, then mdctl apply), or give the instance a config drive: mdctl config set force_config_drive true")
		case t.net.DHCP.Problem != "":
			h.Hint = "give network " + t.port.NetworkID + " a DHCP port (mdctl apply the topology again)"
		default:
			h.settingHint("mdctl config set enable_isolated_metadata true (or mdctl config set force_metadata true), then renew the guest's DHCP lease")
		}
		return h
	}
	want := t.wantHop()
	via := "the router's gateway"
	if t.mode == ModeDHCP {
		via = "the DHCP port"
	}
	wantLine := t.wantLine()
	if t.guestNS == "" {
		return checkRouteOutside(ctx, o, t)
	}
	h := Hop{Evidence: []string{"guest namespace " + t.guestNS, wantLine}}
	if src := guestSource(t.guestNS); src != "" && src != t.ip {
		// The agent sees the address the guest really sends from.
		h.Evidence = append(h.Evidence, fmt.Sprintf("the guest's %s holds %s, the store gives its port %s: probing as %s", dataplane.GuestInterface, src, t.ip, src))
		t.ip = src
	}
	routes, _ := guestRoutes(t.guestNS)
	h.Evidence = append(h.Evidence, routes...)
	fixRoute := fmt.Sprintf("ip netns exec %s ip route replace 169.254.169.254/32 via %s dev %s (a real VM: renew its DHCP lease; it must honour option 121); or mdctl lab up",
		t.guestNS, want, dataplane.GuestInterface)
	got, err := dataplane.RouteTo(t.guestNS, dataplane.MetadataIPv4)
	if err != nil {
		h.Detail = "the guest has no route to 169.254.169.254: " + rootCause(err)
		h.Hint = fixRoute
		return h
	}
	h.Evidence = append(h.Evidence, fmt.Sprintf("route get 169.254.169.254: via %q dev %s src %s", got.Via, got.Dev, got.Src))
	switch {
	case got.Via == "":
		cover := coveringRoute(routes)
		h.Detail = fmt.Sprintf("169.254.169.254 is on-link on %s (%s): the guest ARPs for it and nobody answers", got.Dev, cover)
		h.Hint = fmt.Sprintf("ip netns exec %s ip route del %s; %s", t.guestNS, cover, fixRoute)
	case got.Via != want:
		h.Detail = fmt.Sprintf("169.254.169.254 goes via %s, not %s (%s)", got.Via, want, via)
		h.Hint = fixRoute
	default:
		h.OK = true
		h.Detail = fmt.Sprintf("169.254.169.254 via %s dev %s (%s)", got.Via, got.Dev, via)
	}
	return h
}

// guestSource is the guest's IPv4 address on its NIC, "" when unknown.
func guestSource(ns string) string {
	addrs, err := dataplane.LinkAddrs(ns, dataplane.GuestInterface)
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if ip, _, err := net.ParseCIDR(a); err == nil && ip.To4() != nil {
			return ip.String()
		}
	}
	return ""
}

// guestRoutes lists the guest's IPv4 routes as `ip route` would.
func guestRoutes(ns string) ([]string, error) {
	var out []string
	err := dataplane.Do(ns, func() error {
		rs, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range rs {
			dst := "default"
			if r.Dst != nil {
				dst = r.Dst.String()
			}
			line := dst
			if r.Gw != nil {
				line += " via " + r.Gw.String()
			}
			if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
				line += " dev " + l.Attrs().Name
			}
			if r.Scope == netlink.SCOPE_LINK {
				line += " scope link"
			}
			out = append(out, "route: "+line)
		}
		return nil
	})
	return out, err
}

// coveringRoute names the most specific route listed that holds
// 169.254.169.254 (the one the kernel picked when it found no next hop).
func coveringRoute(routes []string) string {
	best, bestLen := "an on-link route", -1
	meta := net.ParseIP(dataplane.MetadataIPv4)
	for _, r := range routes {
		f := strings.Fields(strings.TrimPrefix(r, "route: "))
		if len(f) == 0 {
			continue
		}
		_, n, err := net.ParseCIDR(f[0])
		if err != nil || !n.Contains(meta) {
			continue
		}
		if ones, _ := n.Mask.Size(); ones > bestLen {
			best, bestLen = strings.Join(f[:min(len(f), 3)], " "), ones
		}
	}
	return best
}

func rootCause(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

// expectedInterface is the mode's interface in its namespace.
func (t *target) expectedInterface() (dataplane.Interface, bool) {
	switch {
	case t.mode == ModeRouter && t.router != nil:
		return t.rif, true
	case t.mode == ModeDHCP && t.dhcp != nil:
		return t.dhcp.Interface, true
	}
	return dataplane.Interface{}, false
}

func skipped(why string) Hop {
	return Hop{Skipped: true, Detail: "not checked: " + why}
}

// nsMissing says why the namespace hops cannot run, "" when they can.
func (t *target) nsMissing() string {
	ns := t.namespace()
	switch {
	case t.mode == ModeNone:
		return "no namespace serves metadata for this network: it has neither a router nor a metadata-serving DHCP port"
	case ns == "":
		return "the plan has no " + t.mode + " namespace for this network"
	}
	if ok, _ := dataplane.NamespaceExists(ns); !ok {
		return ns + " does not exist"
	}
	return ""
}

func checkNamespace(ctx context.Context, o Options, t *target) Hop {
	ns := t.namespace()
	if t.mode == ModeNone || ns == "" {
		return skipped(t.nsMissingOr("no metadata namespace"))
	}
	ifc, _ := t.expectedInterface()
	h := Hop{Evidence: []string{"namespace " + ns, "want " + ifc.Name + " " + strings.Join(ifc.Addrs, ",") + " up"}}
	if ok, err := dataplane.NamespaceExists(ns); err != nil || !ok {
		h.Detail = ns + " does not exist"
		h.Hint = t.fixHint() + " (re-applies the data plane); or restart serve: " + restartHint() + " (mdctl serve re-applies on start)"
		return h
	}
	var up bool
	var ifErr error
	_ = dataplane.Do(ns, func() error {
		i, err := net.InterfaceByName(ifc.Name)
		if err != nil {
			ifErr = err
			return nil
		}
		up = i.Flags&net.FlagUp != 0
		return nil
	})
	if ifErr != nil {
		h.Detail = fmt.Sprintf("%s has no interface %s", ns, ifc.Name)
		h.Hint = t.fixHint() + "; see ip netns exec " + ns + " ip -br addr"
		return h
	}
	addrs, err := dataplane.LinkAddrs(ns, ifc.Name)
	if err != nil {
		h.Detail = fmt.Sprintf("%s: read addresses of %s: %v", ns, ifc.Name, err)
		h.Hint = "ip netns exec " + ns + " ip -br addr"
		return h
	}
	h.Evidence = append(h.Evidence, fmt.Sprintf("%s up=%v addrs %s", ifc.Name, up, strings.Join(addrs, ",")))
	var missing []string
	for _, a := range ifc.Addrs {
		if !containsAddr(addrs, a) {
			missing = append(missing, a)
		}
	}
	switch {
	case len(missing) > 0:
		h.Detail = fmt.Sprintf("%s in %s lacks %s", ifc.Name, ns, strings.Join(missing, ", "))
		h.Hint = t.fixHint() + "; or ip netns exec " + ns + " ip addr add " + missing[0] + " dev " + ifc.Name
	case !up:
		h.Detail = fmt.Sprintf("%s in %s is down", ifc.Name, ns)
		h.Hint = "ip netns exec " + ns + " ip link set " + ifc.Name + " up; or " + t.fixHint()
	default:
		h.OK = true
		h.Detail = fmt.Sprintf("%s holds %s %s, up", ns, ifc.Name, strings.Join(ifc.Addrs, ","))
	}
	return h
}

func (t *target) nsMissingOr(def string) string {
	if m := t.nsMissing(); m != "" {
		return m
	}
	return def
}

func containsAddr(have []string, want string) bool {
	w, err := netlink.ParseAddr(want)
	if err != nil {
		return false
	}
	for _, h := range have {
		if a, err := netlink.ParseAddr(h); err == nil && a.IPNet.String() == w.IPNet.String() {
			return true
		}
	}
	return false
}

func checkIPTables(ctx context.Context, o Options, t *target) Hop {
	if m := t.nsMissing(); m != "" {
		return skipped(m)
	}
	if t.mode == ModeDHCP {
		return checkDHCPAddrs(t)
	}
	return checkRouterRules(ctx, t)
}

// checkDHCPAddrs: in DHCP mode the proxy answers on 169.254.169.254 held
// by the DHCP port itself (and fe80::a9fe:a9fe with IPv6).
func checkDHCPAddrs(t *target) Hop {
	ns, ifc := t.dhcp.Namespace, t.dhcp.Interface.Name
	addrs, err := dataplane.LinkAddrs(ns, ifc)
	h := Hop{Evidence: []string{fmt.Sprintf("%s %s addrs %s", ns, ifc, strings.Join(addrs, ","))}}
	if err != nil {
		h.Detail = fmt.Sprintf("%s: cannot read %s: %v", ns, ifc, err)
		h.Hint = t.fixHint()
		return h
	}
	var missing []string
	for _, a := range t.dhcp.MetadataAddrs {
		if !containsAddr(addrs, a) {
			missing = append(missing, a)
		}
	}
	if len(missing) > 0 {
		h.Detail = fmt.Sprintf("%s on %s in %s is missing: the proxy has no address to answer on", strings.Join(missing, ", "), ifc, ns)
		h.Hint = fmt.Sprintf("ip netns exec %s ip addr add %s dev %s; or %s", ns, missing[0], ifc, t.fixHint())
		return h
	}
	h.OK = true
	h.Detail = fmt.Sprintf("%s holds %s", ifc, strings.Join(t.dhcp.MetadataAddrs, ", "))
	return h
}

// checkRouterRules compares the router namespace's rules with neutron's
// (dataplane.RouterRules) and looks for anything ahead of them that keeps
// the request from being marked, redirected or accepted.
func checkRouterRules(ctx context.Context, t *target) Hop {
	rt := t.router
	ns := rt.Namespace
	h := Hop{}
	if !rt.MetadataProxy {
		h.Detail = "enable_metadata_proxy is off: router namespaces get no REDIRECT to a proxy"
		h.settingHint("mdctl config set enable_metadata_proxy true")
		return h
	}
	families := []bool{false}
	if rt.IPv6Rules() {
		families = append(families, true)
	}
	type result struct {
		problems, evidence []string
	}
	done := make(chan result, 1)
	go func() {
		var res result
		for _, v6 := range families {
			ps, ev, err := routerFamily(ns, t, v6)
			res.evidence = append(res.evidence, ev...)
			if err != nil {
				res.problems = append(res.problems, err.Error())
			}
			res.problems = append(res.problems, ps...)
		}
		done <- res
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		// iptables waits for the xtables lock; a holder that never lets
		// go must not hang the trace.
		h.Detail = "iptables did not answer in " + ns + " in time (is another process holding the xtables lock?)"
		h.Hint = "ip netns exec " + ns + " iptables -t nat -S; look for a stuck iptables process"
		return h
	}
	h.Evidence = append(h.Evidence, res.evidence...)
	if problems := res.problems; len(problems) > 0 {
		h.Detail = problems[0]
		if len(problems) > 1 {
			h.Detail += fmt.Sprintf(" (and %d more)", len(problems)-1)
		}
		h.Evidence = append(h.Evidence, problems...)
		bin := "iptables"
		if strings.HasPrefix(problems[0], "ip6tables") {
			bin = "ip6tables"
		}
		h.Hint = iptablesHint(problems[0], bin, ns, t.fixHint())
		return h
	}
	h.OK = true
	h.Detail = "metadata rules present (mangle MARK, nat REDIRECT :9697, filter INPUT/FORWARD), nothing ahead of them"
	if rt.IPv6Rules() {
		h.Detail += "; IPv6 too"
	}
	return h
}

// routerFamily checks one address family inside ns.
func routerFamily(ns string, t *target, v6 bool) (problems, evidence []string, err error) {
	fam := "iptables"
	proto := iptables.ProtocolIPv4
	if v6 {
		fam, proto = "ip6tables", iptables.ProtocolIPv6
	}
	want := dataplane.RouterRules(v6, true)
	err = dataplane.Do(ns, func() error {
		ipt, err := iptables.NewWithProtocol(proto)
		if err != nil {
			return fmt.Errorf("%s: %w", fam, err)
		}
		cache := map[string][]string{}
		list := func(table, chain string) ([]string, error) {
			k := table + "/" + chain
			if l, ok := cache[k]; ok {
				return l, nil
			}
			l, err := ipt.List(table, chain)
			if err != nil {
				return nil, fmt.Errorf("%s -t %s -S %s: %w", fam, table, chain, err)
			}
			cache[k] = l
			return l, nil
		}
		for _, table := range []string{"mangle", "nat", "filter"} {
			for _, w := range want[table] {
				chain := parseRule(w).chain
				have, err := list(table, chain)
				if err != nil || !containsLine(have, w) {
					problems = append(problems, fmt.Sprintf("%s -t %s: missing %s", fam, table, w))
				}
			}
		}
		problems = append(problems, shadows(list, fam, t, v6)...)
		for _, c := range []string{"mangle/PREROUTING", "nat/PREROUTING", "nat/" + dataplane.ChainPrerouting} {
			table, chain, _ := strings.Cut(c, "/")
			if l, err := list(table, chain); err == nil {
				for _, x := range l {
					if strings.HasPrefix(x, "-A ") {
						evidence = append(evidence, fam+" -t "+table+": "+x)
					}
				}
			}
		}
		return nil
	})
	return problems, evidence, err
}

// shadowRef finds "<table> <chain> rule <n>" in a finding; the last one
// is the rule that stops the packet (after any jumps that led to it).
var shadowRef = regexp.MustCompile(`(mangle|nat|filter) (\S+) rule (\d+) `)

// iptablesHint: a foreign rule ahead of mdctl's gets its exact delete
// command (mdctl does not own it, so Fix leaves it); missing rules are
// Fix's to rewrite.
func iptablesHint(problem, bin, ns, fix string) string {
	if m := shadowRef.FindAllStringSubmatch(problem, -1); len(m) > 0 {
		last := m[len(m)-1]
		return fmt.Sprintf("if that rule is not needed: ip netns exec %s %s -t %s -D %s %s (mdctl does not own it; --fix leaves it); inspect: ip netns exec %s %s -t %s -S %s",
			ns, bin, last[1], last[2], last[3], ns, bin, last[1], last[2])
	}
	table := "nat"
	for _, tb := range []string{"mangle", "filter"} {
		if strings.Contains(problem, " -t "+tb+":") {
			table = tb
		}
	}
	return fmt.Sprintf("%s (rewrites mdctl's rules); inspect: ip netns exec %s %s -t %s -S", fix, ns, bin, table)
}

func containsLine(have []string, want string) bool {
	for _, h := range have {
		if h == want {
			return true
		}
	}
	return false
}

// shadows walks the built-in chains to mdctl's jumps and mdctl's chains to
// its rules, for the guest's request and for the redirected one.
func shadows(list lister, fam string, t *target, v6 bool) []string {
	meta, src := net.ParseIP(dataplane.MetadataIPv4), net.ParseIP(t.ip)
	if v6 {
		meta, src = net.ParseIP(dataplane.MetadataIPv6), nil
	}
	guestPkt := packet{src: src, dst: meta, proto: "tcp", dport: 80, in: t.rif.Name}
	var local net.IP
	for _, a := range t.rif.Addrs {
		if ip, _, err := net.ParseCIDR(a); err == nil && (ip.To4() == nil) == v6 {
			local = ip
		}
	}
	redirected := packet{src: src, dst: local, proto: "tcp", dport: dataplane.RouterProxyPort, in: t.rif.Name, mark: 1}
	jumpTo := func(chain string) func(rule) bool {
		return func(r rule) bool { return r.target == chain }
	}
	isRedirect := func(r rule) bool { return r.target == "REDIRECT" }
	isMark := func(r rule) bool { return r.target == "MARK" }
	walks := []struct {
		table, chain string
		p            packet
		stop         func(rule) bool
	}{
		{"mangle", "PREROUTING", guestPkt, jumpTo(dataplane.ChainPrerouting)},
		{"mangle", dataplane.ChainPrerouting, guestPkt, isMark},
		{"nat", "PREROUTING", withMark(guestPkt, 1), jumpTo(dataplane.ChainPrerouting)},
		{"nat", dataplane.ChainPrerouting, withMark(guestPkt, 1), isRedirect},
		{"filter", "INPUT", redirected, jumpTo(dataplane.ChainInput)},
	}
	var out []string
	for _, w := range walks {
		f, _, err := findShadow(list, w.table, w.chain, w.p, w.stop, 0)
		if err != nil {
			continue // the chain is missing: reported as missing rules already
		}
		if f != "" {
			out = append(out, fam+" "+f+" (ahead of mdctl's metadata rule)")
		}
	}
	return out
}

func withMark(p packet, m uint32) packet { p.mark = m; return p }

func checkProxy(ctx context.Context, o Options, t *target) Hop {
	if m := t.nsMissing(); m != "" {
		return skipped(m)
	}
	ns := t.namespace()
	addr := "127.0.0.1:" + strconv.Itoa(dataplane.RouterProxyPort)
	where := "0.0.0.0:9697"
	if t.mode == ModeDHCP {
		addr = net.JoinHostPort(dataplane.MetadataIPv4, strconv.Itoa(dataplane.DHCPProxyPort))
		where = addr
	}
	rid := requestID()
	h := Hop{RequestIDs: []string{rid}, Evidence: []string{"connect " + addr + " in " + ns}}
	status, server, err := probeHTTP(ctx, ns, addr, rid)
	if err != nil {
		h.Evidence = append(h.Evidence, err.Error())
		switch {
		case errors.Is(err, unix.ECONNREFUSED):
			h.Detail = fmt.Sprintf("nothing listens on %s in %s (connection refused)", where, ns)
			h.Hint = startHint("proxy") + "; serve re-opens a lost listener within one poll"
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			h.Detail = fmt.Sprintf("no answer from %s in %s within %v", where, ns, o.Timeout)
			h.Hint = "something drops or holds the connection: ip netns exec " + ns + " iptables -S INPUT; if the proxy hangs, restart serve (" + restartHint() + ")"
		default:
			h.Detail = fmt.Sprintf("probe of %s in %s failed: %s", where, ns, rootCause(err))
			h.Hint = "ip netns exec " + ns + " ip -br addr; " + t.fixHint()
		}
		return h
	}
	h.OK = true
	h.Detail = fmt.Sprintf("a proxy answers on %s in %s (HTTP %d%s)", where, ns, status, server)
	return h
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// probeHTTP connects to addr inside ns and sends one request. In a router
// namespace the connection carries neutron's metadata mark (0x1), as a
// redirected guest request does, so the INPUT rule that drops unmarked
// traffic to 9697 lets it through.
func probeHTTP(ctx context.Context, ns, addr, rid string) (status int, note string, err error) {
	var c net.Conn
	err = dataplane.Do(ns, func() error {
		d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, 1)
			}); err != nil {
				return err
			}
			return serr
		}}
		var err error
		c, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	req := "GET / HTTP/1.1\r\nHost: " + dataplane.MetadataIPv4 + "\r\nUser-Agent: mdctl-trace\r\nX-Request-ID: " + rid + "\r\nConnection: close\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		return 0, "", fmt.Errorf("send probe: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", fmt.Errorf("read answer: %w", err)
	}
	resp.Body.Close()
	if s := resp.Header.Get("Server"); s != "" {
		note = ", server " + s
	}
	return resp.StatusCode, note, nil
}
