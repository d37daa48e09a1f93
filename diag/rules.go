package diag

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// packet is the metadata request as a router namespace's chains see it,
// for deciding which rules match it.
type packet struct {
	src, dst net.IP
	proto    string // "tcp"
	dport    int
	in       string // incoming interface
	mark     uint32 // skb mark at this point of the path
}

// rule is one `iptables -S` line taken apart.
type rule struct {
	line   string
	chain  string
	target string   // -j or -g; "" for none
	args   []string // target options (after -j X)
	goTo   bool
	crit   []criterion
}

// criterion is one match option of a rule.
type criterion struct {
	opt, val string
	neg      bool
}

// parseRule reads "-A CHAIN [criteria] -j TARGET [target options]".
func parseRule(line string) rule {
	toks := splitArgs(line)
	r := rule{line: line}
	neg := false
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t == "!":
			neg = true
			continue
		case t == "-A" && i+1 < len(toks):
			r.chain = toks[i+1]
			i++
		case (t == "-j" || t == "-g") && i+1 < len(toks):
			r.target, r.goTo, r.args = toks[i+1], t == "-g", toks[i+2:]
			return r
		case t == "-m" && i+1 < len(toks):
			i++ // the module's options follow as criteria
		case strings.HasPrefix(t, "-"):
			c := criterion{opt: t, neg: neg}
			if i+1 < len(toks) && !strings.HasPrefix(toks[i+1], "-") && toks[i+1] != "!" {
				c.val = toks[i+1]
				i++
			}
			r.crit = append(r.crit, c)
		}
		neg = false
	}
	return r
}

