// Package multihost simulates several hosts on one machine for tests, as
// faithfully as namespaces allow, so that several `mdctl serve`s can be
// scheduled over and fail over between as they would between machines.
//
// Each Host is a network namespace (its "host" networking: lo, a
// management NIC, one Linux bridge per tenant segment) plus a machine of
// its own around it: a private mount namespace with fresh tmpfs on
// /run/netns, /run/mdctl and /var/lib, so the qrouter-…/qdhcp-…
// namespaces, the dnsmasq state and the data dir its mdctl makes are its
// own and invisible to the others (each host's mdctl runs with the
// default names, /var/lib/mdctl and mdctl-seg), a PID namespace
// whose init is the host's life (Kill ends every process on it at once,
// as a power cut does), and its own host name. Processes run on a host
// through nsenter into all of that.
//
// The Fabric is the wire between them: a namespace holding a management
// bridge (hosts at 10.98.0.<i>/24 on their eth0) and one bridge per
// tenant segment, which each host's bridge of that name reaches over a
// veth, as a provider network's switch joins the bridges of several
// neutron linuxbridge agents. A network stored with `bridge: <segment>`
// is thus one L2 segment on every host: a router namespace on host A and
// one on host B plug into the same wire. Guests are namespaces on that
// wire, VMs of a compute host the test does not simulate.
//
// Namespaces on the machine are named with NamePrefix and a random tag;
// everything is removed in t.Cleanup, even when the test failed. It needs
// root, ip, unshare and nsenter (util-linux).
package multihost

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/dataplane"
)

// NamePrefix starts the machine-wide names of a simulation's namespaces
// (fabric, hosts, guests).
const NamePrefix = "mdmh"

// MgmtNet is the management network's /24: host i (from 1) is
// MgmtNet+"<i>" on its eth0.
const MgmtNet = "10.98.0."

// mgmtBridge is the fabric's management bridge.
const mgmtBridge = "mgmt"

// Cluster is the fabric and the hosts on it.
type Cluster struct {
	t        *testing.T
	tag      string
	Fabric   string // the fabric's namespace
	segments []string
	Hosts    []*Host
	guests   []string
	leases   dataplane.Options // where guests' DHCP clients keep their state
}

// New makes the fabric with the given tenant segments (bridge names, as
// networks' `bridge:` give them) and one running host per name, wired to
// it. Call Host.Start to run processes on them.
func New(t *testing.T, hosts []string, segments ...string) *Cluster {
	t.Helper()
	testworld.RequireRoot(t)
	for _, bin := range []string{"unshare", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s (util-linux)", bin)
		}
	}
	tag := testworld.Suffix()
	c := &Cluster{
		t: t, tag: tag, Fabric: NamePrefix + "-fab-" + tag, segments: segments,
		leases: dataplane.Options{StateDir: t.TempDir()},
	}
	t.Cleanup(c.close)
	c.makeNS(c.Fabric)
	c.must(c.Fabric, "ip", "link", "set", "lo", "up")
	for _, br := range append([]string{mgmtBridge}, segments...) {
		c.must(c.Fabric, "ip", "link", "add", br, "type", "bridge")
		c.must(c.Fabric, "ip", "link", "set", br, "up")
	}
	for i, name := range hosts {
		c.newHost(i+1, name)
	}
	return c
}

// makeNS creates a namespace on the machine, removed in close.
func (c *Cluster) makeNS(name string) {
	c.t.Helper()
	if _, err := dataplane.EnsureNamespace(name); err != nil {
		c.t.Fatal(err)
	}
}

// must runs argv in namespace ns and fails the test when it fails.
func (c *Cluster) must(ns string, argv ...string) {
	c.t.Helper()
	if _, stderr, err := testworld.InNS(ns, 20*time.Second, argv...); err != nil {
		c.t.Fatalf("%s in %s: %v: %s", strings.Join(argv, " "), ns, err, stderr)
	}
}

// close powers every host off, then removes guests and the fabric.
func (c *Cluster) close() {
	for _, h := range c.Hosts {
		h.Kill()
	}
	for _, g := range c.guests {
		dataplane.StopGuestLease(c.leases, g)
		dataplane.DeleteNamespace(g)
	}
	dataplane.DeleteNamespace(c.Fabric)
}

// Guest makes a VM's stand-in on segment: a namespace whose eth0 carries
// mac, its other end on the fabric's bridge. Nothing configures its
// address: call Lease, or set one, as the VM's OS would.
func (c *Cluster) Guest(segment, mac string) string {
	c.t.Helper()
	ns := fmt.Sprintf("%s-g%d-%s", NamePrefix, len(c.guests), c.tag)
	c.makeNS(ns)
	c.guests = append(c.guests, ns)
	port := fmt.Sprintf("vm%d", len(c.guests))
	c.must(c.Fabric, "ip", "link", "add", port, "type", "veth", "peer", "name", dataplane.GuestInterface, "netns", ns)
	c.must(c.Fabric, "ip", "link", "set", port, "master", segment, "up")
	c.must(ns, "ip", "link", "set", "lo", "up")
	c.must(ns, "ip", "link", "set", dataplane.GuestInterface, "address", mac, "up")
	return ns
}

