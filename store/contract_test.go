package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/pgtest"
)

// backend is one Store implementation under the contract suite: fresh
// names a new, empty store (a URL for Open) and handles open it.
type backend struct {
	name  string
	fresh func(t testing.TB) string
}

// open opens a fresh store, closed in t.Cleanup.
func (b backend) open(t testing.TB) Store { return b.openURL(t, b.fresh(t)) }

// openURL opens another handle on the store at url, as another process or
// host would.
func (b backend) openURL(t testing.TB, url string) Store {
	t.Helper()
	s, err := Open("", url)
	if err != nil {
		t.Fatalf("open %s store: %v", b.name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// contract is the suite both backends pass, each case on a fresh store.
var contract = []struct {
	name string
	fn   func(t *testing.T, b backend)
}{
	{"ProjectsNetworksRoutersCRUD", contractProjectsNetworksRoutersCRUD},
	{"SubnetsCRUD", contractSubnetsCRUD},
	{"InstancesCRUD", contractInstancesCRUD},
	{"NameUniqueness", contractNameUniqueness},
	{"PortsAndAddresses", contractPortsAndAddresses},
	{"ListPorts", contractListPorts},
	{"InstanceView", contractInstanceView},
	{"Cascades", contractCascades},
	{"Passwords", contractPasswords},
	{"Settings", contractSettings},
	{"UpdateRollsBack", contractUpdateRollsBack},
	{"GenerationBumps", contractGenerationBumps},
	{"ErrorsNameTheRecord", contractErrorsNameTheRecord},
	{"ReopenMigrated", contractReopenMigrated},
	{"OpenNewConcurrently", contractOpenNewConcurrently},
	{"ConcurrentWriters", contractConcurrentWriters},
	{"ConcurrentUniqueness", contractConcurrentUniqueness},
	{"ConstraintsBackTheRules", contractConstraintsBackTheRules},
	{"ChangeSeenByOtherHandle", contractChangeSeenByOtherHandle},
	{"LiveFollowsOtherHandle", contractLiveFollowsOtherHandle},
	{"ChangedWakesOtherHandle", contractChangedWakesOtherHandle},
	{"NodesRegistry", contractNodesRegistry},
	{"NodesLeaveGenerationAlone", contractNodesLeaveGenerationAlone},
	{"HeartbeatTakesNoWriterLock", contractHeartbeatTakesNoWriterLock},
	{"Bindings", contractBindings},
	{"RouterPin", contractRouterPin},
	{"ConcurrentBinding", contractConcurrentBinding},
}

// TestContract runs the contract suite on SQLite (a temp file per case)
// and on PostgreSQL (a database per case on a server of this test's own).
func TestContract(t *testing.T) {
	backends := []struct {
		name  string
		start func(t *testing.T) func(testing.TB) string
	}{
		{"sqlite", func(*testing.T) func(testing.TB) string {
			return func(t testing.TB) string { return "sqlite://" + filepath.Join(t.TempDir(), "mdctl.db") }
		}},
		{"postgres", func(t *testing.T) func(testing.TB) string {
			c := pgtest.Start(t)
			return c.NewDB
		}},
	}
	for _, bk := range backends {
		t.Run(bk.name, func(t *testing.T) {
			b := backend{name: bk.name, fresh: bk.start(t)}
			for _, c := range contract {
				t.Run(c.name, func(t *testing.T) { c.fn(t, b) })
			}
		})
	}
}

// contractReopenMigrated: a second open of a migrated store applies
// nothing again and sees the data.
func contractReopenMigrated(t *testing.T, b backend) {
	ctx := context.Background()
	url := b.fresh(t)
	s := b.openURL(t, url)
	fixture(t, s)
	for range 2 {
		s2 := b.openURL(t, url)
		if _, err := s2.GetInstance(ctx, "vm1"); err != nil {
			t.Fatalf("reopened store: %v", err)
		}
	}
}

// contractOpenNewConcurrently: processes opening one new store at once
// apply each migration once, and all of them open.
func contractOpenNewConcurrently(t *testing.T, b backend) {
	ctx := context.Background()
	url := b.fresh(t)
	const n = 6
	var wg sync.WaitGroup
	handles := make([]Store, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			handles[i], errs[i] = Open("", url)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("open %d: %v", i, err)
			continue
		}
		t.Cleanup(func() { handles[i].Close() })
	}
	if t.Failed() {
		return
	}
	s := handles[0].(sqlBacked).base()
	files, err := fs.Glob(s.d.migrations, path.Join(s.d.migrationDir, "*.sql"))
	must(t, err)
	var applied int
	must(t, s.pools().rdb.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&applied))
	if applied != len(files) {
		t.Errorf("%d migrations recorded, %d files", applied, len(files))
	}
	must(t, handles[n-1].PutNetwork(ctx, Network{ID: "n1"}))
}

// contractConcurrentWriters: two handles (two processes' or hosts' worth
// of pools) writing at once wait for each other; every write commits and
// bumps the generation once.
func contractConcurrentWriters(t *testing.T, b backend) {
	ctx := context.Background()
	url := b.fresh(t)
	a, c := b.openURL(t, url), b.openURL(t, url)
	g0, err := a.Generation(ctx)
	must(t, err)
	const workers, writes = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers*writes)
	for h, s := range []Store{a, c} {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range writes {
					id := fmt.Sprintf("h%d-w%d-%d", h, w, i)
					errs <- s.Update(ctx, func(tx Tx) error {
						if err := tx.PutNetwork(ctx, Network{ID: id, Name: id}); err != nil {
							return err
						}
						_, err := tx.GetNetwork(ctx, id)
						return err
					})
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent write: %v", err)
		}
	}
	ns, err := c.ListNetworks(ctx)
	must(t, err)
	if len(ns) != 2*workers*writes {
		t.Errorf("%d networks, want %d", len(ns), 2*workers*writes)
	}
	// The writer's own handle knows its commits at once.
	if g, _ := a.Generation(ctx); g < g0+workers*writes {
		t.Errorf("generation %d after %d own writes from %d", g, workers*writes, g0)
	}
	waitGeneration(t, a, g0+2*workers*writes)
}

