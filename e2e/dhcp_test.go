package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
)

// One router, a routed and an isolated network, a guest on each. Both
// networks have a DHCP port (the topology gives one to every DHCP network).
const dhcpTopo = `
settings:
  metadata_proxy_shared_secret: s3cret
routers:
  - {name: r1, project: demo}
networks:
  - {name: routed, project: demo, cidr: 10.90.21.0/24, router: r1}
  - {name: iso, project: demo, cidr: 10.90.22.0/24}
instances:
  - {name: vm-routed, project: demo, network: routed, ip: 10.90.21.10}
  - name: vm-iso
    project: demo
    network: iso
    ip: 10.90.22.10
    user_data: |
      #cloud-config
      hostname: vm-iso
`

func requireDHCP(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(dataplane.DnsmasqBinary); err != nil {
		t.Skip("needs dnsmasq (make test installs dnsmasq-base)")
	}
	if _, err := exec.LookPath(dataplane.DHCPClientBinary); err != nil {
		t.Skip("needs dhclient (make test installs isc-dhcp-client)")
	}
}

// dhcpWorld serves dhcpTopo, with configure (when not nil) applied to the
// world before serve starts, waits for network's DHCP server and builds the
// lab; it returns the world and the namespace of instance's guest.
func dhcpWorld(t *testing.T, network, instance string, configure func(*testworld.World)) (*testworld.World, string) {
	t.Helper()
	requireDHCP(t)
	w := testworld.New(t, dhcpTopo)
	if configure != nil {
		configure(w)
	}
	w.StartServe(testworld.ServeOptions{})
	waitDHCPServer(t, w, network)
	w.LabUp()
	return w, w.GuestNS(instance)
}

// waitDHCPServer waits until a DHCP server listens in the network's qdhcp
// namespace (the kernel's socket table, not mdctl's word for it).
func waitDHCPServer(t *testing.T, w *testworld.World, network string) {
	t.Helper()
	ns := dataplane.DHCPNamespace(w.Network(network).ID)
	testworld.WaitFor(t, 10*time.Second, "dnsmasq in "+ns, func() error {
		out, _, err := testworld.InNS(ns, 5*time.Second, "cat", "/proc/net/udp")
		if err != nil {
			return err
		}
		if !strings.Contains(out, ":0043 ") {
			return fmt.Errorf("nothing on udp 67")
		}
		return nil
	})
}

// waitOpts waits until the network's dnsmasq opts file holds (or, with
// want false, no longer holds) a metadata route via hop.
func waitOpts(t *testing.T, w *testworld.World, network, hop string, want bool) {
	t.Helper()
	path := filepath.Join(w.Dataplane.DHCPStateDir(), w.Network(network).ID, "opts")
	route := "169.254.169.254/32," + hop
	waitSwitch(t, fmt.Sprintf("opts with %s = %v", route, want), func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), route) != want {
			return fmt.Errorf("opts:\n%s", b)
		}
		return nil
	})
}

// metadataRoute is the guest's kernel route for 169.254.169.254.
func metadataRoute(t *testing.T, ns string) string {
	t.Helper()
	out, _, err := testworld.InNS(ns, 5*time.Second, "ip", "-4", "route", "show", "169.254.169.254/32")
	if err != nil {
		t.Fatalf("ip route in %s: %v", ns, err)
	}
	return strings.TrimSpace(out)
}

// leaseFile is the guest's dhclient lease database.
func leaseFile(t *testing.T, w *testworld.World, guestNS string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(w.Dataplane.GuestStateDir(guestNS), "dhclient.leases"))
	if err != nil {
		t.Fatalf("lease file of %s: %v", guestNS, err)
	}
	return string(b)
}

// rfc3442 is how dhclient's lease file spells a /32 route via hop in
// option 121: width, the four octets, the router's four octets.
func rfc3442(hop string) string {
	return "32,169,254,169,254," + strings.ReplaceAll(hop, ".", ",")
}

// assertDHCPRoute checks the guest's metadata route came from a real
// option 121 lease: the kernel route carries proto dhcp and the lease
// file holds the classless route.
func assertDHCPRoute(t *testing.T, w *testworld.World, ns, hop string) {
	t.Helper()
	r := metadataRoute(t, ns)
	if !strings.Contains(r, "via "+hop) || !strings.Contains(r, "proto dhcp") {
		t.Errorf("%s: metadata route %q, want via %s proto dhcp", ns, r, hop)
	}
	if lease := leaseFile(t, w, ns); !strings.Contains(lease, rfc3442(hop)) {
		t.Errorf("%s: lease lacks option 121 route %s:\n%s", ns, rfc3442(hop), lease)
	}
}

