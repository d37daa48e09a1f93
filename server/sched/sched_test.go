package sched

import (
	"reflect"
	"testing"
	"time"

	"github.com/mdctl/mdctl/store"
)

var t0 = time.Date(2026, 12, 4, 5, 0, 0, 0, time.UTC)

// node is a node running comps whose last heartbeat was age ago.
func node(name string, age time.Duration, comps ...string) store.Node {
	if comps == nil {
		comps = []string{store.ComponentAgent, store.ComponentProxy}
	}
	return store.Node{Name: name, Components: comps, HeartbeatAt: t0.Add(-age)}
}

func routers(ids ...string) []store.Router {
	var out []store.Router
	for _, id := range ids {
		out = append(out, store.Router{ID: id})
	}
	return out
}

func bind(pairs ...string) []store.Binding {
	var out []store.Binding
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, store.Binding{ID: pairs[i], Node: pairs[i+1]})
	}
	return out
}

// moved is a Move without its reason, for comparing.
type moved struct {
	Kind, ID string
	From, To []string
}

func TestPlan(t *testing.T) {
	const down = 75 * time.Second
	alive, dead := time.Second, 2*down
	tests := []struct {
		name string
		in   Input
		want []moved
	}{
		{
			name: "one node hosts everything",
			in:   Input{Nodes: []store.Node{node("a", alive)}, Routers: routers("r1", "r2"), DHCPNetworks: []string{"n1"}},
			want: []moved{
				{KindRouter, "r1", []string{}, []string{"a"}},
				{KindRouter, "r2", []string{}, []string{"a"}},
				{KindNetwork, "n1", []string{}, []string{"a"}},
			},
		},
		{
			name: "least routers first, by name among equals",
			in: Input{Nodes: []store.Node{node("b", alive), node("a", alive), node("c", alive)},
				Routers: routers("r1", "r2", "r3", "r4"), RouterBindings: bind("r1", "a")},
			want: []moved{
				{KindRouter, "r2", []string{}, []string{"b"}},
				{KindRouter, "r3", []string{}, []string{"c"}},
				{KindRouter, "r4", []string{}, []string{"a"}},
			},
		},
		{
			name: "only live nodes running the proxy are candidates",
			in: Input{Nodes: []store.Node{node("api", alive, store.ComponentAPI), node("gone", dead), node("net", alive)},
				Routers: routers("r1"), DHCPNetworks: []string{"n1"}},
			want: []moved{
				{KindRouter, "r1", []string{}, []string{"net"}},
				{KindNetwork, "n1", []string{}, []string{"net"}},
			},
		},
		{
			name: "hosted on a live node: nothing moves",
			in: Input{Nodes: []store.Node{node("a", alive), node("b", alive)}, Routers: routers("r1", "r2"),
				RouterBindings: bind("r1", "a", "r2", "a"), DHCPNetworks: []string{"n1"}, NetworkBindings: bind("n1", "a")},
		},
		{
			name: "failover: a dead node's routers and networks go to the least loaded live node",
			in: Input{Nodes: []store.Node{node("a", dead), node("b", alive), node("c", alive)},
				Routers: routers("r1", "r2", "r3"), RouterBindings: bind("r1", "a", "r2", "a", "r3", "b"),
				DHCPNetworks: []string{"n1"}, NetworkBindings: bind("n1", "a")},
			want: []moved{
				{KindRouter, "r1", []string{"a"}, []string{"c"}},
				{KindRouter, "r2", []string{"a"}, []string{"b"}},
				{KindNetwork, "n1", []string{"a"}, []string{"b"}},
			},
		},
		{
			name: "comeback: a node alive again takes nothing back",
			in: Input{Nodes: []store.Node{node("a", alive), node("b", alive)}, Routers: routers("r1", "r2"),
				RouterBindings: bind("r1", "b", "r2", "b"), DHCPNetworks: []string{"n1"}, NetworkBindings: bind("n1", "b")},
		},
		{
			name: "no live node: bindings stand",
			in: Input{Nodes: []store.Node{node("a", dead)}, Routers: routers("r1", "r2"), RouterBindings: bind("r1", "a"),
				DHCPNetworks: []string{"n1"}, NetworkBindings: bind("n1", "a")},
		},
		{
			name: "a pin holds, even to a dead node, and moves a router bound elsewhere",
			in: Input{Nodes: []store.Node{node("a", dead), node("b", alive)},
				Routers:        []store.Router{{ID: "r1", Node: "a"}, {ID: "r2", Node: "b"}, {ID: "r3", Node: "nobody"}},
				RouterBindings: bind("r1", "a", "r2", "a", "r3", "b")},
			want: []moved{
				{KindRouter, "r2", []string{"a"}, []string{"b"}},
				{KindRouter, "r3", []string{"b"}, []string{}},
			},
		},
		{
			name: "a pinned router counts in the load",
			in: Input{Nodes: []store.Node{node("a", alive), node("b", alive)},
				Routers: []store.Router{{ID: "r1", Node: "a"}, {ID: "r2"}}},
			want: []moved{
				{KindRouter, "r1", []string{}, []string{"a"}},
				{KindRouter, "r2", []string{}, []string{"b"}},
			},
		},
		{
			name: "a host that stopped running the proxy loses its routers",
			in: Input{Nodes: []store.Node{node("a", alive, store.ComponentAPI), node("b", alive)},
				Routers: routers("r1"), RouterBindings: bind("r1", "a")},
			want: []moved{{KindRouter, "r1", []string{"a"}, []string{"b"}}},
		},
		{
			name: "dhcp_agents_per_network hosts per network, spread by load",
			in: Input{Nodes: []store.Node{node("a", alive), node("b", alive), node("c", alive)}, PerNetwork: 2,
				DHCPNetworks: []string{"n1", "n2"}, NetworkBindings: bind("n1", "a")},
			want: []moved{
				{KindNetwork, "n1", []string{"a"}, []string{"a", "b"}},
				{KindNetwork, "n2", []string{}, []string{"a", "c"}},
			},
		},
		{
			name: "more hosts wanted than live nodes: as many as there are; a dead one is replaced",
			in: Input{Nodes: []store.Node{node("a", alive), node("b", dead)}, PerNetwork: 3,
				DHCPNetworks: []string{"n1"}, NetworkBindings: bind("n1", "a", "n1", "b")},
			want: []moved{{KindNetwork, "n1", []string{"a", "b"}, []string{"a"}}},
		},
		{
			name: "dhcp_agents_per_network lowered: extra hosts go",
			in: Input{Nodes: []store.Node{node("a", alive), node("b", alive)}, PerNetwork: 1,
				DHCPNetworks: []string{"n1"}, NetworkBindings: bind("n1", "a", "n1", "b")},
			want: []moved{{KindNetwork, "n1", []string{"a", "b"}, []string{"a"}}},
		},
		{
			name: "a network without DHCP loses its hosts",
			in:   Input{Nodes: []store.Node{node("a", alive)}, NetworkBindings: bind("n1", "a")},
			want: []moved{{KindNetwork, "n1", []string{"a"}, []string{}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Now, tt.in.DownTime = t0, down
			var got []moved
			for _, m := range Plan(tt.in) {
				if m.Reason == "" {
					t.Errorf("move %+v has no reason", m)
				}
				got = append(got, moved{m.Kind, m.ID, m.From, m.To})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Plan:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestPlanLost: only a host that can no longer host counts as lost (the
// failover logged as a warning), not a first binding, a pin or a lowered
// dhcp_agents_per_network.
func TestPlanLost(t *testing.T) {
	const down = 75 * time.Second
	alive, dead := time.Second, 2*down
	pinned := routers("r1")
	pinned[0].Node = "b"
	tests := []struct {
		name string
		in   Input
		want []string
	}{
		{"first binding", Input{Nodes: []store.Node{node("a", alive)}, Routers: routers("r1")}, nil},
		{"host down", Input{Nodes: []store.Node{node("a", alive), node("b", dead)}, Routers: routers("r1"),
			RouterBindings: bind("r1", "b")}, []string{"b"}},
		{"host gone", Input{Nodes: []store.Node{node("a", alive)}, Routers: routers("r1"),
			RouterBindings: bind("r1", "b")}, []string{"b"}},
		{"pinned off a live host", Input{Nodes: []store.Node{node("a", alive), node("b", alive)}, Routers: pinned,
			RouterBindings: bind("r1", "a")}, nil},
		{"dhcp_agents_per_network lowered", Input{Nodes: []store.Node{node("a", alive), node("b", alive)}, PerNetwork: 1,
			DHCPNetworks: []string{"n1"}, NetworkBindings: bind("n1", "a", "n1", "b")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Now, tt.in.DownTime = t0, down
			moves := Plan(tt.in)
			if len(moves) != 1 {
				t.Fatalf("Plan: %+v, want one move", moves)
			}
			if !reflect.DeepEqual(moves[0].Lost, tt.want) {
				t.Errorf("Lost %v, want %v (move %+v)", moves[0].Lost, tt.want, moves[0])
			}
		})
	}
}

// TestPlanSettles: applying a plan's moves and planning again moves
// nothing, whatever the start (no flapping between passes).
func TestPlanSettles(t *testing.T) {
	in := Input{Now: t0, DownTime: time.Minute, PerNetwork: 2,
		Nodes:          []store.Node{node("a", 2*time.Minute), node("b", time.Second), node("c", time.Second), node("d", time.Second)},
		Routers:        []store.Router{{ID: "r1"}, {ID: "r2"}, {ID: "r3", Node: "d"}, {ID: "r4"}, {ID: "r5"}},
		RouterBindings: bind("r1", "a", "r2", "a", "r4", "b"), DHCPNetworks: []string{"n1", "n2", "n3"},
		NetworkBindings: bind("n1", "a", "n2", "b", "n2", "c", "n9", "b")}
	for pass := range 3 {
		moves := Plan(in)
		if pass > 0 && len(moves) > 0 {
			t.Fatalf("pass %d moved again: %+v", pass, moves)
		}
		in.RouterBindings, in.NetworkBindings = apply(in.RouterBindings, moves, KindRouter), apply(in.NetworkBindings, moves, KindNetwork)
	}
	load := map[string]int{}
	for _, b := range in.RouterBindings {
		load[b.Node]++
	}
	if load["a"] != 0 || load["b"] != 2 || load["c"] != 2 || load["d"] != 1 {
		t.Errorf("router loads %v, want a:0 b:2 c:2 d:1", load)
	}
}

func apply(bs []store.Binding, moves []Move, kind string) []store.Binding {
	for _, m := range moves {
		if m.Kind != kind {
			continue
		}
		var keep []store.Binding
		for _, b := range bs {
			if b.ID != m.ID {
				keep = append(keep, b)
			}
		}
		for _, n := range m.To {
			keep = append(keep, store.Binding{ID: m.ID, Node: n})
		}
		bs = keep
	}
	return bs
}