// contractConcurrentUniqueness: writers on two handles racing for one
// name, one address or the next EC2 id: exactly one wins each name and
// address, the rest get ErrConflict, and no EC2 id is handed out twice.
func contractConcurrentUniqueness(t *testing.T, b backend) {
	ctx := context.Background()
	url := b.fresh(t)
	a, c := b.openURL(t, url), b.openURL(t, url)
	fixture(t, a)
	const racers = 8
	race := func(put func(s Store, i int) error) (won int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, racers)
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = put([]Store{a, c}[i%2], i)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrConflict):
				t.Errorf("racer: %v, want nil or ErrConflict", err)
			}
		}
		return won
	}
	if won := race(func(s Store, i int) error {
		return s.PutNetwork(ctx, Network{ID: fmt.Sprintf("race-n%d", i), Name: "contested"})
	}); won != 1 {
		t.Errorf("%d networks won the name, want 1", won)
	}
	if won := race(func(s Store, i int) error {
		return s.PutPort(ctx, Port{ID: fmt.Sprintf("race-p%d", i), NetworkID: "n1",
			FixedIPs: []FixedIP{{SubnetID: "s1", IPAddress: "10.90.1.77"}}})
	}); won != 1 {
		t.Errorf("%d ports won the address, want 1", won)
	}
	if won := race(func(s Store, i int) error {
		return s.PutPort(ctx, Port{ID: fmt.Sprintf("race-m%d", i), NetworkID: "n2", MACAddress: "fa:16:3e:77:77:77"})
	}); won != 1 {
		t.Errorf("%d ports won the MAC, want 1", won)
	}
	if won := race(func(s Store, i int) error {
		return s.PutInstance(ctx, Instance{ID: fmt.Sprintf("race-i%d", i)})
	}); won != racers {
		t.Errorf("%d of %d instances created", won, racers)
	}
	insts, err := c.ListInstances(ctx)
	must(t, err)
	seen := map[int64]string{}
	for _, i := range insts {
		if other, dup := seen[i.EC2ID]; dup {
			t.Errorf("ec2 id %d given to %s and %s", i.EC2ID, other, i.ID)
		}
		seen[i.EC2ID] = i.ID
	}
}

// contractConstraintsBackTheRules: the schema itself refuses what the
// rules refuse, as ErrConflict, for a writer that skips the record layer's
// checks (another version of mdctl, say, or a hand-written INSERT).
func contractConstraintsBackTheRules(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	fixture(t, s)
	for _, c := range []struct {
		name string
		stmt string
		args []any
	}{
		{"network name", `INSERT INTO networks (id, name, project_id, mtu, created_at, updated_at) VALUES (?, ?, '', 0, 0, 0)`, []any{"n9", "net1"}},
		{"project name", `INSERT INTO projects (id, name) VALUES (?, ?)`, []any{"p9", "demo"}},
		{"router name", `INSERT INTO routers (id, name, project_id, created_at, updated_at) VALUES (?, ?, '', 0, 0)`, []any{"r9", "router1"}},
		{"mac on a network", `INSERT INTO ports (id, network_id, project_id, mac_address, device_id, device_owner, created_at)
			VALUES (?, 'n1', '', ?, '', '', 0)`, []any{"x9", "fa:16:3e:00:00:01"}},
		{"address on a network", `INSERT INTO fixed_ips (port_id, pos, network_id, subnet_id, ip_address) VALUES (?, 1, 'n1', 's1', ?)`, []any{"dp1", "10.90.1.10"}},
		{"ec2 id", `UPDATE instances SET ec2_id = ? WHERE id = ?`, []any{99, "i1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "ec2 id" {
				must(t, s.PutInstance(ctx, Instance{ID: "i9", EC2ID: 99}))
			}
			err := s.Update(ctx, func(tx Tx) error {
				st := tx.(*sqlTx)
				_, err := st.q.ExecContext(ctx, c.stmt, c.args...)
				return st.mapErr(err)
			})
			if !errors.Is(err, ErrConflict) {
				t.Errorf("%s: %v, want ErrConflict", c.stmt, err)
			}
		})
	}
}

