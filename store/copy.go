package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ErrNotEmpty is returned (wrapped) by Copy when the target holds records.
var ErrNotEmpty = errors.New("target store is not empty")

// copiedTables are the tables Copy carries, each with its records; the
// schema's own (counters, schema_migrations) are not records. A table a
// migration adds must be copied too: TestCopyCoversEveryTable fails until
// it is listed here.
var copiedTables = []string{"projects", "networks", "subnets", "routers", "ports", "fixed_ips", "instances", "settings", "passwords"}

// runtimeTables are what running serves keep in a store, not records: the
// nodes that registered and the scheduler's bindings. Copy leaves them
// behind; the serves on the target register and bind anew. (A router's
// pin is a record: it is the routers table's.)
var runtimeTables = []string{"nodes", "router_bindings", "network_bindings"}

// CopyStats counts the records Copy copied, per table.
type CopyStats map[string]int

// String lists the counts in copiedTables' order.
func (c CopyStats) String() string {
	parts := make([]string, 0, len(copiedTables))
	for _, t := range copiedTables {
		parts = append(parts, fmt.Sprintf("%d %s", c[t], strings.ReplaceAll(t, "_", " ")))
	}
	return strings.Join(parts, ", ")
}

// dump is a store's whole content, read in one snapshot.
type dump struct {
	projects  []Project
	networks  []Network
	subnets   []Subnet
	routers   []Router
	ports     []Port
	instances []Instance
	settings  map[string]string
	passwords []passwordRow
	lastEC2   int64
}

type passwordRow struct {
	instanceID, password string
	createdAt            int64
}

// sqlBacked is what both backends are: a sqlStore.
type sqlBacked interface{ base() *sqlStore }

func (s *sqlStore) base() *sqlStore { return s }

// analyzed runs the dialect's statistics pass after a bulk load. It only
// speeds up the first queries (autovacuum catches up later), so a failure
// is no failure of the load.
func (s *sqlStore) analyzed(ctx context.Context) {
	if s.d.analyze != "" {
		_, _ = s.pools().wdb.ExecContext(ctx, s.d.analyze)
	}
}

// Copy copies every record of from into to, in one transaction of to: the
// copy is whole, or to is left as it was. It refuses a target that holds
// any record (ErrNotEmpty). Timestamps, EC2 ids, creation order and the
// EC2 id counter carry over; to's generation moves once, so serves on it
// see the copy as one change.
func Copy(ctx context.Context, from, to Store) (CopyStats, error) {
	src, ok := from.(sqlBacked)
	if _, ok2 := to.(sqlBacked); !ok || !ok2 {
		return nil, errors.New("copy store: both stores must be SQL stores")
	}
	d, err := view(ctx, src.base(), func(t *sqlTx) (dump, error) { return t.dump(ctx) })
	if err != nil {
		return nil, fmt.Errorf("copy store: read source: %w", err)
	}
	var stats CopyStats
	err = to.Update(ctx, func(tx Tx) error {
		t := tx.(*sqlTx)
		t.copying = true
		counts, err := t.counts(ctx)
		if err != nil {
			return err
		}
		for _, table := range copiedTables {
			if counts[table] > 0 {
				return fmt.Errorf("%w: it has %d %s", ErrNotEmpty, counts[table], table)
			}
		}
		if err := t.restore(ctx, d); err != nil {
			return err
		}
		if stats, err = t.counts(ctx); err != nil {
			return err
		}
		return d.check(stats)
	})
	if err != nil {
		return nil, fmt.Errorf("copy store: %w", err)
	}
	to.(sqlBacked).base().analyzed(ctx)
	return stats, nil
}

