package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// The contract cases of nodes and bindings (issue 15), run on both
// backends by TestContract.

// contractNodesRegistry: a node registers (an upsert), reads back as
// registered, heartbeats, and goes with DeleteNode.
func contractNodesRegistry(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	started := time.Date(2026, 12, 4, 4, 0, 0, 0, time.UTC)
	n := Node{Name: "net-1", Components: []string{ComponentProxy, ComponentAgent, ComponentAPI},
		AdminURL: "http://10.90.0.1:9100", AdminSocket: "/run/mdctl/admin.sock", Version: "v1", StartedAt: started}
	before := time.Now()
	must(t, s.RegisterNode(ctx, n))
	got, err := s.GetNode(ctx, "net-1")
	must(t, err)
	if want := []string{"agent", "api", "proxy"}; !slices.Equal(got.Components, want) {
		t.Errorf("components %v, want %v (sorted)", got.Components, want)
	}
	if got.AdminURL != n.AdminURL || got.AdminSocket != n.AdminSocket || got.Version != "v1" || !got.StartedAt.Equal(started) {
		t.Errorf("GetNode = %+v, registered %+v", got, n)
	}
	if got.HeartbeatAt.Before(before.Add(-time.Second)) || !got.Alive(time.Now(), time.Minute) {
		t.Errorf("heartbeat %v at registration (before %v): not alive", got.HeartbeatAt, before)
	}
	if got.Alive(got.HeartbeatAt.Add(2*time.Second), 2*time.Second) {
		t.Error("alive agent_down_time after its heartbeat")
	}

	// Registering again replaces the row (a restart with other components).
	n.Components, n.AdminURL = []string{ComponentAPI}, ""
	must(t, s.RegisterNode(ctx, n))
	must(t, s.RegisterNode(ctx, Node{Name: "api-1", Components: []string{ComponentAPI}}))
	nodes, err := s.ListNodes(ctx)
	must(t, err)
	if len(nodes) != 2 || nodes[0].Name != "api-1" || nodes[1].Name != "net-1" {
		t.Fatalf("ListNodes = %+v, want api-1, net-1", nodes)
	}
	if !slices.Equal(nodes[1].Components, []string{"api"}) || nodes[1].AdminURL != "" {
		t.Errorf("re-registered node %+v", nodes[1])
	}
	if nodes[0].StartedAt.IsZero() || nodes[0].Components == nil {
		t.Errorf("node registered without a start time or components: %+v", nodes[0])
	}

	hb := nodes[1].HeartbeatAt
	for range 100 { // the clock must move past the stored stamp
		if time.Now().After(hb) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	must(t, s.Heartbeat(ctx, "net-1"))
	got, err = s.GetNode(ctx, "net-1")
	must(t, err)
	if !got.HeartbeatAt.After(hb) {
		t.Errorf("heartbeat %v not after %v", got.HeartbeatAt, hb)
	}
	if err := s.Heartbeat(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("heartbeat of an unregistered node: %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"", "has space", "-lead", "a/b"} {
		if err := s.RegisterNode(ctx, Node{Name: bad}); err == nil {
			t.Errorf("RegisterNode(%q) accepted", bad)
		}
	}

	must(t, s.DeleteNode(ctx, "net-1"))
	if _, err := s.GetNode(ctx, "net-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted node: %v, want ErrNotFound", err)
	}
	if err := s.DeleteNode(ctx, "net-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
}

// contractNodesLeaveGenerationAlone: registering and heartbeats change
// nothing served: another handle's generation stays where it was.
func contractNodesLeaveGenerationAlone(t *testing.T, b backend) {
	ctx := context.Background()
	url := b.fresh(t)
	a, c := b.openURL(t, url), b.openURL(t, url)
	fixture(t, a)
	g0, err := a.Generation(ctx)
	must(t, err)
	must(t, a.RegisterNode(ctx, Node{Name: "n-a", Components: []string{ComponentProxy}}))
	must(t, c.RegisterNode(ctx, Node{Name: "n-c"}))
	for range 3 {
		must(t, a.Heartbeat(ctx, "n-a"))
		must(t, c.Heartbeat(ctx, "n-c"))
	}
	must(t, a.Update(ctx, func(tx Tx) error { return tx.Heartbeat(ctx, "n-a") }))
	// A later write shows none of the above moved the counter.
	must(t, a.PutNetwork(ctx, Network{ID: "n9"}))
	waitGeneration(t, c, g0+1)
	for _, s := range []Store{a, c} {
		if g, _ := s.Generation(ctx); g != g0+1 {
			t.Errorf("generation %d, want %d: node writes moved it", g, g0+1)
		}
	}
}

// contractHeartbeatTakesNoWriterLock: a heartbeat goes through while
// another handle holds a write transaction open (PostgreSQL's writers
// queue on the counters row; a heartbeat must not). SQLite has one writer
// per database, whatever the statement.
func contractHeartbeatTakesNoWriterLock(t *testing.T, b backend) {
	if b.name == "sqlite" {
		t.Skip("SQLite serialises every write on its one write lock")
	}
	ctx := context.Background()
	url := b.fresh(t)
	a, c := b.openURL(t, url), b.openURL(t, url)
	must(t, a.RegisterNode(ctx, Node{Name: "n-a"}))
	inside, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- a.Update(ctx, func(tx Tx) error {
			if err := tx.PutNetwork(ctx, Network{ID: "held"}); err != nil {
				return err
			}
			close(inside)
			// Hold the writer lock until the heartbeat went through (or
			// the bound below gave up on it).
			hctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			return c.Heartbeat(hctx, "n-a")
		})
	}()
	<-inside
	if err := <-done; err != nil {
		t.Fatalf("heartbeat under another writer's lock: %v", err)
	}
}

// contractBindings: routers and DHCP networks bound to nodes, as the
// scheduler does; a change moves the generation, the same binding again
// does not; deleting the router, network or node takes its bindings.
func contractBindings(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	fixture(t, s)
	for _, n := range []string{"n-a", "n-b", "n-c"} {
		must(t, s.RegisterNode(ctx, Node{Name: n, Components: []string{ComponentProxy}}))
	}
	hosts := func(get func(context.Context, string) ([]string, error), id string) []string {
		t.Helper()
		h, err := get(ctx, id)
		must(t, err)
		return h
	}
	if h := hosts(s.RouterHosts, "r1"); h == nil || len(h) != 0 {
		t.Errorf("unbound router's hosts %#v, want []", h)
	}
	g0, err := s.Generation(ctx)
	must(t, err)
	must(t, s.SetRouterHosts(ctx, "r1", []string{"n-a"}))
	must(t, s.SetNetworkHosts(ctx, "n1", []string{"n-b", "n-a"}))
	if g, _ := s.Generation(ctx); g != g0+2 {
		t.Errorf("generation %d after two binding changes from %d", g, g0)
	}
	must(t, s.SetRouterHosts(ctx, "r1", []string{"n-a"}))
	must(t, s.SetNetworkHosts(ctx, "n1", []string{"n-a", "n-b"}))
	if g, _ := s.Generation(ctx); g != g0+2 {
		t.Errorf("generation %d: rebinding to the same nodes moved it", g)
	}
	if h := hosts(s.RouterHosts, "r1"); !slices.Equal(h, []string{"n-a"}) {
		t.Errorf("RouterHosts = %v", h)
	}
	if h := hosts(s.NetworkHosts, "n1"); !slices.Equal(h, []string{"n-a", "n-b"}) {
		t.Errorf("NetworkHosts = %v", h)
	}
	must(t, s.SetNetworkHosts(ctx, "n1", []string{"n-c", "n-b"}))
	if h := hosts(s.NetworkHosts, "n1"); !slices.Equal(h, []string{"n-b", "n-c"}) {
		t.Errorf("NetworkHosts after a move = %v", h)
	}
	must(t, s.SetNetworkHosts(ctx, "n2", []string{"n-a"}))
	nb, err := s.NetworkBindings(ctx)
	must(t, err)
	if want := []Binding{{"n1", "n-b"}, {"n1", "n-c"}, {"n2", "n-a"}}; !slices.Equal(nb, want) {
		t.Errorf("NetworkBindings = %v, want %v", nb, want)
	}

	for name, err := range map[string]error{
		"two hosts for a router": s.SetRouterHosts(ctx, "r1", []string{"n-a", "n-b"}),
		"a node twice":           s.SetNetworkHosts(ctx, "n1", []string{"n-a", "n-a"}),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := s.SetRouterHosts(ctx, "r1", []string{"nobody"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("bind to an unregistered node: %v, want ErrNotFound", err)
	}
	if err := s.SetRouterHosts(ctx, "r-none", []string{"n-a"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("bind an unknown router: %v, want ErrNotFound", err)
	}
	if h := hosts(s.RouterHosts, "r1"); !slices.Equal(h, []string{"n-a"}) {
		t.Errorf("a refused bind changed the binding: %v", h)
	}

	must(t, s.SetRouterHosts(ctx, "r1", nil))
	if rb, _ := s.RouterBindings(ctx); len(rb) != 0 {
		t.Errorf("unbound router still bound: %v", rb)
	}
	must(t, s.SetRouterHosts(ctx, "r1", []string{"n-b"}))
	must(t, s.DeleteRouter(ctx, "r1"))
	if rb, _ := s.RouterBindings(ctx); len(rb) != 0 {
		t.Errorf("deleted router still bound: %v", rb)
	}
	must(t, s.DeleteNetwork(ctx, "n2"))
	g1, _ := s.Generation(ctx)
	must(t, s.DeleteNode(ctx, "n-c"))
	if h := hosts(s.NetworkHosts, "n1"); !slices.Equal(h, []string{"n-b"}) {
		t.Errorf("NetworkHosts after deleting node n-c = %v", h)
	}
	if g, _ := s.Generation(ctx); g != g1+1 {
		t.Errorf("deleting a hosting node moved the generation from %d to %d, want one step", g1, g)
	}
	g2, _ := s.Generation(ctx)
	must(t, s.DeleteNode(ctx, "n-a")) // hosts nothing now
	if g, _ := s.Generation(ctx); g != g2 {
		t.Errorf("deleting a node hosting nothing moved the generation from %d to %d", g2, g)
	}
}

// contractRouterPin: a router's pin reads back, changes like any field,
// and must be a node name.
func contractRouterPin(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	fixture(t, s)
	r, err := s.GetRouter(ctx, "router1")
	must(t, err)
	if r.Node != "" {
		t.Errorf("new router pinned to %q", r.Node)
	}
	g0, _ := s.Generation(ctx)
	r.Node = "net-2"
	must(t, s.PutRouter(ctx, r))
	got, err := s.GetRouter(ctx, "r1")
	must(t, err)
	if got.Node != "net-2" {
		t.Errorf("pin %q, want net-2", got.Node)
	}
	if g, _ := s.Generation(ctx); g != g0+1 {
		t.Errorf("pinning moved the generation %d → %d, want one step", g0, g)
	}
	r.Node = "not a name"
	if err := s.PutRouter(ctx, r); err == nil {
		t.Error("pin to a bad node name accepted")
	}
}

// contractConcurrentBinding: schedulers on two handles (two hosts) each
// bind an unbound router to their own node in one Update, checking first:
// the writer lock and the binding's primary key leave exactly one binding,
// and every racer either bound it or found it bound (or lost on the key).
func contractConcurrentBinding(t *testing.T, b backend) {
	ctx := context.Background()
	url := b.fresh(t)
	a, c := b.openURL(t, url), b.openURL(t, url)
	fixture(t, a)
	const racers = 8
	for i := range racers {
		must(t, a.RegisterNode(ctx, Node{Name: fmt.Sprintf("n%d", i), Components: []string{ComponentProxy}}))
	}
	for round := range 5 {
		must(t, a.SetRouterHosts(ctx, "r1", nil))
		var wg sync.WaitGroup
		errs := make([]error, racers)
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = []Store{a, c}[i%2].Update(ctx, func(tx Tx) error {
					h, err := tx.RouterHosts(ctx, "r1")
					if err != nil || len(h) > 0 {
						return err
					}
					return tx.SetRouterHosts(ctx, "r1", []string{fmt.Sprintf("n%d", i)})
				})
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil && !errors.Is(err, ErrConflict) {
				t.Errorf("round %d: racer: %v", round, err)
			}
		}
		rb, err := c.RouterBindings(ctx)
		must(t, err)
		if len(rb) != 1 {
			t.Errorf("round %d: router bound %d times: %v", round, len(rb), rb)
		}
	}
}
