// Package sched places routers and DHCP networks on nodes, as neutron's
// l3 and DHCP schedulers do: each router on one live node running the
// proxy component, the least loaded one (LeastRoutersScheduler), each
// DHCP network on dhcp_agents_per_network of them; a pinned router on its
// pin. Bindings on a node whose heartbeat is older than agent_down_time
// move to live nodes (allow_automatic_l3agent_failover, the DHCP agents'
// network rescheduling); a node that comes back takes nothing back, so
// two nodes never fight over a router.
//
// Plan is a pure function of what the store holds; Scheduler (run.go)
// reads the store, plans, and writes the moves in one transaction that
// holds against schedulers on other hosts.
package sched

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/mdctl/mdctl/store"
)

// Input is what a scheduling pass decides from.
type Input struct {
	Now      time.Time
	DownTime time.Duration // agent_down_time
	// PerNetwork is dhcp_agents_per_network.
	PerNetwork int
	Nodes      []store.Node
	Routers    []store.Router // with their pins (Router.Node)
	// DHCPNetworks are the networks that need DHCP hosts: those with a
	// DHCP-enabled subnet (neutron schedules no others).
	DHCPNetworks    []string
	RouterBindings  []store.Binding
	NetworkBindings []store.Binding
}

// Kinds of Move.
const (
	KindRouter  = "router"
	KindNetwork = "network"
)

// Move changes one router's or network's hosts.
type Move struct {
	Kind   string   // KindRouter or KindNetwork
	ID     string   // the router's or network's
	From   []string // hosts before, sorted
	To     []string // hosts after, sorted ([] unbinds)
	Reason string   // for the log: "unbound", "node n1 is down", "pinned to n2"
	// Lost are the former hosts dropped because they can no longer host
	// (down, gone, without the proxy): a failover, which operators want
	// to hear of louder than a first binding or a pin.
	Lost []string
}

// lost is those of cur that are not in to and can no longer host.
func lost(cur, to []string, candidate func(string) bool) []string {
	var l []string
	for _, n := range cur {
		if !slices.Contains(to, n) && !candidate(n) {
			l = append(l, n)
		}
	}
	return l
}

// Plan returns the moves that bring the bindings in line with in, routers
// first, each kind in ID order. No moves: the bindings stand.
func Plan(in Input) []Move {
	nodes := map[string]store.Node{}
	for _, n := range in.Nodes {
		nodes[n.Name] = n
	}
	candidate := func(name string) bool {
		n, ok := nodes[name]
		return ok && n.Runs(store.ComponentProxy) && n.Alive(in.Now, in.DownTime)
	}
	var live []string
	for _, n := range in.Nodes {
		if candidate(n.Name) {
			live = append(live, n.Name)
		}
	}
	slices.Sort(live)
	var moves []Move
	moves = append(moves, planRouters(in, nodes, live, candidate)...)
	moves = append(moves, planNetworks(in, nodes, live, candidate)...)
	return moves
}

// hostsByID indexes bindings: ID → sorted hosts.
func hostsByID(bs []store.Binding) map[string][]string {
	m := map[string][]string{}
	for _, b := range bs {
		m[b.ID] = append(m[b.ID], b.Node)
	}
	for id := range m {
		slices.Sort(m[id])
	}
	return m
}

// loads counts each live node's bindings of one kind.
func loads(bs []store.Binding, live []string) map[string]int {
	l := make(map[string]int, len(live))
	for _, n := range live {
		l[n] = 0
	}
	for _, b := range bs {
		if _, ok := l[b.Node]; ok {
			l[b.Node]++
		}
	}
	return l
}

// leastLoaded is the live node with the fewest bindings not in skip, by
// name among equals; "" when there is none.
func leastLoaded(live []string, load map[string]int, skip []string) string {
	best := ""
	for _, n := range live {
		if slices.Contains(skip, n) {
			continue
		}
		if best == "" || load[n] < load[best] {
			best = n
		}
	}
	return best
}

