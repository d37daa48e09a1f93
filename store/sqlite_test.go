package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func openTest(t testing.TB) *SQLite {
	t.Helper()
	s, err := OpenSQLite(filepath.Join(t.TempDir(), "sub", "mdctl.db"))
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fixture is a small cloud: one project, two networks with a subnet each
// (net1 dual-stack), a router on net1, and instance vm1 with a port on
// each network.
func fixture(t testing.TB, s Store) {
	t.Helper()
	ctx := context.Background()
	must(t, s.Update(ctx, func(tx Tx) error {
		for _, err := range []error{
			tx.PutProject(ctx, Project{ID: "p1", Name: "demo"}),
			tx.PutNetwork(ctx, Network{ID: "n1", Name: "net1", ProjectID: "p1", MTU: 1450}),
			tx.PutNetwork(ctx, Network{ID: "n2", Name: "net2", ProjectID: "p1", MTU: 1500}),
			tx.PutSubnet(ctx, Subnet{ID: "s1", NetworkID: "n1", Name: "sub1", CIDR: "10.90.1.0/24", GatewayIP: "10.90.1.1",
				EnableDHCP: true, DNSNameservers: []string{"10.90.1.2"}, HostRoutes: []HostRoute{{Destination: "10.90.9.0/24", NextHop: "10.90.1.3"}}}),
			tx.PutSubnet(ctx, Subnet{ID: "s1v6", NetworkID: "n1", CIDR: "fd00:90:1::/64", IPv6AddressMode: "slaac"}),
			tx.PutSubnet(ctx, Subnet{ID: "s2", NetworkID: "n2", CIDR: "10.90.2.0/24"}),
			tx.PutRouter(ctx, Router{ID: "r1", Name: "router1", ProjectID: "p1"}),
			tx.PutPort(ctx, Port{ID: "rp1", NetworkID: "n1", ProjectID: "p1", MACAddress: "fa:16:3e:00:00:01",
				FixedIPs: []FixedIP{{SubnetID: "s1", IPAddress: "10.90.1.1"}}, DeviceID: "r1", DeviceOwner: OwnerRouterInterface}),
			tx.PutPort(ctx, Port{ID: "dp1", NetworkID: "n1", ProjectID: "p1", MACAddress: "fa:16:3e:00:00:02",
				FixedIPs: []FixedIP{{SubnetID: "s1", IPAddress: "10.90.1.2"}}, DeviceID: "dhcp-n1", DeviceOwner: OwnerDHCP}),
			tx.PutInstance(ctx, Instance{ID: "i1", Name: "vm1", Hostname: "vm1", ProjectID: "p1",
				Meta: Meta{{Key: "role", Value: "web"}}, Keys: []Key{{Name: "k1", Type: "ssh", Data: "ssh-ed25519 AAAA"}},
				UserData: []byte("#cloud-config\n")}),
			tx.PutPort(ctx, Port{ID: "vp1", NetworkID: "n1", ProjectID: "p1", MACAddress: "FA:16:3E:00:00:10",
				FixedIPs: []FixedIP{{SubnetID: "s1", IPAddress: "10.90.1.10"}, {SubnetID: "s1v6", IPAddress: "fd00:90:1:0::10"}},
				DeviceID: "i1", DeviceOwner: OwnerCompute}),
			tx.PutPort(ctx, Port{ID: "vp2", NetworkID: "n2", ProjectID: "p1", MACAddress: "fa:16:3e:00:00:11",
				FixedIPs: []FixedIP{{SubnetID: "s2", IPAddress: "10.90.2.10"}}, DeviceID: "i1", DeviceOwner: OwnerCompute}),
		} {
			if err != nil {
				return err
			}
		}
		return nil
	}))
}

func TestOpenURL(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		url, want, wantErr string
	}{
		{url: "", want: filepath.Join(dir, "mdctl.db")},
		{url: "sqlite://" + dir + "/a.db", want: dir + "/a.db"},
		{url: dir + "/b.db", want: dir + "/b.db"},
		{url: "postgres://u:secret@127.0.0.1:1/mdctl", wantErr: "open postgres store postgres://u:xxxxx@127.0.0.1:1/mdctl"},
		{url: "mysql://x", wantErr: "unknown scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			st, err := Open(dir, tt.url)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			must(t, err)
			defer st.Close()
			if got := st.(*SQLite).Path(); got != tt.want {
				t.Errorf("path = %s, want %s", got, tt.want)
			}
		})
	}
}

