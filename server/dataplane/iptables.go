package dataplane

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// Neutron's l3 agent wraps its rules in chains named after itself; mdctl
// does the same, so `iptables-save` in a qrouter namespace reads like
// neutron's and the tracer can check either.
const (
	chainPrefix     = "neutron-l3-agent-"
	ChainPrerouting = chainPrefix + "PREROUTING"
	ChainInput      = chainPrefix + "INPUT"
	ChainForward    = chainPrefix + "FORWARD"
	ChainScope      = chainPrefix + "scope"

	metadataMark = "0x1/0xffff"
)

// chainRules is the complete content of one wrapped chain. Rules are written
// exactly as `iptables -S` prints them, so presence is a string comparison.
type chainRules struct {
	table, chain string
	rules        [][]string
}

// jump hooks a wrapped chain into a built-in one.
type jump struct{ table, from, to string }

// routerJumps are the same in both families and whatever the settings.
var routerJumps = []jump{
	{"mangle", "PREROUTING", ChainPrerouting},
	{"nat", "PREROUTING", ChainPrerouting},
	{"filter", "INPUT", ChainInput},
	{"filter", "FORWARD", ChainForward},
}

// RouterRules returns neutron's metadata rules for a router namespace (facts
// §5) for one address family, as `iptables -S` lines per table; the tracer
// compares them with what it finds. Without proxy (enable_metadata_proxy off)
// only the mark and the FORWARD-side drop remain.
func RouterRules(ipv6, proxy bool) map[string][]string {
	out := map[string][]string{}
	for _, j := range routerJumps {
		out[j.table] = append(out[j.table], fmt.Sprintf("-A %s -j %s", j.from, j.to))
	}
	for _, c := range routerChains(ipv6, proxy) {
		for _, r := range c.rules {
			out[c.table] = append(out[c.table], "-A "+c.chain+" "+strings.Join(r, " "))
		}
	}
	return out
}

func routerChains(ipv6, proxy bool) []chainRules {
	dst := MetadataIPv4 + "/32"
	if ipv6 {
		dst = MetadataIPv6 + "/128"
	}
	match := []string{"-d", dst, "-i", "qr-+", "-p", "tcp", "-m", "tcp", "--dport", "80"}
	with := func(tail ...string) []string { return append(append([]string{}, match...), tail...) }
	port := strconv.Itoa(RouterProxyPort)

	chains := []chainRules{
		{"mangle", ChainPrerouting, [][]string{with("-j", "MARK", "--set-xmark", metadataMark)}},
		{"filter", ChainForward, [][]string{{"-j", ChainScope}}},
		{"filter", ChainScope, [][]string{{"-m", "mark", "--mark", metadataMark, "-j", "DROP"}}},
		{"nat", ChainPrerouting, nil},
		{"filter", ChainInput, nil},
	}
	if proxy {
		chains[3].rules = [][]string{with("-j", "REDIRECT", "--to-ports", port)}
		chains[4].rules = [][]string{
			{"-m", "mark", "--mark", metadataMark, "-j", "ACCEPT"},
			{"-p", "tcp", "-m", "tcp", "--dport", port, "-j", "DROP"},
		}
	}
	return chains
}

// syncRouterRules makes the wrapped chains of one family hold exactly the
// wanted rules, in order. It must run inside the router namespace (Do):
// go-iptables runs the iptables binary, which inherits the thread's
// namespace. It reports how many chains it had to rewrite.
func syncRouterRules(ipt *iptables.IPTables, ipv6, want, proxy bool) (int, error) {
	chains := routerChains(ipv6, proxy)
	if !want {
		// The router lost its last subnet of this family: empty the chains
		// (if they exist) rather than leave stale rules.
		for i := range chains {
			chains[i].rules = nil
		}
	}
	changed := 0
	// Every chain exists before any rule jumps to one.
	present := map[string]bool{}
	for _, c := range chains {
		exists, err := ipt.ChainExists(c.table, c.chain)
		if err != nil {
			return changed, fmt.Errorf("%s %s: %w", c.table, c.chain, err)
		}
		if !exists && want {
			if err := ipt.NewChain(c.table, c.chain); err != nil {
				return changed, fmt.Errorf("create %s %s: %w", c.table, c.chain, err)
			}
			exists = true
		}
		present[c.table+"/"+c.chain] = exists
	}
	for _, c := range chains {
		if !present[c.table+"/"+c.chain] {
			continue
		}
		ok, err := chainHolds(ipt, c)
		if err != nil {
			return changed, err
		}
		if ok {
			continue
		}
		changed++
		if err := rewriteChain(ipt, c); err != nil {
			return changed, err
		}
	}
	if !want {
		return changed, nil
	}
	for _, j := range routerJumps {
		ok, err := ipt.Exists(j.table, j.from, "-j", j.to)
		if err != nil {
			return changed, fmt.Errorf("%s %s: check jump to %s: %w", j.table, j.from, j.to, err)
		}
		if !ok {
			changed++
			// First in the built-in chain, as neutron's wrapped chains are.
			if err := ipt.Insert(j.table, j.from, 1, "-j", j.to); err != nil {
				return changed, fmt.Errorf("%s %s: jump to %s: %w", j.table, j.from, j.to, err)
			}
		}
	}
	return changed, nil
}

// chainHolds compares the chain's `-S` listing with the wanted rules.
func chainHolds(ipt *iptables.IPTables, c chainRules) (bool, error) {
	have, err := ipt.List(c.table, c.chain)
	if err != nil {
		return false, fmt.Errorf("list %s %s: %w", c.table, c.chain, err)
	}
	var rules []string
	for _, h := range have {
		if strings.HasPrefix(h, "-A ") {
			rules = append(rules, h)
		}
	}
	if len(rules) != len(c.rules) {
		return false, nil
	}
	for i, r := range c.rules {
		if rules[i] != "-A "+c.chain+" "+strings.Join(r, " ") {
			return false, nil
		}
	}
	return true, nil
}

func rewriteChain(ipt *iptables.IPTables, c chainRules) error {
	if err := ipt.ClearChain(c.table, c.chain); err != nil {
		return fmt.Errorf("clear %s %s: %w", c.table, c.chain, err)
	}
	var errs error
	for _, r := range c.rules {
		if err := ipt.Append(c.table, c.chain, r...); err != nil {
			errs = errors.Join(errs, fmt.Errorf("%s %s: append %s: %w", c.table, c.chain, strings.Join(r, " "), err))
		}
	}
	return errs
}