func planRouters(in Input, nodes map[string]store.Node, live []string, candidate func(string) bool) []Move {
	hosts := hostsByID(in.RouterBindings)
	load := loads(in.RouterBindings, live)
	// Pinned routers first, so that the load the others are spread by
	// counts them; then in ID order.
	routers := slices.SortedFunc(slices.Values(in.Routers), func(a, b store.Router) int {
		pinned := func(r store.Router) int {
			if r.Node != "" {
				return 0
			}
			return 1
		}
		return cmp.Or(cmp.Compare(pinned(a), pinned(b)), cmp.Compare(a.ID, b.ID))
	})
	var moves []Move
	for _, r := range routers {
		cur := hosts[r.ID]
		var to []string
		var reason string
		switch {
		case r.Node != "":
			// A pin holds whatever its node's state: the operator chose it.
			// A pin to a node never registered cannot be bound yet.
			if _, ok := nodes[r.Node]; ok {
				to = []string{r.Node}
			}
			reason = "pinned to " + r.Node
		case len(cur) == 1 && candidate(cur[0]):
			continue // hosted, and its host is alive: it stays (no fighting)
		default:
			n := leastLoaded(live, load, nil)
			if n == "" {
				continue // nowhere to go: the binding stands until a node is
			}
			to, reason = []string{n}, whyMove(in, cur, nodes)
		}
		if slices.Equal(cur, to) || (len(cur) == 0 && len(to) == 0) {
			continue
		}
		for _, n := range cur {
			if _, ok := load[n]; ok {
				load[n]--
			}
		}
		for _, n := range to {
			if _, ok := load[n]; ok {
				load[n]++
			}
		}
		moves = append(moves, Move{Kind: KindRouter, ID: r.ID, From: orEmpty(cur), To: orEmpty(to), Reason: reason,
			Lost: lost(cur, to, candidate)})
	}
	// Bindings of routers that are gone go with their routers (the
	// store's cascade): nothing to move.
	slices.SortFunc(moves, func(a, b Move) int { return cmp.Compare(a.ID, b.ID) })
	return moves
}

func planNetworks(in Input, nodes map[string]store.Node, live []string, candidate func(string) bool) []Move {
	hosts := hostsByID(in.NetworkBindings)
	load := loads(in.NetworkBindings, live)
	want := max(in.PerNetwork, 1)
	needs := map[string]bool{}
	for _, id := range in.DHCPNetworks {
		needs[id] = true
	}
	set := maps.Clone(needs)
	for id := range hosts {
		set[id] = true
	}
	ids := slices.Sorted(maps.Keys(set))
	var moves []Move
	for _, id := range ids {
		cur := hosts[id]
		var to []string
		reason := "no DHCP-enabled subnet"
		if needs[id] {
			to, reason = networkHosts(cur, want, live, load, candidate, func() string { return whyMove(in, cur, nodes) })
		}
		if slices.Equal(cur, to) {
			continue
		}
		for _, n := range cur {
			if _, ok := load[n]; ok && !slices.Contains(to, n) {
				load[n]--
			}
		}
		moves = append(moves, Move{Kind: KindNetwork, ID: id, From: orEmpty(cur), To: orEmpty(to), Reason: reason,
			Lost: lost(cur, to, candidate)})
	}
	return moves
}

// networkHosts keeps a network's live hosts (up to want) and adds the
// least loaded live nodes until it has want (updating load). With no live
// node at all it keeps the hosts it has: the bindings stand until one is.
func networkHosts(cur []string, want int, live []string, load map[string]int, candidate func(string) bool,
	why func() string) ([]string, string) {
	var to []string
	for _, n := range cur {
		if candidate(n) && len(to) < want {
			to = append(to, n)
		}
	}
	for len(to) < want {
		n := leastLoaded(live, load, to)
		if n == "" {
			break
		}
		load[n]++
		to = append(to, n)
	}
	if len(to) == 0 {
		return cur, ""
	}
	slices.Sort(to)
	return to, why()
}

// whyMove says why hosts cur are being replaced, for the log.
func whyMove(in Input, cur []string, nodes map[string]store.Node) string {
	if len(cur) == 0 {
		return "unbound"
	}
	for _, n := range cur {
		node, ok := nodes[n]
		switch {
		case !ok:
			return "node " + n + " is not registered"
		case !node.Runs(store.ComponentProxy):
			return "node " + n + " does not run the proxy component"
		case !node.Alive(in.Now, in.DownTime):
			return fmt.Sprintf("node %s is down: last heartbeat %s ago, agent_down_time %s",
				n, in.Now.Sub(node.HeartbeatAt).Round(time.Second), in.DownTime)
		}
	}
	return "dhcp_agents_per_network changed"
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