// TestIsolatedMetadataThroughDHCP: with enable_isolated_metadata, the
// isolated guest's DHCP lease routes 169.254.169.254 via the DHCP port,
// and cloud-init reads its metadata through qdhcp-…; the routed guest still
// goes through its router.
func TestIsolatedMetadataThroughDHCP(t *testing.T) {
	requireDHCP(t)
	w := testworld.New(t, dhcpTopo)
	w.Set("enable_isolated_metadata", "true")
	w.StartServe(testworld.ServeOptions{})
	waitDHCPServer(t, w, "iso")
	waitDHCPServer(t, w, "routed")
	waitOpts(t, w, "iso", "10.90.22.2", true)
	w.LabUp()
	iso, routed := w.GuestNS("vm-iso"), w.GuestNS("vm-routed")

	assertDHCPRoute(t, w, iso, "10.90.22.2")
	assertDHCPRoute(t, w, routed, "10.90.21.1")
	waitServing(t, iso)
	c := testworld.RunCrawl(t, iso, "openstack")
	if c.Name != "vm-iso" || c.Hostname != "vm-iso.novalocal" {
		t.Errorf("isolated guest read name=%q hostname=%q", c.Name, c.Hostname)
	}
	if ec2 := testworld.RunCrawl(t, iso, "ec2"); ec2.Hostname != "vm-iso.novalocal" {
		t.Errorf("isolated guest's ec2 reader got hostname %q", ec2.Hostname)
	}
	readsAs(t, routed, "vm-routed", "through its router")
}

// TestBothSwitchesOffIsolatedGetsNothing: an isolated guest with both
// switches off gets a lease without a metadata route, and no answer —
// neutron's third failure mode ("No route to metadata").
func TestBothSwitchesOffIsolatedGetsNothing(t *testing.T) {
	w, iso := dhcpWorld(t, "iso", "vm-iso", nil)
	if r := metadataRoute(t, iso); r != "" {
		t.Errorf("isolated guest has a metadata route with both switches off: %q", r)
	}
	lease := leaseFile(t, w, iso)
	if !strings.Contains(lease, "fixed-address 10.90.22.10") {
		t.Errorf("isolated guest got no lease:\n%s", lease)
	}
	if strings.Contains(lease, "32,169,254,169,254") {
		t.Errorf("lease carries a metadata route with both switches off:\n%s", lease)
	}
	ok, err := dataplane.NamespaceExists(dataplane.DHCPNamespace(w.Network("iso").ID))
	if err != nil || !ok {
		t.Errorf("the DHCP namespace should still serve DHCP: exists=%v %v", ok, err)
	}
	if code, body := testworld.Curl(iso, "http://169.254.169.254/openstack/latest/meta_data.json"); code != 0 {
		t.Errorf("isolated guest got an answer (%d %.100s) with both switches off", code, body)
	}
}