// contractChangeSeenByOtherHandle: a write through one handle moves the
// generation another handle (another process or host) reports; a write
// that changes nothing served moves neither.
func contractChangeSeenByOtherHandle(t *testing.T, b backend) {
	ctx := context.Background()
	a, c, g0 := twoHandles(t, b)
	must(t, a.SetSetting(ctx, "dhcp_domain", "example.org"))
	took := waitGeneration(t, c, g0+1)
	t.Logf("%s: other handle saw the write after %v", b.name, took)
	must(t, a.SetPassword(ctx, "i1", "pw"))
	must(t, a.SetSetting(ctx, "dhcp_domain", "example.org"))
	// A later write shows the no-op ones left the counter alone.
	must(t, a.PutNetwork(ctx, Network{ID: "n9"}))
	waitGeneration(t, c, g0+2)
	if g, _ := c.Generation(ctx); g != g0+2 {
		t.Errorf("generation %d, want %d", g, g0+2)
	}
	m, err := c.Settings(ctx)
	must(t, err)
	if m["dhcp_domain"] != "example.org" {
		t.Errorf("other handle's settings: %v", m)
	}
}

// contractLiveFollowsOtherHandle: a setting written through one handle
// switches the settings a Live over another handle hands out.
func contractLiveFollowsOtherHandle(t *testing.T, b backend) {
	ctx := context.Background()
	url := b.fresh(t)
	a, c := b.openURL(t, url), b.openURL(t, url)
	live := NewLive(c, nil)
	snap, err := live.Snapshot(ctx)
	must(t, err)
	if snap.Config.ForceMetadata {
		t.Fatal("force_metadata on by default")
	}
	must(t, a.SetSetting(ctx, "force_metadata", "true"))
	for range 1000 {
		if snap, err = live.Snapshot(ctx); err != nil || snap.Config.ForceMetadata {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	must(t, err)
	if !snap.Config.ForceMetadata {
		t.Errorf("Live over the other handle never switched: %+v", snap.Raw)
	}
}

// contractChangedWakesOtherHandle: a write through one handle (a node, or
// `mdctl config set`) wakes whoever waits on another handle's Changed,
// without polling; a write that changes nothing served (a guest's
// password) wakes nobody and leaves the generation alone.
func contractChangedWakesOtherHandle(t *testing.T, b backend) {
	ctx := context.Background()
	a, c, g0 := twoHandles(t, b)
	n, ok := c.(Notifier)
	if !ok {
		t.Fatalf("%T is no Notifier", c)
	}
	for round := range 3 {
		ch := n.Changed()
		start := time.Now()
		must(t, a.SetSetting(ctx, "dhcp_domain", fmt.Sprintf("r%d.example.org", round)))
		select {
		case <-ch:
			t.Logf("%s: round %d: other handle woken %v after the write began", b.name, round, time.Since(start))
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: other handle not woken 10 s after a write", round)
		}
		if g, _ := c.Generation(ctx); g != g0+uint64(round)+1 {
			t.Fatalf("round %d: woken at generation %d, want %d", round, g, g0+uint64(round)+1)
		}
	}
	g1, _ := c.Generation(ctx)
	ch := n.Changed()
	must(t, a.SetPassword(ctx, "i1", "pw"))
	// Long enough for a notification or the -wal watcher's re-reads;
	// a wake after it would still show in the generation below.
	select {
	case <-ch:
		t.Error("a password POST woke the other handle")
	case <-time.After(300 * time.Millisecond):
	}
	if g, _ := a.Generation(ctx); g != g1 {
		t.Errorf("a password POST moved the generation %d → %d", g1, g)
	}
}

// twoHandles opens two handles on one fresh store with the fixture, and
// waits until the second sees the first's generation g0.
func twoHandles(t *testing.T, b backend) (a, c Store, g0 uint64) {
	url := b.fresh(t)
	a, c = b.openURL(t, url), b.openURL(t, url)
	fixture(t, a)
	g0, err := a.Generation(context.Background())
	must(t, err)
	waitGeneration(t, c, g0)
	return a, c, g0
}

// waitGeneration waits (bounded) until s reports at least want and
// returns how long that took.
func waitGeneration(t *testing.T, s Store, want uint64) time.Duration {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	var g uint64
	for range 1000 {
		var err error
		if g, err = s.Generation(ctx); err != nil {
			t.Fatalf("generation: %v", err)
		}
		if g >= want {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("generation %d after %v, want %d", g, time.Since(start), want)
	return 0
}
