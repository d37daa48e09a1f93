package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/mdctl/mdctl/internal/pgtest"
)

// eachBackendBench runs fn on a fresh SQLite store and a fresh PostgreSQL
// store (on a server of the benchmark's own), as sub-benchmarks.
func eachBackendBench(b *testing.B, fn func(b *testing.B, s Store)) {
	b.Run("sqlite", func(b *testing.B) { fn(b, openTest(b)) })
	b.Run("postgres", func(b *testing.B) {
		s, err := OpenPostgres(context.Background(), pgtest.Start(b).NewDB(b))
		must(b, err)
		b.Cleanup(func() { s.Close() })
		fn(b, s)
	})
}

// BenchmarkListPortsByIP is the agent's lookup: network AND address, among
// 10,000 ports.
func BenchmarkListPortsByIP(b *testing.B) { eachBackendBench(b, benchListPortsByIP) }

func benchListPortsByIP(b *testing.B, s Store) {
	ctx := context.Background()
	const n = 10000
	must(b, s.Update(ctx, func(tx Tx) error {
		if err := tx.PutNetwork(ctx, Network{ID: "n1"}); err != nil {
			return err
		}
		if err := tx.PutSubnet(ctx, Subnet{ID: "s1", NetworkID: "n1", CIDR: "10.90.0.0/16"}); err != nil {
			return err
		}
		for i := range n {
			err := tx.PutPort(ctx, Port{ID: fmt.Sprint("port-", i), NetworkID: "n1", DeviceID: fmt.Sprint("vm-", i),
				DeviceOwner: OwnerCompute, MACAddress: fmt.Sprintf("fa:16:3e:00:%02x:%02x", i/256, i%256),
				FixedIPs: []FixedIP{{SubnetID: "s1", IPAddress: fmt.Sprintf("10.90.%d.%d", i/250, i%250+2)}}})
			if err != nil {
				return err
			}
		}
		return nil
	}))
	s.(sqlBacked).base().analyzed(ctx) // as autovacuum would, soon after
	f := PortFilter{NetworkIDs: []string{"n1"}, IPAddresses: []string{"10.90.20.77"}}
	b.ReportAllocs()
	for b.Loop() {
		ps, err := s.ListPorts(ctx, f)
		if err != nil || len(ps) != 1 {
			b.Fatalf("ListPorts = %d ports, %v", len(ps), err)
		}
	}
}

func BenchmarkInstanceView(b *testing.B) { eachBackendBench(b, benchInstanceView) }

func benchInstanceView(b *testing.B, s Store) {
	ctx := context.Background()
	fixture(b, s)
	b.ReportAllocs()
	for b.Loop() {
		v, err := s.InstanceView(ctx, "i1")
		if err != nil || len(v.Ports) != 2 {
			b.Fatalf("InstanceView: %v", err)
		}
	}
}

// BenchmarkLiveSnapshot is every request's look at the store: in memory
// on both backends while nothing changes.
func BenchmarkLiveSnapshot(b *testing.B) { eachBackendBench(b, benchLiveSnapshot) }

func benchLiveSnapshot(b *testing.B, s Store) {
	live := NewLive(s, nil)
	if sq, ok := s.(*SQLite); ok {
		settle(b, sq)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := live.Snapshot(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