// Lease runs the lab's DHCP client on guest ns and waits for its first
// lease (from whichever host's dnsmasq serves the segment); the client
// keeps renewing it until the test ends.
func (c *Cluster) Lease(ns string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return dataplane.GuestLease(ctx, c.leases, ns)
}

// Unlease stops guest ns's DHCP client and forgets its lease, so that the
// next Lease starts afresh, as a VM that reboots.
func (c *Cluster) Unlease(ns string) { dataplane.StopGuestLease(c.leases, ns) }

// Host is one simulated machine.
type Host struct {
	c    *Cluster
	i    int    // from 1: its place on the management network
	Name string // its host name, and the node name tests give its serve
	NS   string // its network namespace's name on the machine
	Addr string // its management address
	// cables are the fabric ends of its links: deleting one takes the
	// host's end with it at once, where a dying network namespace keeps
	// its links (and answers on them) until the kernel has dismantled it.
	cables []string
	init   *exec.Cmd
	done   chan struct{} // closed when init has exited
	dead   bool
}

// newHost makes host i's network namespace, wires it to the fabric and
// starts its machine (see Host.boot).
func (c *Cluster) newHost(i int, name string) {
	c.t.Helper()
	h := &Host{c: c, i: i, Name: name, NS: fmt.Sprintf("%s-h%d-%s", NamePrefix, i, c.tag), Addr: MgmtNet + strconv.Itoa(i)}
	c.Hosts = append(c.Hosts, h) // before anything that may fail: close removes it
	c.makeNS(h.NS)
	c.must(h.NS, "ip", "link", "set", "lo", "up")
	c.wire(h, "eth0", mgmtBridge)
	c.must(h.NS, "ip", "addr", "add", h.Addr+"/24", "dev", "eth0")
	for j, seg := range c.segments {
		// The host's bridge of the segment's name, its uplink the
		// host's NIC on that provider network.
		c.must(h.NS, "ip", "link", "add", seg, "type", "bridge")
		c.must(h.NS, "ip", "link", "set", seg, "up")
		up := fmt.Sprintf("eth%d", j+1)
		c.wire(h, up, seg)
		c.must(h.NS, "ip", "link", "set", up, "master", seg)
	}
	h.boot()
}

// wire joins host h's link nic to the fabric's bridge br by a veth.
func (c *Cluster) wire(h *Host, nic, br string) {
	c.t.Helper()
	fab := fmt.Sprintf("h%d-%s", h.i, nic)
	c.must(c.Fabric, "ip", "link", "add", fab, "type", "veth", "peer", "name", nic, "netns", h.NS)
	h.cables = append(h.cables, fab)
	c.must(c.Fabric, "ip", "link", "set", fab, "master", br, "up")
	c.must(h.NS, "ip", "link", "set", nic, "up")
}

// bootScript is the host's init: its own /run/netns and /run/mdctl (the
// mount namespace is private, so nothing mounted here reaches the machine
// or another host), its own disk for mdctl (an empty /var/lib but for the
// default data dir /var/lib/mdctl, so each host's mdctl runs with the
// default data dir and namespace names, as on a real machine), its host
// name, then nothing but being alive. sleep reaps no orphans; the
// processes tests run on a host are waited for by their parents.
const bootScript = `set -e
mkdir -p /run/netns /run/mdctl
mount -t tmpfs -o mode=0755 netns /run/netns
mount -t tmpfs -o mode=0755 mdctl /run/mdctl
mount -t tmpfs -o mode=0755 varlib /var/lib
mkdir -m 0700 /var/lib/mdctl
hostname "$0"
exec sleep infinity`

// boot starts the host's init in its network namespace: new mount, PID
// and UTS namespaces (with /proc of its own PID namespace), so every
// process on the host dies with it.
func (h *Host) boot() {
	t := h.c.t
	t.Helper()
	h.init = exec.Command("ip", "netns", "exec", h.NS,
		"unshare", "--mount", "--propagation", "private", "--uts", "--pid", "--fork", "--mount-proc", "--kill-child",
		"sh", "-c", bootScript, h.Name)
	var out bytes.Buffer
	h.init.Stdout, h.init.Stderr = &out, &out
	if err := h.init.Start(); err != nil {
		t.Fatalf("host %s: boot: %v", h.Name, err)
	}
	h.done = make(chan struct{})
	go func() { h.init.Wait(); close(h.done) }()
	testworld.WaitFor(t, 10*time.Second, "host "+h.Name+" booted", func() error {
		select {
		case <-h.done:
			return fmt.Errorf("its init exited: %s", out.String())
		default:
		}
		pid, err := h.initPID()
		if err != nil {
			return err
		}
		// Booted once init is sleep: the mounts are done.
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(comm)) != "sleep" {
			return fmt.Errorf("init is %q (%v)", comm, err)
		}
		return nil
	})
}