// splitArgs splits an iptables -S line, keeping "quoted strings" whole.
func splitArgs(s string) []string {
	var out []string
	var cur strings.Builder
	inQ, have := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && inQ && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			inQ, have = !inQ, true
		case c == ' ' && !inQ:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

// matches reports whether every criterion of r holds for p. sure is false
// when some criterion could not be judged (an unknown match); such a rule
// is counted as matching, since a tracer that misses a shadowing rule is
// worse than one that names a rule the operator then reads.
func (r rule) matches(p packet) (match, sure bool) {
	sure = true
	for _, c := range r.crit {
		ok, known := c.holds(p)
		if !known {
			sure = false
			continue
		}
		if ok == c.neg {
			return false, true
		}
	}
	return true, sure
}

// holds judges one criterion (ignoring negation). known is false for a
// match diag does not model.
func (c criterion) holds(p packet) (ok, known bool) {
	switch c.opt {
	case "-s", "--source":
		return inCIDR(p.src, c.val), true
	case "-d", "--destination":
		return inCIDR(p.dst, c.val), true
	case "-i", "--in-interface":
		return ifaceMatch(c.val, p.in), true
	case "-o", "--out-interface":
		return true, true // not set on the input path
	case "-p", "--protocol":
		v := strings.ToLower(c.val)
		return v == "all" || v == "0" || v == p.proto || (v == "6" && p.proto == "tcp"), true
	case "--dport", "--destination-port":
		return portIn(p.dport, c.val), true
	case "--dports", "--destination-ports":
		for _, part := range strings.Split(c.val, ",") {
			if portIn(p.dport, part) {
				return true, true
			}
		}
		return false, true
	case "--sport", "--source-port", "--sports", "--source-ports":
		return true, false // the guest's port is random: could be anything
	case "--mark":
		return markMatch(p.mark, c.val), true
	case "--comment", "--tcp-flags", "--syn":
		return true, true // comments match all; flags: the SYN does pass
	}
	return true, false
}

func inCIDR(ip net.IP, v string) bool {
	if ip == nil {
		return true
	}
	if !strings.Contains(v, "/") {
		if x := net.ParseIP(v); x != nil {
			return x.Equal(ip)
		}
	}
	_, n, err := net.ParseCIDR(v)
	return err == nil && n.Contains(ip)
}

// ifaceMatch is iptables' interface match: a trailing "+" is a prefix.
func ifaceMatch(pattern, name string) bool {
	if strings.HasSuffix(pattern, "+") {
		return strings.HasPrefix(name, strings.TrimSuffix(pattern, "+"))
	}
	return pattern == name
}

func portIn(port int, spec string) bool {
	lo, hi, found := strings.Cut(spec, ":")
	a, err := strconv.Atoi(lo)
	if err != nil {
		a = 0
	}
	if !found {
		return err == nil && a == port
	}
	b, err := strconv.Atoi(hi)
	if err != nil {
		b = 65535
	}
	return port >= a && port <= b
}

func markMatch(mark uint32, spec string) bool {
	v, m, found := strings.Cut(spec, "/")
	val, err := strconv.ParseUint(v, 0, 32)
	if err != nil {
		return true
	}
	mask := uint64(0xffffffff)
	if found {
		if mask, err = strconv.ParseUint(m, 0, 32); err != nil {
			return true
		}
	}
	return uint64(mark)&mask == val&mask
}

// terminal targets end a packet's walk through a table's chains; which
// ones shadow the metadata rules depends on the table.
var builtinTargets = map[string]bool{
	"ACCEPT": true, "DROP": true, "REJECT": true, "RETURN": true, "DNAT": true, "SNAT": true,
	"REDIRECT": true, "MASQUERADE": true, "NETMAP": true, "MARK": true, "CONNMARK": true,
	"LOG": true, "NFLOG": true, "TRACE": true, "CT": true, "NOTRACK": true, "CHECKSUM": true,
	"TCPMSS": true, "TOS": true, "DSCP": true, "TTL": true, "HL": true, "NFQUEUE": true, "AUDIT": true,
}

var builtinChains = map[string]bool{"PREROUTING": true, "INPUT": true, "FORWARD": true, "OUTPUT": true, "POSTROUTING": true}

// shadowing says whether a matching rule with this target stops the packet
// before mdctl's rule in a chain of table: for nat and mangle anything that
// ends the chain early (the packet is never redirected or marked), for
// filter anything that drops it.
func shadowing(table string, r rule, builtinChain bool) bool {
	switch table {
	case "filter":
		return r.target == "DROP" || r.target == "REJECT"
	case "nat":
		switch r.target {
		case "ACCEPT", "DROP", "REJECT", "DNAT", "SNAT", "NETMAP", "MASQUERADE":
			return true
		case "REDIRECT":
			return !strings.Contains(strings.Join(r.args, " "), "--to-ports 9697")
		case "RETURN":
			return builtinChain
		}
	case "mangle":
		switch r.target {
		case "ACCEPT", "DROP", "REJECT":
			return true
		case "RETURN":
			return builtinChain
		}
	}
	return false
}

// lister lists a chain's rules as `iptables -t table -S chain` prints them.
type lister func(table, chain string) ([]string, error)

// findShadow walks chain in table for p, in order, up to the first rule
// whose target is stop (mdctl's jump, or mdctl's own rule when stop is a
// whole line), descending into user chains it jumps to. It returns what
// stops the packet first, "" when nothing does, and whether stop was seen.
func findShadow(list lister, table, chain string, p packet, stop func(rule) bool, depth int) (finding string, reached bool, err error) {
	lines, err := list(table, chain)
	if err != nil {
		return "", false, err
	}
	builtin := builtinChains[chain]
	n := 0
	for _, l := range lines {
		if !strings.HasPrefix(l, "-A ") {
			continue
		}
		n++
		r := parseRule(l)
		if stop(r) {
			return "", true, nil
		}
		m, sure := r.matches(p)
		if !m {
			continue
		}
		may := ""
		if !sure {
			may = "may "
		}
		if r.target == "RETURN" && !builtin {
			return "", false, nil // back to the caller's chain: nothing here stops it
		}
		if shadowing(table, r, builtin) {
			return fmt.Sprintf("%s %s rule %d %s%s it first: %s", table, chain, n, may, verb(r.target), l), false, nil
		}
		if r.target != "" && !builtinTargets[r.target] && depth < 4 {
			f, _, err := findShadow(list, table, r.target, p, func(rule) bool { return false }, depth+1)
			if err != nil {
				continue // a chain we cannot list cannot be judged
			}
			if f != "" {
				return fmt.Sprintf("%s %s rule %d jumps to %s, where %s", table, chain, n, r.target, f), false, nil
			}
		}
	}
	return "", false, nil
}

func verb(target string) string {
	switch target {
	case "ACCEPT":
		return "ACCEPTs"
	case "RETURN":
		return "RETURNs"
	case "DROP", "REJECT":
		return "DROPs"
	case "DNAT", "SNAT", "NETMAP", "MASQUERADE":
		return "NATs (" + target + ")"
	case "REDIRECT":
		return "REDIRECTs"
	}
	return "stops"
}
