package dataplane

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDnsmasqLeaseAndReload: a real dnsmasq in the qdhcp namespace leases
// a lab guest its address and neutron's option 121 routes; a switch
// rewrites the opts, the same dnsmasq reloads (SIGHUP, no restart) and the
// guest's next lease carries the new metadata hop; Close stops it.
func TestDnsmasqLeaseAndReload(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat(DnsmasqBinary); err != nil {
		t.Skip("needs dnsmasq (dnsmasq-base)")
	}
	if _, err := exec.LookPath(DHCPClientBinary); err != nil {
		t.Skip("needs dhclient (isc-dhcp-client)")
	}
	opts := testOptions(t)
	opts.StateDir = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := newLab()
	l.cfg.EnableIsolatedMetadata = false
	d := l.plan()
	cleanupNS(t, l.namespaces(d)...)
	rec := NewReconciler(opts)
	t.Cleanup(func() {
		LabDown(context.Background(), opts)
		rec.Teardown(context.Background())
	})
	if err := rec.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	if len(d.DHCPServers) != 2 || len(d.DHCP) != 0 {
		t.Fatalf("plan: %d DHCP servers, %d metadata namespaces; want 2 and 0", len(d.DHCPServers), len(d.DHCP))
	}
	dm := NewDnsmasq(DnsmasqOptions{StateDir: opts.DHCPStateDir()})
	defer dm.Close()
	if err := dm.Sync(d.DHCPServers); err != nil {
		t.Fatal(err)
	}
	isoNet := l.networks[1].ID
	waitListening(t, DHCPNamespace(isoNet))
	pid := dm.Running(isoNet)

	guests := Guests(d, l.views)
	vm2 := guests[1]
	if vm2.DHCPServer != "10.90.12.2" {
		t.Fatalf("vm2's DHCP server = %q", vm2.DHCPServer)
	}
	if err := LabUp(ctx, opts, guests); err != nil {
		t.Fatal(err)
	}
	ns := GuestNamespace(opts.GuestPrefix, vm2)
	if r := ipRoute(t, ns); strings.Contains(r, "169.254.169.254") || !strings.Contains(r, "default via 10.90.12.1 dev eth0 proto dhcp") {
		t.Errorf("isolated guest, switches off: routes\n%s\nwant a DHCP default route and no metadata route", r)
	}

	l.cfg.EnableIsolatedMetadata = true
	d = l.plan()
	if err := rec.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := dm.Sync(d.DHCPServers); err != nil {
		t.Fatal(err)
	}
	if got := dm.Running(isoNet); got != pid || pid == 0 {
		t.Errorf("dnsmasq pid %d → %d: want the same process, reloaded", pid, got)
	}
	if err := LabUp(ctx, opts, Guests(d, l.views)); err != nil {
		t.Fatal(err)
	}
	if r := ipRoute(t, ns); !strings.Contains(r, "169.254.169.254 via 10.90.12.2 dev eth0 proto dhcp") {
		t.Errorf("after the switch and a renewal, routes:\n%s\nwant 169.254.169.254 via the DHCP port, proto dhcp", r)
	}
	if b, err := os.ReadFile(filepath.Join(opts.DHCPStateDir(), isoNet, "opts")); err != nil || !strings.Contains(string(b), "169.254.169.254/32,10.90.12.2") {
		t.Errorf("opts file: %s %v", b, err)
	}

	dm.Close()
	if dm.Running(isoNet) != 0 {
		t.Error("dnsmasq still running after Close")
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		t.Errorf("dnsmasq pid %d still alive after Close", pid)
	}
}

func waitListening(t *testing.T, ns string) {
	t.Helper()
	for range 100 {
		if ok, _ := dhcpServerListening(ns); ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no DHCP server listening in %s", ns)
}

func ipRoute(t *testing.T, ns string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "ip", "-4", "route", "show").Output()
	if err != nil {
		t.Fatalf("ip route in %s: %v", ns, err)
	}
	return string(out)
}

// TestDnsmasqArgsAuthoritative: dnsmasq is authoritative on mdctl's own
// segment, and not on the operator's L2, where an authoritative server
// would NAK the renewals of machines the operator's DHCP serves.
func TestDnsmasqArgsAuthoritative(t *testing.T) {
	for _, onHost := range []bool{false, true} {
		srv := DHCPServer{NetworkID: "n1", Interface: Interface{Name: "ns-1", OnHost: onHost}}
		args := strings.Join(dnsmasqArgs(srv, "/run/x"), " ")
		if got := strings.Contains(args, "--dhcp-authoritative"); got == onHost {
			t.Errorf("onHost=%v: authoritative=%v in %s", onHost, got, args)
		}
	}
}