// dump reads every record; call it in one read transaction.
func (t *sqlTx) dump(ctx context.Context) (dump, error) {
	var d dump
	var err error
	if d.projects, err = t.ListProjects(ctx); err != nil {
		return d, err
	}
	if d.networks, err = t.ListNetworks(ctx); err != nil {
		return d, err
	}
	if d.subnets, err = t.ListSubnets(ctx, ""); err != nil {
		return d, err
	}
	if d.routers, err = t.ListRouters(ctx); err != nil {
		return d, err
	}
	if d.ports, err = t.ListPorts(ctx, PortFilter{}); err != nil {
		return d, err
	}
	if d.instances, err = t.ListInstances(ctx); err != nil {
		return d, err
	}
	if d.settings, err = t.Settings(ctx); err != nil {
		return d, err
	}
	d.passwords, err = queryAll(ctx, t.q, "list passwords",
		`SELECT instance_id, password, created_at FROM passwords ORDER BY instance_id`,
		func(rows *sql.Rows) (passwordRow, error) {
			var p passwordRow
			return p, rows.Scan(&p.instanceID, &p.password, &p.createdAt)
		})
	if err != nil {
		return d, err
	}
	err = t.q.QueryRowContext(ctx, `SELECT last_ec2_id FROM counters WHERE id = 1`).Scan(&d.lastEC2)
	return d, err
}

// restore writes d through the record layer, so the target's rules hold
// for every record, in the source's order.
func (t *sqlTx) restore(ctx context.Context, d dump) error {
	steps := []func() error{
		func() error { return each(ctx, d.projects, t.PutProject) },
		func() error { return each(ctx, d.networks, t.PutNetwork) },
		func() error { return each(ctx, d.subnets, t.PutSubnet) },
		func() error { return each(ctx, d.routers, t.PutRouter) },
		func() error { return each(ctx, d.instances, t.PutInstance) },
		func() error { return each(ctx, d.ports, t.PutPort) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(d.settings)) {
		if err := t.SetSetting(ctx, k, d.settings[k]); err != nil {
			return err
		}
	}
	for _, p := range d.passwords {
		if _, err := t.q.ExecContext(ctx, `INSERT INTO passwords (instance_id, password, created_at) VALUES (?, ?, ?)`,
			p.instanceID, p.password, p.createdAt); err != nil {
			return fmt.Errorf("password of instance %s: %w", p.instanceID, t.mapErr(err))
		}
	}
	if _, err := t.q.ExecContext(ctx, `UPDATE counters SET last_ec2_id = CASE WHEN last_ec2_id < ? THEN ? ELSE last_ec2_id END
		WHERE id = 1`, d.lastEC2, d.lastEC2); err != nil {
		return fmt.Errorf("ec2 id counter: %w", err)
	}
	t.write()
	return nil
}

// counts counts each copied table's rows.
func (t *sqlTx) counts(ctx context.Context) (CopyStats, error) {
	c := CopyStats{}
	for _, table := range copiedTables {
		var n int
		if err := t.q.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", table, err)
		}
		c[table] = n
	}
	return c, nil
}

// check compares what the target holds after the copy with the source.
func (d dump) check(got CopyStats) error {
	addrs := 0
	for _, p := range d.ports {
		addrs += len(p.FixedIPs)
	}
	want := CopyStats{"projects": len(d.projects), "networks": len(d.networks), "subnets": len(d.subnets),
		"routers": len(d.routers), "ports": len(d.ports), "fixed_ips": addrs, "instances": len(d.instances),
		"settings": len(d.settings), "passwords": len(d.passwords)}
	if !maps.Equal(got, want) {
		return fmt.Errorf("copied %v, but the source has %v", got, want)
	}
	return nil
}

// each puts every x in order, stopping at the first error (after which a
// PostgreSQL transaction takes no more statements anyway).
func each[T any](ctx context.Context, xs []T, put func(context.Context, T) error) error {
	for _, x := range xs {
		if err := put(ctx, x); err != nil {
			return err
		}
	}
	return nil
}

// CopiedTables names the tables Copy carries, in its order.
func CopiedTables() []string { return slices.Clone(copiedTables) }
