package store

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/mdctl/mdctl/internal/pgtest"
)

// dumpOf reads a store's whole content as Copy does.
func dumpOf(t *testing.T, s Store) dump {
	t.Helper()
	d, err := view(context.Background(), s.(sqlBacked).base(), func(tx *sqlTx) (dump, error) { return tx.dump(context.Background()) })
	must(t, err)
	return d
}

// tablesOf lists a store's tables but the schema's own.
func tablesOf(t *testing.T, s Store) []string {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
	if _, ok := s.(*Postgres); ok {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`
	}
	var out []string
	rows, err := s.(sqlBacked).base().pools().rdb.Query(q)
	must(t, err)
	defer rows.Close()
	for rows.Next() {
		var n string
		must(t, rows.Scan(&n))
		if n != "counters" && n != "schema_migrations" && !slices.Contains(runtimeTables, n) {
			out = append(out, n)
		}
	}
	must(t, rows.Err())
	slices.Sort(out)
	return out
}

func TestCopy(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Start(t)
	fresh := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return filepath.Join(t.TempDir(), "mdctl.db") },
		"postgres": func(t *testing.T) string { return pg.NewDB(t) },
	}
	open := func(t *testing.T, url string) Store {
		t.Helper()
		s, err := Open("", url)
		must(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	for _, dir := range [][2]string{{"sqlite", "postgres"}, {"postgres", "sqlite"}, {"sqlite", "sqlite"}, {"postgres", "postgres"}} {
		t.Run(dir[0]+"-to-"+dir[1], func(t *testing.T) {
			src, dst := open(t, fresh[dir[0]](t)), open(t, fresh[dir[1]](t))
			fixture(t, src)
			must(t, src.PutInstance(ctx, Instance{ID: "gone"}))
			must(t, src.DeleteInstance(ctx, "gone")) // its EC2 id is never handed out again
			must(t, src.SetPassword(ctx, "i1", "pw"))
			must(t, src.SetSetting(ctx, "dhcp_domain", "example.org"))
			// What later migrations added travels too.
			must(t, src.PutNetwork(ctx, Network{ID: "n3", Name: "prov", Bridge: "br-op", VLAN: 42}))
			must(t, src.PutPort(ctx, Port{ID: "hp1", NetworkID: "n3", DeviceOwner: OwnerCompute,
				SecurityGroups: []string{"web", "default"}, BindingHostID: "hv1"}))
			must(t, src.PutInstance(ctx, Instance{ID: "i3", Meta: Meta{{Key: "z", Value: "1"}, {Key: "a", Value: "2"}}}))
			g0, err := dst.Generation(ctx)
			must(t, err)

			stats, err := Copy(ctx, src, dst)
			must(t, err)
			if stats["ports"] != 5 || stats["fixed_ips"] != 5 || stats["passwords"] != 1 {
				t.Errorf("stats = %v", stats)
			}
			if got, want := dumpOf(t, dst), dumpOf(t, src); !reflect.DeepEqual(got, want) {
				t.Errorf("copy differs:\n got %+v\nwant %+v", got, want)
			}
			if g, _ := dst.Generation(ctx); g != g0+1 {
				t.Errorf("target generation %d → %d, want one step", g0, g)
			}
			must(t, dst.PutInstance(ctx, Instance{ID: "new"}))
			if i, _ := dst.GetInstance(ctx, "new"); i.EC2ID != 4 {
				t.Errorf("next EC2 id on the copy = %d, want 4 (2 went to a deleted instance)", i.EC2ID)
			}
			if got, want := tablesOf(t, dst), slices.Sorted(slices.Values(copiedTables)); !slices.Equal(got, want) {
				t.Errorf("%s tables %v, Copy carries %v: list new tables in copiedTables", dir[1], got, want)
			}
		})
	}
	t.Run("refuses a target with records", func(t *testing.T) {
		for _, kind := range []string{"sqlite", "postgres"} {
			src, dst := open(t, fresh["sqlite"](t)), open(t, fresh[kind](t))
			fixture(t, src)
			must(t, dst.SetSetting(ctx, "force_metadata", "true"))
			before := dumpOf(t, dst)
			g0, _ := dst.Generation(ctx)
			if _, err := Copy(ctx, src, dst); !errors.Is(err, ErrNotEmpty) {
				t.Fatalf("%s: Copy into a store with a setting = %v, want ErrNotEmpty", kind, err)
			}
			if !reflect.DeepEqual(dumpOf(t, dst), before) {
				t.Errorf("%s: refused copy wrote something", kind)
			}
			if g, _ := dst.Generation(ctx); g != g0 {
				t.Errorf("%s: refused copy moved the generation", kind)
			}
		}
	})
}