func contractProjectsNetworksRoutersCRUD(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	fixture(t, s)

	p, err := s.GetProject(ctx, "demo")
	must(t, err)
	if p != (Project{ID: "p1", Name: "demo"}) {
		t.Errorf("GetProject(demo) = %+v", p)
	}
	must(t, s.PutProject(ctx, Project{ID: "p1", Name: "demo2"}))
	if _, err := s.GetProject(ctx, "demo"); !errors.Is(err, ErrNotFound) {
		t.Errorf("old name still found: %v", err)
	}
	ps, err := s.ListProjects(ctx)
	must(t, err)
	if len(ps) != 1 || ps[0].Name != "demo2" {
		t.Errorf("ListProjects = %+v", ps)
	}

	n, err := s.GetNetwork(ctx, "net1")
	must(t, err)
	if n.ID != "n1" || n.MTU != 1450 || n.CreatedAt.IsZero() || n.CreatedAt.Location() != time.UTC {
		t.Errorf("GetNetwork(net1) = %+v", n)
	}
	time.Sleep(2 * time.Millisecond) // so UpdatedAt can differ from CreatedAt
	must(t, s.PutNetwork(ctx, Network{ID: "n1", Name: "net1", ProjectID: "p1", MTU: 9000}))
	n2, err := s.GetNetwork(ctx, "n1")
	must(t, err)
	if n2.MTU != 9000 || !n2.CreatedAt.Equal(n.CreatedAt) || !n2.UpdatedAt.After(n.UpdatedAt) {
		t.Errorf("after update: %+v (before %+v)", n2, n)
	}
	ns, err := s.ListNetworks(ctx)
	must(t, err)
	if len(ns) != 2 || ns[0].ID != "n1" || ns[1].ID != "n2" {
		t.Errorf("ListNetworks = %+v", ns)
	}

	must(t, s.PutNetwork(ctx, Network{ID: "n1", Name: "net1", ProjectID: "p1", MTU: 9000, Bridge: "br-op", VLAN: 42}))
	if n3, err := s.GetNetwork(ctx, "n1"); err != nil || n3.Bridge != "br-op" || n3.VLAN != 42 {
		t.Errorf("attached network read back as %+v, %v", n3, err)
	}
	for _, bad := range []Network{
		{ID: "n1", Bridge: "br-op", VLAN: 4095},
		{ID: "n1", VLAN: 7},
		{ID: "n1", Bridge: "a-name-far-too-long"},
		{ID: "n1", Bridge: "br/0"},
	} {
		if err := s.PutNetwork(ctx, bad); err == nil {
			t.Errorf("PutNetwork(%+v) = nil, want an error", bad)
		}
	}

	r, err := s.GetRouter(ctx, "router1")
	must(t, err)
	if r.ID != "r1" || r.ProjectID != "p1" {
		t.Errorf("GetRouter = %+v", r)
	}
	rs, err := s.ListRouters(ctx)
	must(t, err)
	if len(rs) != 1 {
		t.Errorf("ListRouters = %+v", rs)
	}
}

func contractSubnetsCRUD(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	fixture(t, s)
	sn, err := s.GetSubnet(ctx, "s1")
	must(t, err)
	want := Subnet{ID: "s1", NetworkID: "n1", Name: "sub1", IPVersion: 4, CIDR: "10.90.1.0/24", GatewayIP: "10.90.1.1",
		EnableDHCP: true, DNSNameservers: []string{"10.90.1.2"}, HostRoutes: []HostRoute{{Destination: "10.90.9.0/24", NextHop: "10.90.1.3"}}}
	if !reflect.DeepEqual(sn, want) {
		t.Errorf("GetSubnet = %+v\nwant %+v", sn, want)
	}
	v6, err := s.GetSubnet(ctx, "s1v6")
	must(t, err)
	if v6.IPVersion != 6 {
		t.Errorf("ip_version of a v6 cidr = %d", v6.IPVersion)
	}
	for net, want := range map[string]int{"n1": 2, "n2": 1, "": 3} {
		l, err := s.ListSubnets(ctx, net)
		must(t, err)
		if len(l) != want {
			t.Errorf("ListSubnets(%q) = %d subnets, want %d", net, len(l), want)
		}
	}
	bad := []Subnet{
		{ID: "x", NetworkID: "n1", CIDR: "10.90.300.0/24"},
		{ID: "x", NetworkID: "n1", CIDR: "10.90.3.0/24", IPVersion: 6},
		{ID: "x", NetworkID: "n1", CIDR: "10.90.3.0/24", GatewayIP: "10.90.4.1"},
		{ID: "x", NetworkID: "nope", CIDR: "10.90.3.0/24"},
	}
	for _, b := range bad {
		if err := s.PutSubnet(ctx, b); err == nil {
			t.Errorf("PutSubnet(%+v) accepted", b)
		}
	}
	// A subnet with addresses cannot move to another network.
	if err := s.PutSubnet(ctx, Subnet{ID: "s1", NetworkID: "n2", CIDR: "10.90.1.0/24"}); !errors.Is(err, ErrConflict) {
		t.Errorf("moving a used subnet = %v, want ErrConflict", err)
	}
	// Instance ports hold addresses on s1: neutron says in use.
	if err := s.DeleteSubnet(ctx, "s1"); !errors.Is(err, ErrConflict) {
		t.Errorf("DeleteSubnet(in use) = %v, want ErrConflict", err)
	}
	must(t, s.DeletePort(ctx, "vp2"))
	must(t, s.DeleteSubnet(ctx, "s2"))
	if _, err := s.GetSubnet(ctx, "s2"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `subnet "s2"`) {
		t.Errorf("GetSubnet(deleted) = %v", err)
	}
	if err := s.DeleteSubnet(ctx, "s2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteSubnet(missing) = %v", err)
	}
}