// initPID is the machine-wide pid of the host's init (PID 1 of its PID
// namespace): the child unshare forked.
func (h *Host) initPID() (int, error) {
	return onlyChild(h.init.Process.Pid)
}

// onlyChild is the pid of the one child of process pid.
func onlyChild(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		return 0, fmt.Errorf("process %d has children %v, want one", pid, f)
	}
	return strconv.Atoi(f[0])
}

// enter is the nsenter prefix that runs a command on the host: in all its
// namespaces, with its root and working directory (so its /proc).
func (h *Host) enter() ([]string, error) {
	if h.dead {
		return nil, fmt.Errorf("host %s is down", h.Name)
	}
	pid, err := h.initPID()
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", h.Name, err)
	}
	return []string{"nsenter", "--target", strconv.Itoa(pid), "--mount", "--net", "--uts", "--pid", "--"}, nil
}

// Run runs argv on the host, killed after timeout, and returns its
// standard output; a failure's error holds its standard error.
func (h *Host) Run(timeout time.Duration, argv ...string) (string, error) {
	prefix, err := h.enter()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append(prefix, argv...)
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("on %s: %s: %w: %s", h.Name, strings.Join(argv, " "), err, stderr.Bytes())
	}
	return out.String(), nil
}

// Namespaces lists the host's own named network namespaces (its
// /run/netns), sorted.
func (h *Host) Namespaces() ([]string, error) {
	out, err := h.Run(10*time.Second, "ls", "-1", dataplane.NetnsDir)
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// Proc is a process started on a host.
type Proc struct {
	h    *Host
	cmd  *exec.Cmd // nsenter, which forks the process into the host's PID namespace and waits for it
	Log  string    // its stdout and stderr
	done chan struct{}
}

// Start runs argv on the host until it exits, the host dies or the test
// ends (SIGTERM, then SIGKILL after 10 s); its output goes to a file whose
// tail is logged if the test failed.
func (h *Host) Start(argv ...string) *Proc {
	t := h.c.t
	t.Helper()
	prefix, err := h.enter()
	if err != nil {
		t.Fatal(err)
	}
	p := &Proc{h: h, Log: filepath.Join(t.TempDir(), filepath.Base(argv[0])+"-"+h.Name+".log"), done: make(chan struct{})}
	lf, err := os.Create(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	full := append(prefix, argv...)
	p.cmd = exec.Command(full[0], full[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = lf, lf
	if err := p.cmd.Start(); err != nil {
		lf.Close()
		t.Fatalf("on %s: start %s: %v", h.Name, argv[0], err)
	}
	go func() { p.cmd.Wait(); lf.Close(); close(p.done) }()
	// Started once nsenter, in the host's namespaces, has forked it: from
	// then on the host's death is its.
	testworld.WaitFor(t, 10*time.Second, argv[0]+" started on "+h.Name, func() error {
		select {
		case <-p.done:
			b, _ := os.ReadFile(p.Log)
			t.Fatalf("on %s: %s exited at once: %s", h.Name, argv[0], b)
		default:
		}
		_, err := onlyChild(p.cmd.Process.Pid)
		return err
	})
	t.Cleanup(func() {
		p.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.Signal(syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.Log)
			const keep = 4000
			if len(b) > keep {
				b = append([]byte("…"), b[len(b)-keep:]...)
			}
			t.Logf("%s on %s, log:\n%s", argv[0], h.Name, b)
		}
	})
	return p
}

// Signal sends sig to the process itself (nsenter's child), not to
// nsenter, which would not pass it on.
func (p *Proc) Signal(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	if pid, err := onlyChild(p.cmd.Process.Pid); err == nil {
		syscall.Kill(pid, sig)
	}
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Kill powers the host off: its cables are pulled from the fabric, its
// init is killed, so the kernel kills every process on it, its private
// /run/netns goes with its mount namespace and with it every namespace
// its processes made, and its network namespace is deleted. What is left
// is what a dead machine leaves: nothing on the wire, from the moment
// Kill starts. Killing a dead host does nothing.
func (h *Host) Kill() {
	if h.dead {
		return
	}
	h.dead = true
	for _, cable := range h.cables {
		if _, stderr, err := testworld.InNS(h.c.Fabric, 10*time.Second, "ip", "link", "del", cable); err != nil {
			h.c.t.Errorf("host %s: pull %s: %v %s", h.Name, cable, err, stderr)
		}
	}
	if h.init != nil { // nil: it never booted
		if pid, err := h.initPID(); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		h.init.Process.Kill()
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			h.c.t.Errorf("host %s: init did not exit within 10s of SIGKILL", h.Name)
		}
	}
	if err := dataplane.DeleteNamespace(h.NS); err != nil {
		h.c.t.Errorf("host %s: %v", h.Name, err)
	}
}
