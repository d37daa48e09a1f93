package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testimage"
	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/server/vm"
	"github.com/mdctl/mdctl/server/vmspec"
	"github.com/mdctl/mdctl/store"
)

// vmBootBound bounds one VM's boot to its report: about a minute and a
// half under TCG on an idle 2-core machine, several on a busy one.
const vmBootBound = 10 * time.Minute

const vmKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMdctlVmTestKey00000000000000000000000000 vmtest"

// vmTopo is one instance, name, on one network whose YAML (a line of a
// networks: entry, after the name) is net; settings are extra settings
// lines. The user data's runcmd leaves a token the report shows.
func vmTopo(name, net, settings, instanceExtra string) string {
	return fmt.Sprintf(`
settings:
  metadata_proxy_shared_secret: s3cret
%s
routers:
  - {name: r1, project: demo}
networks:
  - {name: n1, project: demo, %s}
instances:
  - name: %s
    project: demo
    network: n1
    hostname: %s-host
    public_keys: {default: "%s"}
%s
    user_data: |
      #cloud-config
      runcmd:
        - echo mdctl-runcmd-%s > /var/tmp/mdctl-runcmd
`, settings, net, name, name, vmKey, instanceExtra, name)
}

// requireQEMU skips, saying why, where no VM can run at all.
func requireQEMU(t *testing.T) {
	t.Helper()
	testworld.RequireRoot(t)
	for _, bin := range []string{vm.QEMU, vm.QEMUImg, "debootstrap", "mkfs.ext4"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("VM tests need %s (make test-deps installs qemu-system-x86, qemu-utils, debootstrap, e2fsprogs): %v", bin, err)
		}
	}
	if out, err := exec.Command(vm.QEMU, "-version").CombinedOutput(); err != nil {
		t.Skipf("VM tests: %s cannot run here: %v: %s", vm.QEMU, err, out)
	}
}

// vmCase is one boot and what it must show.
type vmCase struct {
	name     string
	net      string // the network's YAML fields
	settings string
	extra    string // extra instance fields
	// datasource is the start of result.json's datasource; source, when
	// set, the config drive device it must name.
	datasource, source string
	metadataVia        string // "router", "dhcp" or "" (no metadata service)
	// hostBridge, when set, is a plain Linux bridge of a test host (not
	// mdctl's segment) that the network names: the operator's L2.
	hostBridge string
}

// TestVMsBootConfigured boots the test image (Debian bookworm, the real
// cloud-init 22.4) as QEMU VMs, two at a time, and judges each from its
// console and the report its mdctl-report unit writes after cloud-final.
func TestVMsBootConfigured(t *testing.T) {
	requireQEMU(t)
	requireDHCP(t)
	im := ensureImage(t)
	cases := []vmCase{
		{name: "vmrouter", net: "cidr: 10.90.81.0/24, router: r1", datasource: "DataSourceOpenStackLocal", metadataVia: "router"},
		{name: "vmdhcp", net: "cidr: 10.90.82.0/24", settings: "  enable_isolated_metadata: \"true\"", datasource: "DataSourceOpenStackLocal", metadataVia: "dhcp"},
		{name: "vmcdiso", net: "cidr: 10.90.83.0/24, enable_dhcp: false", settings: "  config_drive_format: iso9660", extra: "    config_drive: true",
			datasource: "DataSourceConfigDrive", source: "/dev/sr0"},
		{name: "vmcdvfat", net: "cidr: 10.90.84.0/24, enable_dhcp: false", settings: "  config_drive_format: vfat", extra: "    config_drive: true",
			datasource: "DataSourceConfigDrive", source: "/dev/vdb"},
		// The attach path: the VM's tap on a plain host bridge the
		// operator made, mdctl's router and DHCP ports plugged into it.
		{name: "vmhostbr", net: "cidr: 10.90.85.0/24, router: r1, bridge: br-vm", hostBridge: "br-vm",
			datasource: "DataSourceOpenStackLocal", metadataVia: "router"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // two at a time on two cores (go test -parallel defaults to GOMAXPROCS)
			bootAndJudge(t, im, c)
		})
	}
}

