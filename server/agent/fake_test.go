package agent

import (
	"context"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/mdctl/mdctl/store"
)

// testStore is a real SQLite store in t.TempDir(), with ListPorts counted
// so tests can see when the agent's cache answered.
type testStore struct {
	*store.SQLite
	listCalls atomic.Int64
}

func (s *testStore) ListPorts(ctx context.Context, f store.PortFilter) ([]store.Port, error) {
	s.listCalls.Add(1)
	return s.SQLite.ListPorts(ctx, f)
}

// newTestStore opens a store holding ports; every network they name is
// created with a v4 and a v6 subnet wide enough for any test address.
func newTestStore(t *testing.T, ports ...store.Port) *testStore {
	t.Helper()
	db, err := store.OpenSQLite(filepath.Join(t.TempDir(), "mdctl.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := &testStore{SQLite: db}
	for _, p := range ports {
		s.addPort(t, p)
	}
	return s
}

func (s *testStore) addPort(t *testing.T, p store.Port) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.GetNetwork(ctx, p.NetworkID); err != nil {
		if err := s.PutNetwork(ctx, store.Network{ID: p.NetworkID, ProjectID: p.ProjectID, MTU: 1450}); err != nil {
			t.Fatal(err)
		}
		for _, sn := range []store.Subnet{
			{ID: "v4-" + p.NetworkID, NetworkID: p.NetworkID, IPVersion: 4, CIDR: "10.90.0.0/16"},
			{ID: "v6-" + p.NetworkID, NetworkID: p.NetworkID, IPVersion: 6, CIDR: "fd00:90::/64"},
		} {
			if err := s.PutSubnet(ctx, sn); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, f := range p.FixedIPs {
		p.FixedIPs[i].SubnetID = "v4-" + p.NetworkID
		if netip.MustParseAddr(f.IPAddress).Is6() {
			p.FixedIPs[i].SubnetID = "v6-" + p.NetworkID
		}
	}
	if err := s.PutPort(ctx, p); err != nil {
		t.Fatal(err)
	}
}

func (s *testStore) set(t *testing.T, key, value string) {
	t.Helper()
	if err := s.SetSetting(context.Background(), key, value); err != nil {
		t.Fatal(err)
	}
}