// TestForceMetadataLiveSwitch: on a running serve, force_metadata moves a
// routed guest's metadata to the DHCP namespace on its next lease (the
// route says so), and turning it off moves it back to the router.
func TestForceMetadataLiveSwitch(t *testing.T) {
	w, ns := dhcpWorld(t, "routed", "vm-routed", nil)
	assertDHCPRoute(t, w, ns, "10.90.21.1")
	waitServing(t, ns)

	w.Set("force_metadata", "true")
	waitOpts(t, w, "routed", "10.90.21.2", true)
	dhcpNS := dataplane.DHCPNamespace(w.Network("routed").ID)
	waitSwitch(t, "169.254.169.254 on the DHCP port", func() error {
		return hasAddr(dhcpNS, "169.254.169.254/32")
	})
	if v := configGet(t, w, "force_metadata"); v != "true" {
		t.Errorf("config get force_metadata = %q", v)
	}
	w.LabUp() // the guest renews its lease
	assertDHCPRoute(t, w, ns, "10.90.21.2")
	readsAs(t, ns, "vm-routed", "through the DHCP namespace")

	w.Set("force_metadata", "false")
	waitOpts(t, w, "routed", "10.90.21.1", true)
	waitSwitch(t, "169.254.169.254 gone from the DHCP port", func() error {
		if hasAddr(dhcpNS, "169.254.169.254/32") == nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
	w.LabUp()
	assertDHCPRoute(t, w, ns, "10.90.21.1")
	readsAs(t, ns, "vm-routed", "back through the router")
}

// TestIsolatedMetadataLiveSwitch: enable_isolated_metadata turned on and
// off on a running serve brings the isolated guest's metadata and takes it
// away, through its lease.
func TestIsolatedMetadataLiveSwitch(t *testing.T) {
	w, ns := dhcpWorld(t, "iso", "vm-iso", nil)
	if r := metadataRoute(t, ns); r != "" {
		t.Fatalf("metadata route before the switch: %q", r)
	}
	w.Set("enable_isolated_metadata", "true")
	waitOpts(t, w, "iso", "10.90.22.2", true)
	w.LabUp()
	assertDHCPRoute(t, w, ns, "10.90.22.2")
	waitServing(t, ns)

	w.Set("enable_isolated_metadata", "false")
	waitOpts(t, w, "iso", "10.90.22.2", false)
	w.LabUp()
	if r := metadataRoute(t, ns); r != "" {
		t.Errorf("metadata route after the switch went off: %q", r)
	}
	if code, _ := testworld.Curl(ns, "http://169.254.169.254/openstack"); code != 0 {
		t.Errorf("answer %d after the switch went off", code)
	}
}

// TestStaticRoutesOption: GuestRoutes static keeps DHCP out of the guest
// (no lease, routes proto static), and the chain still works.
func TestStaticRoutesOption(t *testing.T) {
	w, ns := dhcpWorld(t, "iso", "vm-iso", func(w *testworld.World) {
		w.Dataplane.GuestRoutes = dataplane.GuestRoutesStatic
		w.Set("enable_isolated_metadata", "true")
	})
	if r := metadataRoute(t, ns); !strings.Contains(r, "via 10.90.22.2") || !strings.Contains(r, "proto static") {
		t.Errorf("static metadata route = %q", r)
	}
	if _, err := os.Stat(filepath.Join(w.Dataplane.GuestStateDir(ns), "dhclient.leases")); err == nil {
		t.Error("a lease file exists though routes are static")
	}
	waitServing(t, ns)
}

// TestNoDHCPClientFallsBack: with no DHCP client installed the lab says so
// and gives static routes.
func TestNoDHCPClientFallsBack(t *testing.T) {
	_, ns := dhcpWorld(t, "iso", "vm-iso", func(w *testworld.World) {
		w.Dataplane.DHCPClient = "mdctl-no-such-dhclient"
		w.Set("enable_isolated_metadata", "true")
	})
	if r := metadataRoute(t, ns); !strings.Contains(r, "via 10.90.22.2") || !strings.Contains(r, "proto static") {
		t.Errorf("fallback metadata route = %q", r)
	}
	waitServing(t, ns)
}

func hasAddr(ns, cidr string) error {
	out, _, err := testworld.InNS(ns, 5*time.Second, "ip", "-o", "addr", "show")
	if err != nil {
		return err
	}
	if !strings.Contains(out, " "+cidr+" ") {
		return fmt.Errorf("%s lacks %s", ns, cidr)
	}
	return nil
}

// configGet is what `mdctl config get KEY` prints: the stored settings
// resolved with defaults.
func configGet(t *testing.T, w *testworld.World, key string) string {
	t.Helper()
	stored, err := w.Store.Settings(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := store.Resolve(stored, nil)
	if err != nil {
		t.Fatal(err)
	}
	return raw[key]
}

// A live switch must reach a running serve within switchGoal (issue 4).
// Tests log how long it took and fail only past switchLimit: timings are
// not asserted on a shared machine whose load we do not control.
const (
	switchGoal  = 2 * time.Second
	switchLimit = 15 * time.Second
)

func waitSwitch(t *testing.T, what string, cond func() error) {
	t.Helper()
	start := time.Now()
	testworld.WaitFor(t, switchLimit, what, cond)
	t.Logf("%s after %v (goal: within %v)", what, time.Since(start).Round(time.Millisecond), switchGoal)
}