func ensureImage(t *testing.T) testimage.Image {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := time.Now()
	im, err := testimage.Ensure(ctx)
	if err != nil {
		t.Fatalf("test VM image: %v", err)
	}
	if d := time.Since(start); d > time.Minute {
		t.Logf("built the test VM image in %s", d.Round(time.Second))
	}
	return im
}

func bootAndJudge(t *testing.T, im testimage.Image, c vmCase) {
	w := testworld.New(t, vmTopo(c.name, c.net, c.settings, c.extra))
	if c.hostBridge != "" {
		w.Host(c.hostBridge)
	}
	w.StartServe(testworld.ServeOptions{})
	ctx := context.Background()
	snap, err := store.NewLive(w.Store, nil).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	guests, err := server.LabGuests(ctx, w.Store, snap.Config)
	if err != nil || len(guests) != 1 {
		t.Fatalf("guests: %v %v", guests, err)
	}
	g := guests[0]
	vms, err := server.LabVMUp(ctx, w.Store, snap.Config, server.LabVMOptions{
		DataDir: w.Dir, Dataplane: w.Dataplane, Image: im.Disk, Kernel: im.Kernel, Initrd: im.Initrd,
		Append: testimage.Append, Serials: []string{testimage.ReportSerial}, Logger: w.Log,
	}, []string{c.name})
	// Registered after the world's cleanup, so it runs first: the VMs go
	// before their segment namespace does.
	t.Cleanup(func() {
		if err := server.LabVMDown(w.Dir); err != nil {
			t.Errorf("lab vm down: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	v := vms[0]
	t.Logf("%s: accel %s (%s)", c.name, v.Accel, v.AccelReason)
	// QEMU's own tap (a tun device) on the network's bridge, marked as the lab's.
	if tap := dataplane.TapOf(w.Dataplane, g.PortID, g.OnHost); !tap.Exists || tap.Type != "tuntap" || !tap.Ours || tap.Master != g.Bridge || !tap.Up {
		t.Errorf("tap %s: %+v; want QEMU's tap, mdctl's, up on %s", dataplane.TapName(g.PortID), tap, g.Bridge)
	}
	rep, console, took := waitReport(t, v)
	t.Logf("%s: report after %s", c.name, took.Round(time.Second))
	judgeVM(t, c, g, rep, console)
	// What lab status shows as the requests serve saw: the crawl's, or
	// none for a guest that read its config drive.
	ac, err := admin.NewClient(filepath.Join(w.Dir, admin.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	seen, err := ac.Recent(ctx, g.InstanceID)
	if err != nil || (c.metadataVia != "") != (len(seen) > 0) {
		t.Errorf("serve saw %d requests of %s (%v); want some exactly when metadata is served (%q)", len(seen), c.name, err, c.metadataVia)
	}
}

// waitReport waits, bounded, for the VM's report; on a timeout or a dead
// QEMU it fails with the console's end.
func waitReport(t *testing.T, v server.LabVM) (testimage.Report, []byte, time.Duration) {
	t.Helper()
	start := time.Now()
	path := filepath.Join(v.Dir, testimage.ReportSerial)
	for deadline := start.Add(vmBootBound); ; time.Sleep(time.Second) {
		b, _ := os.ReadFile(path)
		if testimage.Complete(b) {
			rep, err := testimage.ParseReport(b)
			if err != nil {
				t.Fatalf("report: %v", err)
			}
			console, _ := os.ReadFile(v.Console())
			return rep, console, time.Since(start)
		}
		_, running := vm.Running(v.Dir)
		console, _ := os.ReadFile(v.Console())
		if panicked := vmspec.ParseConsole(string(console)).Panic; !running || panicked != "" || time.Now().After(deadline) {
			qlog, _ := os.ReadFile(filepath.Join(v.Dir, vm.LogFile))
			t.Fatalf("no report from %s after %s (running %v, panic %q); qemu.log: %s\nconsole's end:\n%s",
				v.Instance, time.Since(start).Round(time.Second), running, panicked, qlog, tailBytes(console, 3000))
		}
	}
}

func judgeVM(t *testing.T, c vmCase, g dataplane.Guest, rep testimage.Report, console []byte) {
	t.Helper()
	if rep.Status != "done" || rep.StatusRC != "0" || len(rep.Errors) > 0 {
		t.Errorf("cloud-init status %q (rc %s), errors %q; want done, 0, none\n%s", rep.Status, rep.StatusRC, rep.Errors, rep.Sections["status"])
	}
	for _, s := range []string{"init-local", "init", "modules-config", "modules-final"} {
		st, ok := rep.Stages[s]
		if !ok || !st.Ran() || len(st.Errors) > 0 {
			t.Errorf("stage %s: %+v (ran %v); want started, finished, no errors", s, st, ok && st.Ran())
		}
	}
	p := vmspec.ParseConsole(string(console))
	if p.Status() != vmspec.StatusDone || len(p.Stages) != 4 || !strings.HasPrefix(p.Datasource, c.datasource) {
		t.Errorf("console progress %+v; want done after 4 stages from %s", p, c.datasource)
	}
	if !strings.HasPrefix(rep.Datasource, c.datasource) || !strings.Contains(rep.Datasource, c.source) {
		t.Errorf("datasource %q; want %s %s", rep.Datasource, c.datasource, c.source)
	}
	if rep.Hostname != c.name+"-host" {
		t.Errorf("hostname %q; want %s-host from mdctl", rep.Hostname, c.name)
	}
	if !strings.Contains(rep.AuthorizedKeys, vmKey) {
		t.Errorf("authorized_keys %q; want mdctl's key", rep.AuthorizedKeys)
	}
	if rep.Runcmd != "mdctl-runcmd-"+c.name {
		t.Errorf("runcmd left %q; want mdctl-runcmd-%s", rep.Runcmd, c.name)
	}
	reads := strings.Count(rep.CloudInitLog, "Read from http://169.254.169.254/")
	switch c.metadataVia {
	case "":
		if reads > 0 {
			t.Errorf("%d reads from 169.254.169.254 with no metadata service", reads)
		}
	default:
		if reads == 0 {
			t.Errorf("no read from 169.254.169.254 in cloud-init.log")
		}
		tm, err := testimage.OpenStackTiming(rep.CloudInitLog)
		if err != nil || tm.Reads == 0 {
			t.Errorf("cloud-init.log's OpenStack search: %+v, %v", tm, err)
		}
		t.Logf("%s: search to end of crawl %s (DHCP %s, crawl %s, %d reads)", c.name, tm.Search, tm.DHCP, tm.Metadata, tm.Reads)
		// The route cloud-init printed (ci-info) goes where mdctl's plan
		// says: the router's or the DHCP port's address.
		hop := g.MetadataHop
		if hop == "" {
			hop = g.Gateway
		}
		if g.MetadataViaDHCP != (c.metadataVia == "dhcp") {
			t.Errorf("plan: metadata via DHCP %v; the case wants %s", g.MetadataViaDHCP, c.metadataVia)
		}
		if !routeVia(string(console), hop) {
			t.Errorf("no ci-info route to 169.254.169.254 or default via %s on the console", hop)
		}
	}
}

// routeVia finds a ci-info route line through hop: the metadata host route,
// or the default route when DHCP pushes none.
func routeVia(console, hop string) bool {
	for _, l := range strings.Split(console, "\n") {
		if !strings.Contains(l, "ci-info:") {
			continue
		}
		f := strings.Fields(strings.ReplaceAll(l, "|", " "))
		for i := 0; i+1 < len(f); i++ {
			if (f[i] == "169.254.169.254" || f[i] == "0.0.0.0") && f[i+1] == hop {
				return true
			}
		}
	}
	return false
}

func tailBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