func contractInstancesCRUD(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	fixture(t, s)
	i, err := s.GetInstance(ctx, "vm1")
	must(t, err)
	if i.ID != "i1" || i.EC2ID != 1 || i.Meta[0] != (MetaItem{"role", "web"}) || len(i.Keys) != 1 || string(i.UserData) != "#cloud-config\n" {
		t.Errorf("GetInstance(vm1) = %+v", i)
	}
	// A second instance gets the next EC2 id; updating keeps each one's.
	must(t, s.PutInstance(ctx, Instance{ID: "i2", Name: "vm2", ProjectID: "p1"}))
	must(t, s.PutInstance(ctx, Instance{ID: "i1", Name: "vm1", ProjectID: "p1", Flavor: "m1.small", AdminPass: "pw"}))
	i1, err := s.GetInstance(ctx, "i1")
	must(t, err)
	i2, err := s.GetInstance(ctx, "vm2")
	must(t, err)
	if i1.EC2ID != 1 || i2.EC2ID != 2 {
		t.Errorf("ec2 ids = %d, %d, want 1, 2", i1.EC2ID, i2.EC2ID)
	}
	if i1.Flavor != "m1.small" || i1.AdminPass != "pw" || i1.UserData != nil || i1.Meta != nil {
		t.Errorf("after replace: %+v", i1)
	}
	if !i1.CreatedAt.Equal(i.CreatedAt) {
		t.Errorf("CreatedAt changed on update: %v → %v", i.CreatedAt, i1.CreatedAt)
	}
	// Ids are never reused after a delete.
	must(t, s.DeleteInstance(ctx, "i2"))
	must(t, s.PutInstance(ctx, Instance{ID: "i3", Name: "vm3"}))
	i3, err := s.GetInstance(ctx, "i3")
	must(t, err)
	if i3.EC2ID != 3 {
		t.Errorf("ec2 id after delete = %d, want 3", i3.EC2ID)
	}
	// An explicit id is kept, and may not be another's.
	if err := s.PutInstance(ctx, Instance{ID: "i4", EC2ID: 3}); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate ec2 id: %v", err)
	}
	must(t, s.PutInstance(ctx, Instance{ID: "i4", EC2ID: 100}))
	must(t, s.PutInstance(ctx, Instance{ID: "i5"}))
	i5, err := s.GetInstance(ctx, "i5")
	must(t, err)
	if i5.EC2ID != 101 {
		t.Errorf("ec2 id after explicit 100 = %d, want 101", i5.EC2ID)
	}
	l, err := s.ListInstances(ctx)
	must(t, err)
	if len(l) != 4 {
		t.Errorf("ListInstances = %d, want 4", len(l))
	}
	_, err = s.GetInstance(ctx, "vm9")
	if !errors.Is(err, ErrNotFound) || err.Error() != `instance "vm9": not found` {
		t.Errorf("GetInstance(vm9) = %v", err)
	}
}

