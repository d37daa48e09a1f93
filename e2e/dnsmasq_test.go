package e2e

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/dataplane"
)

// Two networks: one whose subnet names a DNS server, one whose does not.
const dnsTopo = `
settings:
  metadata_proxy_shared_secret: s3cret
networks:
  - {name: named, project: demo, cidr: 10.90.35.0/24, dns: [10.90.0.53]}
  - {name: plain, project: demo, cidr: 10.90.36.0/24}
instances:
  - {name: vm-named, project: demo, network: named, ip: 10.90.35.10}
  - {name: vm-plain, project: demo, network: plain, ip: 10.90.36.10}
`

// TestGuestLeaseAsNeutron: what a guest's DHCP client is told is what
// neutron's dnsmasq tells it with neutron's defaults
// (neutron/agent/linux/dhcp.py, neutron/conf/common.py): a lease of
// dhcp_lease_duration = 86400 s, the subnet's dns_nameservers as option 6
// (the DHCP port itself when there are none, which then resolves the
// guests' names), dns_domain = openstacklocal as option 15 and the
// host-<ip> name as option 12.
func TestGuestLeaseAsNeutron(t *testing.T) {
	requireDHCP(t)
	w := testworld.New(t, dnsTopo)
	w.StartServe(testworld.ServeOptions{})
	waitDHCPServer(t, w, "named")
	waitDHCPServer(t, w, "plain")
	w.LabUp()
	for _, tc := range []struct{ vm, ip, dns string }{
		{"vm-named", "10.90.35.10", "10.90.0.53"},
		{"vm-plain", "10.90.36.10", "10.90.36.2"},
	} {
		t.Run(tc.vm, func(t *testing.T) {
			lease := leaseFile(t, w, w.GuestNS(tc.vm))
			for _, want := range []string{
				"fixed-address " + tc.ip + ";",
				"option dhcp-lease-time 86400;",
				"option domain-name-servers " + tc.dns + ";",
				`option domain-name "openstacklocal";`,
				`option host-name "host-` + strings.ReplaceAll(tc.ip, ".", "-") + `";`,
			} {
				if !strings.Contains(lease, want) {
					t.Errorf("lease lacks %q:\n%s", want, lease)
				}
			}
		})
	}
	t.Run("the DHCP port resolves the guests' names", func(t *testing.T) {
		ns := w.GuestNS("vm-plain")
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dataplane.DialContext(ctx, ns, network, "10.90.36.2:53")
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		addrs, err := r.LookupHost(ctx, "host-10-90-36-10.openstacklocal")
		if err != nil || len(addrs) != 1 || addrs[0] != "10.90.36.10" {
			t.Fatalf("host-10-90-36-10.openstacklocal at the DHCP port: %v %v, want 10.90.36.10", addrs, err)
		}
		names, err := r.LookupAddr(ctx, "10.90.36.10")
		if err != nil || len(names) == 0 || names[0] != "host-10-90-36-10.openstacklocal." {
			t.Errorf("PTR of 10.90.36.10: %v %v, want the FQDN first", names, err)
		}
	})
}
