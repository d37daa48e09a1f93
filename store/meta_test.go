package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"
)

// Meta keeps nova's row order through JSON, YAML and the store, never
// sorted: nova/utils.py metadata_to_dict builds the dict from the rows in
// order and base.py _metadata_as_json dumps it without sort_keys.
func TestMetaKeepsOrder(t *testing.T) {
	m := Meta{{"zeta", "1"}, {"alpha", "2"}, {"mid", "3"}}
	js, err := json.Marshal(m)
	must(t, err)
	if string(js) != `{"zeta":"1","alpha":"2","mid":"3"}` {
		t.Errorf("json = %s", js)
	}
	var back Meta
	must(t, json.Unmarshal(js, &back))
	if !slices.Equal(back, m) {
		t.Errorf("json round trip = %v", back)
	}
	y, err := yaml.Marshal(m)
	must(t, err)
	if string(y) != "zeta: \"1\"\nalpha: \"2\"\nmid: \"3\"\n" {
		t.Errorf("yaml = %q", y)
	}
	var ybk Meta
	must(t, yaml.Unmarshal(y, &ybk))
	if !slices.Equal(ybk, m) {
		t.Errorf("yaml round trip = %v", ybk)
	}

	s := openTest(t)
	fixture(t, s)
	ctx := context.Background()
	i, err := s.GetInstance(ctx, "vm1")
	must(t, err)
	i.Meta = m
	must(t, s.Update(ctx, func(tx Tx) error { return tx.PutInstance(ctx, i) }))
	got, err := s.GetInstance(ctx, "vm1")
	must(t, err)
	if !slices.Equal(got.Meta, m) {
		t.Errorf("stored meta = %v, want %v", got.Meta, m)
	}
}

// A repeated key keeps its first place and its last value, as json.loads
// does with a dict.
func TestMetaRepeatedKey(t *testing.T) {
	var m Meta
	must(t, json.Unmarshal([]byte(`{"a":"1","b":"2","a":"3"}`), &m))
	if !slices.Equal(m, Meta{{"a", "3"}, {"b", "2"}}) {
		t.Errorf("got %v", m)
	}
	for _, bad := range []string{`[]`, `{"a":1}`, `"x"`} {
		if err := json.Unmarshal([]byte(bad), &m); err == nil {
			t.Errorf("%s: want an error", bad)
		}
	}
}

// Updated is nova/db/main/api.py _instance_metadata_update_in_place: a kept
// key is its old row updated in place (same place), a dropped key's row is
// deleted, a new key is a new row (last).
func TestMetaUpdated(t *testing.T) {
	old := Meta{{"a", "1"}, {"b", "2"}, {"c", "3"}}
	got := old.Updated(Meta{{"d", "4"}, {"c", "30"}, {"a", "1"}})
	if want := (Meta{{"a", "1"}, {"c", "30"}, {"d", "4"}}); !slices.Equal(got, want) {
		t.Errorf("Updated = %v, want %v", got, want)
	}
	if !slices.Equal(old, Meta{{"a", "1"}, {"b", "2"}, {"c", "3"}}) {
		t.Errorf("Updated changed its receiver: %v", old)
	}
	if got := Meta(nil).Updated(Meta{{"z", "1"}, {"y", "2"}}); !slices.Equal(got, Meta{{"z", "1"}, {"y", "2"}}) {
		t.Errorf("new instance: %v", got)
	}
}

// Ports carry their security groups in binding order; none reads back as
// nil.
func TestPortSecurityGroups(t *testing.T) {
	s := openTest(t)
	fixture(t, s)
	ctx := context.Background()
	ports, err := s.ListPorts(ctx, PortFilter{DeviceIDs: []string{"i1"}})
	must(t, err)
	if len(ports) == 0 {
		t.Fatal("fixture has no instance port")
	}
	p := ports[0]
	for _, groups := range [][]string{{"web", "default", "ssh"}, nil} {
		p.SecurityGroups = groups
		must(t, s.Update(ctx, func(tx Tx) error { return tx.PutPort(ctx, p) }))
		got, err := s.ListPorts(ctx, PortFilter{DeviceIDs: []string{"i1"}})
		must(t, err)
		if !slices.Equal(got[0].SecurityGroups, groups) || (groups == nil) != (got[0].SecurityGroups == nil) {
			t.Errorf("put %q, read %q", groups, got[0].SecurityGroups)
		}
	}
}

// Migration 0003 puts compute ports made before it in neutron's default
// group, and router and DHCP ports in none.
func TestMigrationPortSecurityGroups(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", "file:"+path)
	must(t, err)
	init, err := migrationFS.ReadFile("migrations/0001_init.sql")
	must(t, err)
	_, err = db.Exec(string(init) + `
		CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL);
		INSERT INTO schema_migrations VALUES (1, '0001_init.sql', 0);
		INSERT INTO networks VALUES ('n1', 'net1', 'p1', 1500, 0, 0);
		INSERT INTO ports VALUES ('pc', 'n1', 'p1', 'fa:16:3e:00:00:01', 'i1', 'compute:nova', 1);
		INSERT INTO ports VALUES ('pr', 'n1', 'p1', 'fa:16:3e:00:00:02', 'r1', 'network:router_interface', 2);
		INSERT INTO ports VALUES ('pd', 'n1', 'p1', 'fa:16:3e:00:00:03', 'dhcp', 'network:dhcp', 3);`)
	must(t, err)
	must(t, db.Close())
	s, err := OpenSQLite(path)
	must(t, err)
	defer s.Close()
	ports, err := s.ListPorts(context.Background(), PortFilter{})
	must(t, err)
	want := map[string][]string{"pc": {"default"}, "pr": nil, "pd": nil}
	for _, p := range ports {
		if !slices.Equal(p.SecurityGroups, want[p.ID]) {
			t.Errorf("port %s (%s): groups %q, want %q", p.ID, p.DeviceOwner, p.SecurityGroups, want[p.ID])
		}
	}
	if len(ports) != 3 {
		t.Errorf("%d ports after migration, want 3", len(ports))
	}
}
