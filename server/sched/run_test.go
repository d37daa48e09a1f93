package sched

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/pgtest"
	"github.com/mdctl/mdctl/store"
)

// The scheduler against real stores, SQLite and PostgreSQL: what one
// pass binds, failover after agent_down_time, a comeback that takes
// nothing back, pins, and schedulers racing on several handles.

type backend struct {
	name  string
	fresh func(t *testing.T) string
}

func backends(t *testing.T) []backend {
	pg := pgtest.Start(t)
	return []backend{
		{"sqlite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "mdctl.db") }},
		{"postgres", func(t *testing.T) string { return pg.NewDB(t) }},
	}
}

func open(t *testing.T, url string) store.Store {
	t.Helper()
	s, err := store.Open("", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// world puts routers r0…r<routers-1> and DHCP networks n0…n<nets-1> in s.
func world(t *testing.T, s store.Store, routers, nets int) {
	t.Helper()
	ctx := context.Background()
	must(t, s.Update(ctx, func(tx store.Tx) error {
		for i := range routers {
			if err := tx.PutRouter(ctx, store.Router{ID: fmt.Sprintf("r%d", i), Name: fmt.Sprintf("router%d", i)}); err != nil {
				return err
			}
		}
		for i := range nets {
			id := fmt.Sprintf("n%d", i)
			if err := tx.PutNetwork(ctx, store.Network{ID: id}); err != nil {
				return err
			}
			if err := tx.PutSubnet(ctx, store.Subnet{ID: "s" + id, NetworkID: id, CIDR: fmt.Sprintf("10.90.%d.0/24", i), EnableDHCP: true}); err != nil {
				return err
			}
		}
		return nil
	}))
}

func scheduler(s store.Store, self string) *Scheduler {
	return &Scheduler{Store: s, Live: store.NewLive(s, nil), Self: self, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func register(t *testing.T, s store.Store, names ...string) {
	t.Helper()
	for _, n := range names {
		must(t, s.RegisterNode(context.Background(), store.Node{Name: n, Components: []string{store.ComponentProxy}}))
	}
}

// hostsOf maps each bound ID to its hosts.
func hostsOf(t *testing.T, s store.Store) (routers, nets map[string][]string) {
	t.Helper()
	ctx := context.Background()
	index := func(bs []store.Binding, err error) map[string][]string {
		must(t, err)
		m := map[string][]string{}
		for _, b := range bs {
			m[b.ID] = append(m[b.ID], b.Node)
		}
		return m
	}
	return index(s.RouterBindings(ctx)), index(s.NetworkBindings(ctx))
}

// ageOut waits (bounded) until dead's last heartbeat is past an
// agent_down_time of 1 s while alive keeps beating.
func ageOut(t *testing.T, s store.Store, dead, alive string) {
	t.Helper()
	ctx := context.Background()
	for range 100 {
		must(t, s.Heartbeat(ctx, alive))
		if n, _ := s.GetNode(ctx, dead); time.Since(n.HeartbeatAt) > 1200*time.Millisecond {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	must(t, s.Heartbeat(ctx, alive))
}

func TestSchedulerOnStores(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Run("FailoverAndComeback", func(t *testing.T) { testFailoverAndComeback(t, b) })
			t.Run("PinHonoured", func(t *testing.T) { testPinHonoured(t, b) })
			t.Run("ConcurrentSchedulers", func(t *testing.T) { testConcurrentSchedulers(t, b) })
		})
	}
}

// testFailoverAndComeback: two nodes share four routers and two networks;
// a stops heartbeating, and once its heartbeat is older than
// agent_down_time b's pass moves all of it to b; a heartbeating again
// takes nothing back, and passes on either side then move nothing.
func testFailoverAndComeback(t *testing.T, b backend) {
	ctx := context.Background()
	s := open(t, b.fresh(t))
	world(t, s, 4, 2)
	must(t, s.SetSetting(ctx, "agent_down_time", "1"))
	register(t, s, "a", "b")
	sa, sb := scheduler(s, "a"), scheduler(s, "b")
	moves, err := sa.Pass(ctx)
	must(t, err)
	if len(moves) != 6 {
		t.Fatalf("first pass moved %d, want 6 (4 routers, 2 networks): %+v", len(moves), moves)
	}
	routers, nets := hostsOf(t, s)
	count := map[string]int{}
	for _, h := range routers {
		count[h[0]]++
	}
	if count["a"] != 2 || count["b"] != 2 || len(nets["n0"]) != 1 || len(nets["n1"]) != 1 || nets["n0"][0] == nets["n1"][0] {
		t.Fatalf("not spread: routers %v, networks %v", routers, nets)
	}
	g0, err := s.Generation(ctx)
	must(t, err)
	if moves, _ := sb.Pass(ctx); len(moves) != 0 {
		t.Errorf("a second pass moved %+v", moves)
	}
	if g, _ := s.Generation(ctx); g != g0 {
		t.Errorf("a pass that moved nothing moved the generation %d → %d", g0, g)
	}

	// a goes silent; b keeps beating until a is past agent_down_time.
	ageOut(t, s, "a", "b")
	moves, err = sb.Pass(ctx)
	must(t, err)
	if len(moves) != 3 {
		t.Errorf("failover moved %d, want a's 3 (2 routers, 1 network): %+v", len(moves), moves)
	}
	routers, nets = hostsOf(t, s)
	for id, h := range routers {
		if !slices.Equal(h, []string{"b"}) {
			t.Errorf("after failover router %s on %v", id, h)
		}
	}
	for id, h := range nets {
		if !slices.Equal(h, []string{"b"}) {
			t.Errorf("after failover network %s on %v", id, h)
		}
	}
	if g, _ := s.Generation(ctx); g != g0+1 {
		t.Errorf("failover moved the generation %d → %d, want one step (one transaction)", g0, g)
	}

	// a comes back: it takes nothing back, whoever passes.
	must(t, s.Heartbeat(ctx, "a"))
	for _, sc := range []*Scheduler{sa, sb, sa} {
		if moves, err := sc.Pass(ctx); err != nil || len(moves) != 0 {
			t.Errorf("after a's comeback %s's pass moved %+v (%v)", sc.Self, moves, err)
		}
	}
	// A new router goes to a, now the least loaded.
	must(t, s.PutRouter(ctx, store.Router{ID: "r9"}))
	moves, err = sb.Pass(ctx)
	must(t, err)
	if len(moves) != 1 || !slices.Equal(moves[0].To, []string{"a"}) {
		t.Errorf("new router after the comeback: %+v, want it on a", moves)
	}
}

// testPinHonoured: a pinned router goes to its pin, leaves it for nothing
// (not even the pin's death), and an unpinned one fails over.
func testPinHonoured(t *testing.T, b backend) {
	ctx := context.Background()
	s := open(t, b.fresh(t))
	world(t, s, 2, 0)
	must(t, s.SetSetting(ctx, "agent_down_time", "1"))
	register(t, s, "a", "b")
	must(t, s.PutRouter(ctx, store.Router{ID: "r0", Name: "router0", Node: "a"}))
	must(t, s.SetRouterHosts(ctx, "r1", []string{"a"}))
	sb := scheduler(s, "b")
	_, err := sb.Pass(ctx)
	must(t, err)
	if routers, _ := hostsOf(t, s); !slices.Equal(routers["r0"], []string{"a"}) {
		t.Errorf("pinned router on %v, want a", routers["r0"])
	}
	ageOut(t, s, "a", "b")
	_, err = sb.Pass(ctx)
	must(t, err)
	routers, _ := hostsOf(t, s)
	if !slices.Equal(routers["r0"], []string{"a"}) || !slices.Equal(routers["r1"], []string{"b"}) {
		t.Errorf("a dead: r0 on %v (pinned to a), r1 on %v (want b)", routers["r0"], routers["r1"])
	}
	// Re-pinned to b: it moves at the next pass.
	must(t, s.PutRouter(ctx, store.Router{ID: "r0", Name: "router0", Node: "b"}))
	_, err = sb.Pass(ctx)
	must(t, err)
	if routers, _ := hostsOf(t, s); !slices.Equal(routers["r0"], []string{"b"}) {
		t.Errorf("re-pinned router on %v, want b", routers["r0"])
	}
}

// testConcurrentSchedulers: a scheduler per node, half of them on another
// handle (another host's pool), all passing at once over unbound routers
// and networks: every router ends on exactly one node, every network on
// dhcp_agents_per_network, each bound once (the moves of all passes add up
// to one per record), spread evenly.
func testConcurrentSchedulers(t *testing.T, b backend) {
	ctx := context.Background()
	url := b.fresh(t)
	s1, s2 := open(t, url), open(t, url)
	const routers, nets, nodes = 12, 6, 4
	world(t, s1, routers, nets)
	must(t, s1.SetSetting(ctx, "dhcp_agents_per_network", "2"))
	var names []string
	for i := range nodes {
		names = append(names, fmt.Sprintf("node%d", i))
	}
	register(t, s1, names...)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for round := range 3 {
		for i, n := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				moves, err := scheduler([]store.Store{s1, s2}[i%2], n).Pass(ctx)
				if err != nil {
					t.Errorf("round %d: %s's pass: %v", round, n, err)
				}
				mu.Lock()
				total += len(moves)
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	if total != routers+nets {
		t.Errorf("%d moves over all passes, want %d: something was bound twice or not at all", total, routers+nets)
	}
	rb, nb := hostsOf(t, s2)
	load := map[string]int{}
	for id, h := range rb {
		if len(h) != 1 {
			t.Errorf("router %s on %v", id, h)
		}
		load[h[0]]++
	}
	if len(rb) != routers {
		t.Errorf("%d of %d routers bound", len(rb), routers)
	}
	for _, n := range names {
		if load[n] != routers/nodes {
			t.Errorf("router loads %v, want %d each", load, routers/nodes)
			break
		}
	}
	for i := range nets {
		if h := nb[fmt.Sprintf("n%d", i)]; len(h) != 2 || h[0] == h[1] {
			t.Errorf("network n%d on %v, want 2 nodes", i, h)
		}
	}
}