func contractNameUniqueness(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	fixture(t, s)
	tests := []struct {
		name string
		put  func() error
	}{
		{"project", func() error { return s.PutProject(ctx, Project{ID: "p2", Name: "demo"}) }},
		{"network", func() error { return s.PutNetwork(ctx, Network{ID: "n3", Name: "net1"}) }},
		{"router", func() error { return s.PutRouter(ctx, Router{ID: "r2", Name: "router1"}) }},
		{"instance", func() error { return s.PutInstance(ctx, Instance{ID: "i2", Name: "vm1"}) }},
		{"rename onto another", func() error { return s.PutNetwork(ctx, Network{ID: "n2", Name: "net1"}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.put()
			if !errors.Is(err, ErrConflict) {
				t.Fatalf("err = %v, want ErrConflict", err)
			}
			if !strings.Contains(err.Error(), `"`) {
				t.Errorf("error does not name the record: %v", err)
			}
		})
	}
	// Empty names repeat freely, and a record keeps its own name.
	must(t, s.PutNetwork(ctx, Network{ID: "n3"}))
	must(t, s.PutNetwork(ctx, Network{ID: "n4"}))
	must(t, s.PutNetwork(ctx, Network{ID: "n1", Name: "net1", MTU: 1400}))
}

func contractPortsAndAddresses(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	fixture(t, s)
	p, err := s.GetPort(ctx, "vp1")
	must(t, err)
	want := []FixedIP{{SubnetID: "s1", IPAddress: "10.90.1.10"}, {SubnetID: "s1v6", IPAddress: "fd00:90:1::10"}}
	if !reflect.DeepEqual(p.FixedIPs, want) || p.MACAddress != "fa:16:3e:00:00:10" {
		t.Errorf("GetPort = %+v; addresses and MAC should be canonical", p)
	}
	bad := []struct {
		name string
		port Port
		is   error
	}{
		{"ip taken on network", Port{ID: "x", NetworkID: "n1", FixedIPs: []FixedIP{{SubnetID: "s1", IPAddress: "10.90.1.10"}}}, ErrConflict},
		{"ip taken, other spelling", Port{ID: "x", NetworkID: "n1", FixedIPs: []FixedIP{{SubnetID: "s1v6", IPAddress: "fd00:90:1::0010"}}}, ErrConflict},
		{"mac taken on network", Port{ID: "x", NetworkID: "n1", MACAddress: "fa:16:3e:00:00:01"}, ErrConflict},
		{"no network", Port{ID: "x", NetworkID: "nope"}, ErrNotFound},
		{"no subnet", Port{ID: "x", NetworkID: "n1", FixedIPs: []FixedIP{{SubnetID: "nope", IPAddress: "10.90.1.50"}}}, ErrNotFound},
		{"subnet of another network", Port{ID: "x", NetworkID: "n1", FixedIPs: []FixedIP{{SubnetID: "s2", IPAddress: "10.90.2.50"}}}, nil},
		{"outside subnet", Port{ID: "x", NetworkID: "n1", FixedIPs: []FixedIP{{SubnetID: "s1", IPAddress: "10.90.7.50"}}}, nil},
		{"not an address", Port{ID: "x", NetworkID: "n1", FixedIPs: []FixedIP{{SubnetID: "s1", IPAddress: "ten"}}}, nil},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			err := s.PutPort(ctx, b.port)
			if err == nil || (b.is != nil && !errors.Is(err, b.is)) {
				t.Fatalf("PutPort = %v, want error %v", err, b.is)
			}
		})
	}
	// The same address on another network is fine (overlapping tenants).
	must(t, s.PutSubnet(ctx, Subnet{ID: "s3", NetworkID: "n2", CIDR: "10.90.1.0/24"}))
	must(t, s.PutPort(ctx, Port{ID: "x", NetworkID: "n2", FixedIPs: []FixedIP{{SubnetID: "s3", IPAddress: "10.90.1.10"}}}))
	// Replacing a port may keep its own address and rewrites its list.
	must(t, s.PutPort(ctx, Port{ID: "vp1", NetworkID: "n1", DeviceID: "i1", DeviceOwner: OwnerCompute,
		FixedIPs: []FixedIP{{SubnetID: "s1", IPAddress: "10.90.1.10"}}}))
	p, err = s.GetPort(ctx, "vp1")
	must(t, err)
	if len(p.FixedIPs) != 1 {
		t.Errorf("after replace: %+v", p.FixedIPs)
	}
	// A binding to a host outside the lab is kept, and a replace clears it.
	p.BindingHostID = "hv1"
	must(t, s.PutPort(ctx, p))
	if got, err := s.GetPort(ctx, "vp1"); err != nil || got.BindingHostID != "hv1" {
		t.Errorf("binding_host_id read back as %q, %v", got.BindingHostID, err)
	}
	p.BindingHostID = ""
	must(t, s.PutPort(ctx, p))
	if got, err := s.GetPort(ctx, "vp1"); err != nil || got.BindingHostID != "" {
		t.Errorf("binding_host_id after clearing: %q, %v", got.BindingHostID, err)
	}
	must(t, s.DeletePort(ctx, "vp1"))
	if _, err := s.GetPort(ctx, "vp1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetPort(deleted) = %v", err)
	}
	if err := s.DeletePort(ctx, "vp1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeletePort(missing) = %v", err)
	}
	// Its address is free again.
	must(t, s.PutPort(ctx, Port{ID: "y", NetworkID: "n1", FixedIPs: []FixedIP{{SubnetID: "s1", IPAddress: "10.90.1.10"}}}))
}

