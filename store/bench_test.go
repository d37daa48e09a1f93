package store

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkListPortsByIP is the agent's lookup: network AND address, among
// 10,000 ports.
func BenchmarkListPortsByIP(b *testing.B) {
	ctx := context.Background()
	s := openTest(b)
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
	f := PortFilter{NetworkIDs: []string{"n1"}, IPAddresses: []string{"10.90.20.77"}}
	b.ReportAllocs()
	for b.Loop() {
		ps, err := s.ListPorts(ctx, f)
		if err != nil || len(ps) != 1 {
			b.Fatalf("ListPorts = %d ports, %v", len(ps), err)
		}
	}
}

func BenchmarkInstanceView(b *testing.B) {
	ctx := context.Background()
	s := openTest(b)
	fixture(b, s)
	b.ReportAllocs()
	for b.Loop() {
		v, err := s.InstanceView(ctx, "i1")
		if err != nil || len(v.Ports) != 2 {
			b.Fatalf("InstanceView: %v", err)
		}
	}
}

func BenchmarkLiveSnapshot(b *testing.B) {
	s := openTest(b)
	live := NewLive(s, nil)
	settle(b, s)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := live.Snapshot(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
