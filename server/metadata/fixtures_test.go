package metadata

import (
	"encoding/json"
	"time"

	"github.com/mdctl/mdctl/store"
)

// counterReader is a deterministic random source: byte n is n+n/256 (mod
// 256). Each read continues where the last stopped, so two 512-byte seeds
// differ.
type counterReader struct{ n uint64 }

func (r *counterReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r.n + r.n>>8)
		r.n++
	}
	return len(p), nil
}

var fixedNow = time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)

// fullView is a representative instance: keys, meta, user data, admin
// password, and two ports with IPv4 and IPv6 (static, DHCP and SLAAC),
// host routes and DNS servers shared between subnets.
func fullView() store.InstanceView {
	return store.InstanceView{
		Instance: store.Instance{
			ID:               "5f0b7d4e-2c1a-4b8e-9d3f-6a7b8c9d0e1f",
			Name:             "web-1 \"primary\" é",
			Hostname:         "web-1",
			ProjectID:        "0123456789abcdef0123456789abcdef",
			AvailabilityZone: "nova",
			Flavor:           "m1.small",
			LaunchIndex:      0,
			// Not sorted: nova keeps its rows' order (see store.Meta).
			Meta: store.Meta{{Key: "tier", Value: "front<end>&"}, {Key: "role", Value: "web"}},
			Keys: []store.Key{
				{Name: "mykey", Type: "ssh", Data: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE1mdctl user@host\n"},
				{Name: "backup", Type: "ssh", Data: "ssh-rsa AAAAB3NzaC1yc2E backup@host"},
			},
			UserData:  []byte("#cloud-config\nruncmd:\n  - echo hello\n"),
			AdminPass: "s3cret",
			EC2ID:     42,
		},
		Project: store.Project{ID: "0123456789abcdef0123456789abcdef", Name: "demo"},
		Ports: []store.PortView{
			{
				Port: store.Port{
					ID: "a1b2c3d4-e5f6-4711-8899-aabbccddeeff", NetworkID: "net-static",
					MACAddress: "fa:16:3e:11:22:33",
					FixedIPs: []store.FixedIP{
						{SubnetID: "sub-v4-static", IPAddress: "10.90.1.10"},
						{SubnetID: "sub-v4-static", IPAddress: "10.90.1.11"},
						{SubnetID: "sub-v6-static", IPAddress: "2001:db8:1::10"},
					},
					DeviceOwner:    store.OwnerCompute,
					SecurityGroups: []string{"default", "web"},
				},
				Network: store.Network{ID: "net-static", Name: "static", MTU: 1450},
				Subnets: []store.Subnet{
					{
						ID: "sub-v4-static", NetworkID: "net-static", IPVersion: 4, CIDR: "10.90.1.0/24",
						GatewayIP: "10.90.1.1", DNSNameservers: []string{"10.90.1.2", "9.9.9.9"},
						HostRoutes: []store.HostRoute{
							{Destination: "10.90.100.0/24", NextHop: "10.90.1.254"},
							{Destination: "169.254.169.254/32", NextHop: "10.90.1.2"},
						},
					},
					{
						ID: "sub-v6-static", NetworkID: "net-static", IPVersion: 6, CIDR: "2001:db8:1::/64",
						GatewayIP: "2001:db8:1::1", DNSNameservers: []string{"2001:db8:1::53"},
						HostRoutes: []store.HostRoute{{Destination: "2001:db8:99::/48", NextHop: "2001:db8:1::fe"}},
					},
				},
			},
			{
				Port: store.Port{
					ID: "b2c3d4e5-f6a7-4811-9900-112233445566", NetworkID: "net-dhcp",
					MACAddress: "fa:16:3e:44:55:66",
					FixedIPs: []store.FixedIP{
						{SubnetID: "sub-v4-dhcp", IPAddress: "10.90.2.20"},
						{SubnetID: "sub-v6-slaac", IPAddress: "2001:db8:2::f816:3eff:fe44:5566"},
					},
					DeviceOwner:    store.OwnerCompute,
					SecurityGroups: []string{"default"},
				},
				Network: store.Network{ID: "net-dhcp", Name: "dhcp", MTU: 1500},
				Subnets: []store.Subnet{
					{
						ID: "sub-v4-dhcp", NetworkID: "net-dhcp", IPVersion: 4, CIDR: "10.90.2.0/24",
						GatewayIP: "10.90.2.1", EnableDHCP: true, DNSNameservers: []string{"9.9.9.9"},
					},
					{
						ID: "sub-v6-slaac", NetworkID: "net-dhcp", IPVersion: 6, CIDR: "2001:db8:2::/64",
						GatewayIP: "2001:db8:2::1", EnableDHCP: true, IPv6AddressMode: "slaac",
						DNSNameservers: []string{"2001:db8:1::53", "2001:db8:2::53"},
					},
				},
			},
		},
	}
}

func fullOptions() Options {
	return Options{
		Now:          fixedNow,
		DHCPDomain:   "novalocal",
		Providers:    []string{StaticJSON, DynamicJSON},
		StaticVendor: json.RawMessage(`{"cloud-init": "#cloud-config\npackages: [htop]", "n": [1, 2.50, 1E2, -0], "nested": {"b": true, "a": null}}`),
		// In vendordata_dynamic_targets order, which vendor_data2.json keeps.
		DynamicVendor: []VendorAnswer{
			{"static", json.RawMessage(`{"dropped": "duplicate of the static key"}`)},
			{"zeta", json.RawMessage(`{}`)},
			{"billing", json.RawMessage(`{"plan":"gold","id":7}`)},
		},
		RemoteAddr: "10.90.1.10",
		Rand:       &counterReader{},
	}
}

// minimalView has nothing optional: no keys, meta, user data or ports.
func minimalView() store.InstanceView {
	return store.InstanceView{
		Instance: store.Instance{
			ID:               "00000000-0000-4000-8000-000000000001",
			Name:             "bare",
			Hostname:         "bare",
			ProjectID:        "fedcba9876543210fedcba9876543210",
			AvailabilityZone: "az-2",
			Flavor:           "tiny",
			LaunchIndex:      3,
			EC2ID:            0x1234abcd,
		},
	}
}

func minimalOptions() Options {
	return Options{
		Now:        fixedNow,
		RemoteAddr: "10.90.9.9",
		Rand:       &counterReader{},
	}
}