func portIDs(ps []Port) string {
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return strings.Join(ids, ",")
}

func contractListPorts(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	fixture(t, s)
	tests := []struct {
		name string
		f    PortFilter
		want string
	}{
		{"all, in creation order", PortFilter{}, "rp1,dp1,vp1,vp2"},
		{"network", PortFilter{NetworkIDs: []string{"n2"}}, "vp2"},
		{"networks OR", PortFilter{NetworkIDs: []string{"n1", "n2"}}, "rp1,dp1,vp1,vp2"},
		{"device", PortFilter{DeviceIDs: []string{"i1"}}, "vp1,vp2"},
		{"router interfaces (agent's first query)", PortFilter{DeviceIDs: []string{"r1"}, DeviceOwners: routerOwners}, "rp1"},
		{"owner", PortFilter{DeviceOwners: []string{OwnerDHCP}}, "dp1"},
		{"ip", PortFilter{IPAddresses: []string{"10.90.1.10"}}, "vp1"},
		{"ip v6 other spelling", PortFilter{IPAddresses: []string{"FD00:90:1:0:0:0:0:10"}}, "vp1"},
		{"ip v4-mapped", PortFilter{IPAddresses: []string{"::ffff:10.90.2.10"}}, "vp2"},
		{"ips OR", PortFilter{IPAddresses: []string{"10.90.1.10", "10.90.2.10"}}, "vp1,vp2"},
		{"network AND ip (agent's second query)", PortFilter{NetworkIDs: []string{"n1"}, IPAddresses: []string{"10.90.1.10"}}, "vp1"},
		{"network AND ip, no match", PortFilter{NetworkIDs: []string{"n2"}, IPAddresses: []string{"10.90.1.10"}}, ""},
		{"mac, any case", PortFilter{MACAddresses: []string{"FA:16:3E:00:00:11"}}, "vp2"},
		{"device AND owner, no match", PortFilter{DeviceIDs: []string{"i1"}, DeviceOwners: []string{OwnerDHCP}}, ""},
		{"unknown ip", PortFilter{IPAddresses: []string{"10.90.1.99"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := s.ListPorts(ctx, tt.f)
			must(t, err)
			if got := portIDs(ps); got != tt.want {
				t.Errorf("ListPorts(%+v) = %q, want %q", tt.f, got, tt.want)
			}
		})
	}
	// A port matched by one address comes back with all of them.
	ps, err := s.ListPorts(ctx, PortFilter{IPAddresses: []string{"fd00:90:1::10"}})
	must(t, err)
	if len(ps) != 1 || len(ps[0].FixedIPs) != 2 {
		t.Errorf("matched port's addresses: %+v", ps)
	}
}

func contractInstanceView(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	fixture(t, s)
	for _, ref := range []string{"i1", "vm1"} {
		v, err := s.InstanceView(ctx, ref)
		must(t, err)
		if v.Instance.ID != "i1" || v.Project.Name != "demo" || len(v.Ports) != 2 {
			t.Fatalf("InstanceView(%s) = %+v", ref, v)
		}
		p0, p1 := v.Ports[0], v.Ports[1]
		if p0.Port.ID != "vp1" || p0.Network.Name != "net1" || len(p0.Subnets) != 2 ||
			p0.Subnets[0].ID != "s1" || p0.Subnets[1].ID != "s1v6" {
			t.Errorf("port 0 = %+v", p0)
		}
		if p1.Port.ID != "vp2" || p1.Network.ID != "n2" || len(p1.Subnets) != 1 || p1.Subnets[0].CIDR != "10.90.2.0/24" {
			t.Errorf("port 1 = %+v", p1)
		}
	}
	// An instance whose project was never recorded still has a view.
	must(t, s.PutInstance(ctx, Instance{ID: "i2", Name: "vm2", ProjectID: "p-unknown"}))
	v, err := s.InstanceView(ctx, "vm2")
	must(t, err)
	if v.Project.ID != "p-unknown" || len(v.Ports) != 0 {
		t.Errorf("InstanceView(vm2) = %+v", v)
	}
	if _, err := s.InstanceView(ctx, "vm9"); !errors.Is(err, ErrNotFound) {
		t.Errorf("InstanceView(vm9) = %v", err)
	}
}

func contractCascades(t *testing.T, b backend) {
	ctx := context.Background()
	tests := []struct {
		name      string
		del       func(s Store) error
		goneports string // ports that must be gone
		keptports string // ports that must remain
		check     func(t *testing.T, s Store)
	}{
		{
			name: "network", del: func(s Store) error { return s.DeleteNetwork(ctx, "n1") },
			goneports: "rp1,dp1,vp1", keptports: "vp2",
			check: func(t *testing.T, s Store) {
				if l, _ := s.ListSubnets(ctx, "n1"); len(l) != 0 {
					t.Errorf("subnets left: %+v", l)
				}
			},
		},
		{
			name: "router", del: func(s Store) error { return s.DeleteRouter(ctx, "r1") },
			goneports: "rp1", keptports: "dp1,vp1,vp2",
		},
		{
			name: "instance", del: func(s Store) error { return s.DeleteInstance(ctx, "i1") },
			goneports: "vp1,vp2", keptports: "rp1,dp1",
			check: func(t *testing.T, s Store) {
				// The password row went too: a new instance with the
				// same id may set one again.
				must(t, s.PutInstance(ctx, Instance{ID: "i1"}))
				if pw, err := s.Password(ctx, "i1"); err != nil || pw != "" {
					t.Errorf("password after re-create = %q, %v", pw, err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := b.open(t)
			fixture(t, s)
			must(t, s.SetPassword(ctx, "i1", "secret"))
			must(t, tt.del(s))
			for _, id := range strings.Split(tt.goneports, ",") {
				if _, err := s.GetPort(ctx, id); !errors.Is(err, ErrNotFound) {
					t.Errorf("port %s: %v, want gone", id, err)
				}
			}
			for _, id := range strings.Split(tt.keptports, ",") {
				if _, err := s.GetPort(ctx, id); err != nil {
					t.Errorf("port %s: %v, want kept", id, err)
				}
			}
			if err := tt.del(s); !errors.Is(err, ErrNotFound) {
				t.Errorf("second delete = %v, want ErrNotFound", err)
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

func contractPasswords(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	fixture(t, s)
	pw, err := s.Password(ctx, "i1")
	must(t, err)
	if pw != "" {
		t.Errorf("no password yet: %q", pw)
	}
	must(t, s.SetPassword(ctx, "i1", "first"))
	if err := s.SetPassword(ctx, "i1", "second"); !errors.Is(err, ErrConflict) {
		t.Errorf("second SetPassword = %v, want ErrConflict", err)
	}
	pw, err = s.Password(ctx, "i1")
	must(t, err)
	if pw != "first" {
		t.Errorf("Password = %q, want first", pw)
	}
	if err := s.SetPassword(ctx, "nope", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetPassword(unknown instance) = %v", err)
	}
}

func contractSettings(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	must(t, s.SetSetting(ctx, "force_metadata", "True"))
	must(t, s.SetSetting(ctx, "dhcp_domain", "example.org"))
	if err := s.SetSetting(ctx, "no_such_setting", "1"); err == nil {
		t.Error("unknown setting accepted")
	}
	if err := s.SetSetting(ctx, "nova_metadata_port", "0"); err == nil {
		t.Error("invalid value accepted")
	}
	m, err := s.Settings(ctx)
	must(t, err)
	if !reflect.DeepEqual(m, map[string]string{"force_metadata": "true", "dhcp_domain": "example.org"}) {
		t.Errorf("Settings = %v", m)
	}
	must(t, s.UnsetSetting(ctx, "dhcp_domain"))
	must(t, s.UnsetSetting(ctx, "dhcp_domain"))
	m, err = s.Settings(ctx)
	must(t, err)
	if len(m) != 1 {
		t.Errorf("after unset: %v", m)
	}
}

func contractUpdateRollsBack(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	fixture(t, s)
	g0, err := s.Generation(ctx)
	must(t, err)
	boom := errors.New("boom")
	err = s.Update(ctx, func(tx Tx) error {
		must(t, tx.PutNetwork(ctx, Network{ID: "n9", Name: "net9"}))
		must(t, tx.DeleteInstance(ctx, "i1"))
		must(t, tx.SetSetting(ctx, "force_metadata", "true"))
		// Reads inside see the transaction's own writes.
		if _, err := tx.GetNetwork(ctx, "net9"); err != nil {
			t.Errorf("tx does not see its write: %v", err)
		}
		if _, err := tx.GetInstance(ctx, "vm1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("tx still sees deleted instance: %v", err)
		}
		if _, err := s.GetNetwork(ctx, "net9"); !errors.Is(err, ErrNotFound) {
			t.Errorf("uncommitted write visible outside: %v", err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	if _, err := s.GetNetwork(ctx, "net9"); !errors.Is(err, ErrNotFound) {
		t.Errorf("rolled-back network exists: %v", err)
	}
	v, err := s.InstanceView(ctx, "vm1")
	must(t, err)
	if len(v.Ports) != 2 {
		t.Errorf("rolled-back delete removed ports: %+v", v.Ports)
	}
	if m, _ := s.Settings(ctx); len(m) != 0 {
		t.Errorf("rolled-back setting stored: %v", m)
	}
	if g, _ := s.Generation(ctx); g != g0 {
		t.Errorf("generation moved on rollback: %d → %d", g0, g)
	}
	// A failing write in its own transaction leaves nothing either.
	if err := s.PutPort(ctx, Port{ID: "z", NetworkID: "n1", FixedIPs: []FixedIP{
		{SubnetID: "s1", IPAddress: "10.90.1.50"}, {SubnetID: "s1", IPAddress: "10.90.1.10"}}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("PutPort = %v", err)
	}
	if _, err := s.GetPort(ctx, "z"); !errors.Is(err, ErrNotFound) {
		t.Errorf("half-written port: %v", err)
	}
	// A panic rolls back too and leaves the writer usable.
	func() {
		defer func() { recover() }()
		s.Update(ctx, func(tx Tx) error {
			tx.PutNetwork(ctx, Network{ID: "n10"})
			panic("bad")
		})
	}()
	if _, err := s.GetNetwork(ctx, "n10"); !errors.Is(err, ErrNotFound) {
		t.Errorf("write before panic committed: %v", err)
	}
	must(t, s.PutNetwork(ctx, Network{ID: "n11"}))
}

func TestMigrationsIdempotent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mdctl.db")
	for round := range 3 {
		s, err := OpenSQLite(path)
		must(t, err)
		if round == 0 {
			fixture(t, s)
		}
		var n int
		must(t, s.pools().rdb.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n))
		names, _ := migrationFS.ReadDir("migrations")
		if n != len(names) {
			t.Errorf("round %d: %d migrations recorded, want %d", round, n, len(names))
		}
		if _, err := s.GetInstance(ctx, "vm1"); err != nil {
			t.Errorf("round %d: data lost on reopen: %v", round, err)
		}
		var mode string
		must(t, s.pools().rdb.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode))
		if mode != "wal" {
			t.Errorf("journal_mode = %s", mode)
		}
		must(t, s.Close())
	}
}

func contractGenerationBumps(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	fixture(t, s)
	// Each write bumps the generation once, except those that change
	// nothing served: a guest's password (never cached), a put of what is
	// stored already, a setting set to its value or unset when not set.
	writes := []struct {
		name string
		fn   func() error
		bump bool
	}{
		{"put project", func() error { return s.PutProject(ctx, Project{ID: "p2"}) }, true},
		{"put project again", func() error { return s.PutProject(ctx, Project{ID: "p2"}) }, false},
		{"put network", func() error { return s.PutNetwork(ctx, Network{ID: "n3"}) }, true},
		{"put network again", func() error { return s.PutNetwork(ctx, Network{ID: "n3"}) }, false},
		{"rename network", func() error { return s.PutNetwork(ctx, Network{ID: "n3", Name: "net3"}) }, true},
		{"put subnet", func() error { return s.PutSubnet(ctx, Subnet{ID: "s3", NetworkID: "n3", CIDR: "10.90.3.0/24"}) }, true},
		{"put subnet again", func() error { return s.PutSubnet(ctx, Subnet{ID: "s3", NetworkID: "n3", CIDR: "10.90.3.0/24"}) }, false},
		{"put port", func() error {
			return s.PutPort(ctx, Port{ID: "x", NetworkID: "n3", MACAddress: "FA:16:3E:00:00:99",
				FixedIPs: []FixedIP{{SubnetID: "s3", IPAddress: "10.90.3.9"}}})
		}, true},
		{"put port again, written another way", func() error {
			return s.PutPort(ctx, Port{ID: "x", NetworkID: "n3", MACAddress: "fa:16:3e:00:00:99",
				FixedIPs: []FixedIP{{SubnetID: "s3", IPAddress: "::ffff:10.90.3.9"}}})
		}, false},
		{"move port address", func() error {
			return s.PutPort(ctx, Port{ID: "x", NetworkID: "n3", MACAddress: "fa:16:3e:00:00:99",
				FixedIPs: []FixedIP{{SubnetID: "s3", IPAddress: "10.90.3.8"}}})
		}, true},
		{"delete port", func() error { return s.DeletePort(ctx, "x") }, true},
		{"delete subnet", func() error { return s.DeleteSubnet(ctx, "s3") }, true},
		{"delete network", func() error { return s.DeleteNetwork(ctx, "n3") }, true},
		{"put router", func() error { return s.PutRouter(ctx, Router{ID: "r2"}) }, true},
		{"put router again", func() error { return s.PutRouter(ctx, Router{ID: "r2"}) }, false},
		{"delete router", func() error { return s.DeleteRouter(ctx, "r2") }, true},
		{"put instance", func() error { return s.PutInstance(ctx, Instance{ID: "i2", UserData: []byte{}}) }, true},
		{"put instance again", func() error { return s.PutInstance(ctx, Instance{ID: "i2", Meta: Meta{}}) }, false},
		{"set password", func() error { return s.SetPassword(ctx, "i2", "pw") }, false},
		{"delete instance", func() error { return s.DeleteInstance(ctx, "i2") }, true},
		{"set setting", func() error { return s.SetSetting(ctx, "force_metadata", "true") }, true},
		{"set setting to its value", func() error { return s.SetSetting(ctx, "force_metadata", "True") }, false},
		{"unset setting", func() error { return s.UnsetSetting(ctx, "force_metadata") }, true},
		{"unset setting not set", func() error { return s.UnsetSetting(ctx, "force_metadata") }, false},
	}
	prev, err := s.Generation(ctx)
	must(t, err)
	for _, w := range writes {
		must(t, w.fn())
		g, err := s.Generation(ctx)
		must(t, err)
		want := prev
		if w.bump {
			want++
		}
		if g != want {
			t.Errorf("%s: generation %d → %d, want %d", w.name, prev, g, want)
		}
		prev = g
	}
	// A failed write and a read-only Update change nothing.
	if err := s.PutPort(ctx, Port{ID: "y", NetworkID: "nope"}); err == nil {
		t.Fatal("PutPort on a missing network accepted")
	}
	must(t, s.Update(ctx, func(tx Tx) error { _, err := tx.ListPorts(ctx, PortFilter{}); return err }))
	if g, _ := s.Generation(ctx); g != prev {
		t.Errorf("generation moved without a commit: %d → %d", prev, g)
	}
	// Inside a transaction the counter reads as the tx sees it.
	must(t, s.Update(ctx, func(tx Tx) error {
		g, err := tx.Generation(ctx)
		if g != prev {
			t.Errorf("tx generation = %d, want %d", g, prev)
		}
		return err
	}))
}

func contractErrorsNameTheRecord(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	tests := []struct {
		get  func() error
		want string
	}{
		{func() error { _, err := s.GetProject(ctx, "x"); return err }, `project "x": not found`},
		{func() error { _, err := s.GetNetwork(ctx, "x"); return err }, `network "x": not found`},
		{func() error { _, err := s.GetSubnet(ctx, "x"); return err }, `subnet "x": not found`},
		{func() error { _, err := s.GetRouter(ctx, "x"); return err }, `router "x": not found`},
		{func() error { _, err := s.GetPort(ctx, "x"); return err }, `port "x": not found`},
		{func() error { _, err := s.GetInstance(ctx, "x"); return err }, `instance "x": not found`},
		{func() error { return s.DeleteNetwork(ctx, "x") }, `network "x": not found`},
		{func() error { return s.DeleteInstance(ctx, "x") }, `instance "x": not found`},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			err := tt.get()
			if !errors.Is(err, ErrNotFound) || err.Error() != tt.want {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	for _, put := range []error{s.PutProject(ctx, Project{}), s.PutNetwork(ctx, Network{}), s.PutInstance(ctx, Instance{})} {
		if put == nil || !strings.Contains(put.Error(), "id is required") {
			t.Errorf("Put without id = %v", put)
		}
	}
}

func TestOpenConcurrentlyNewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mdctl.db")
	const n = 4
	errs := make(chan error, n)
	handles := make(chan *SQLite, n)
	for range n {
		go func() {
			s, err := OpenSQLite(path)
			errs <- err
			handles <- s
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent open: %v", err)
		}
		if s := <-handles; s != nil {
			defer s.Close()
		}
	}
	s, err := OpenSQLite(path)
	must(t, err)
	defer s.Close()
	var count int
	must(t, s.pools().rdb.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&count))
	if names, _ := migrationFS.ReadDir("migrations"); count != len(names) {
		t.Errorf("%d migrations recorded, want %d", count, len(names))
	}
}

func TestRefuseNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mdctl.db")
	s, err := OpenSQLite(path)
	must(t, err)
	_, err = s.pools().wdb.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`)
	must(t, err)
	must(t, s.Close())
	if _, err := OpenSQLite(path); err == nil || !strings.Contains(err.Error(), "upgrade mdctl") {
		t.Errorf("open of a newer schema = %v", err)
	}
}
