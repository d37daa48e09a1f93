package dataplane

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// How lab guests get their IPv4 routes (Options.GuestRoutes).
const (
	// GuestRoutesDHCP (the default) runs a real DHCP client in the guest
	// against the network's dnsmasq, so the metadata route comes from an
	// option 121 lease exactly as a VM's would. A guest falls back to
	// static routes, with a warning, when no DHCP client is installed, its
	// network has no DHCP server, or no dnsmasq answers yet (serve not
	// running).
	GuestRoutesDHCP = "dhcp"
	// GuestRoutesStatic writes the routes DHCP would give (Guest.Routes).
	GuestRoutesStatic = "static"
)

// DHCPClientBinary is ISC dhclient (Debian isc-dhcp-client). It is chosen
// over busybox udhcpc because Debian installs it by default with option
// 121 support, and it keeps renewing like a VM's client does; mdctl gives
// it its own config and script (dhclient -cf/-sf) so the host's
// resolv.conf and hooks are never run from a guest.
const DHCPClientBinary = "dhclient"

// dhclientTimeout bounds one lab guest's wait for a lease before falling
// back to static routes.
const dhclientTimeout = 15 * time.Second

// dhclientConf asks what Debian's dhclient.conf asks that DHCPv4 can
// carry here (the names too, though the script applies only addresses and
// routes), so the lease records what a VM would be told.
const dhclientConf = `# mdctl lab guest: ask for the classless static routes (RFC 3442).
option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;
request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers, host-name, interface-mtu, rfc3442-classless-static-routes;
timeout 15;
retry 30;
initial-interval 1;
backoff-cutoff 2;
`

// dhclientScript applies a lease to the guest: the address, and the
// option 121 routes (RFC 3442: the router option is ignored when 121 is
// present), all with proto dhcp so anyone can tell them from static ones.
const dhclientScript = `#!/bin/sh
# mdctl lab guest DHCP script (dhclient -sf). Never touches the host.
mask2len() {
	l=0
	for o in $(echo "$1" | tr . ' '); do
		case $o in 255) l=$((l+8));; 254) l=$((l+7));; 252) l=$((l+6));; 248) l=$((l+5));;
		240) l=$((l+4));; 224) l=$((l+3));; 192) l=$((l+2));; 128) l=$((l+1));; esac
	done
	echo $l
}
case "$reason" in
PREINIT)
	ip link set dev "$interface" up ;;
BOUND|RENEW|REBIND|REBOOT)
	ip -4 addr replace "$new_ip_address/$(mask2len "$new_subnet_mask")" dev "$interface"
	ip -4 route flush dev "$interface" proto dhcp
	if [ -n "$new_rfc3442_classless_static_routes" ]; then
		set -- $new_rfc3442_classless_static_routes
		while [ $# -ge 5 ]; do
			w=$1; shift
			n=$(( (w + 7) / 8 )); i=0; dst=""
			while [ $i -lt 4 ]; do
				if [ $i -lt $n ]; then o=$1; shift; else o=0; fi
				dst="$dst${dst:+.}$o"; i=$((i+1))
			done
			gw="$1.$2.$3.$4"; shift 4
			if [ "$gw" = 0.0.0.0 ]; then
				ip -4 route replace "$dst/$w" dev "$interface" scope link proto dhcp
			else
				ip -4 route replace "$dst/$w" via "$gw" dev "$interface" proto dhcp
			fi
		done
	elif [ -n "$new_routers" ]; then
		set -- $new_routers
		ip -4 route replace default via "$1" dev "$interface" proto dhcp
	fi ;;
EXPIRE|FAIL|RELEASE)
	ip -4 route flush dev "$interface" proto dhcp ;;
esac
exit 0
`

// dhcpClientFor is the DHCP client guest g runs for its IPv4 routes, or
// why it runs none ("" with GuestRoutesStatic: nothing to say).
func dhcpClientFor(opts Options, g Guest) (client string, why string) {
	if opts.GuestRoutes == GuestRoutesStatic {
		return "", ""
	}
	if g.DHCPServer == "" {
		return "", "its network has no DHCP server (no DHCP port or no IPv4 DHCP subnet)"
	}
	path, err := exec.LookPath(cmp.Or(opts.DHCPClient, DHCPClientBinary))
	if err != nil {
		return "", fmt.Sprintf("no DHCP client installed (%s; Debian: apt-get install isc-dhcp-client)", cmp.Or(opts.DHCPClient, DHCPClientBinary))
	}
	return path, ""
}

// DHCPServerListening reports whether a DHCP server listens (UDP port 67)
// in the network's qdhcp namespace: the kernel's word, not serve's.
func DHCPServerListening(networkID string) bool {
	up, err := dhcpServerListening(DHCPNamespace(networkID))
	return err == nil && up
}

// dhcpServerListening reports whether a UDP socket on port 67 exists in ns.
func dhcpServerListening(ns string) (bool, error) {
	if ok, err := NamespaceExists(ns); err != nil || !ok {
		return false, err
	}
	found := false
	err := Do(ns, func() error {
		f, err := os.Open("/proc/thread-self/net/udp")
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 1 && strings.HasSuffix(fields[1], ":0043") {
				found = true
			}
		}
		return sc.Err()
	})
	return found, err
}

func guestStateDir(opts Options, guestNS string) string { return opts.GuestStateDir(guestNS) }

// GuestStateDir is where a lab guest's DHCP client keeps its config,
// script, lease file (dhclient.leases) and pid.
func (o Options) GuestStateDir(guestNS string) string {
	return filepath.Join(o.withDefaults().StateDir, "lab", guestNS)
}

// runDHCPClient (re)starts the guest's DHCP client and waits for its first
// lease: dhclient -1 returns once bound (or fails after its timeout) and
// leaves a daemon renewing the lease, as a VM's client would. It must
// outlive lab up (no Pdeathsig: a switch reaches the guest at its next
// renewal, long after lab up returned); lab down ends it (LabDown).
func runDHCPClient(ctx context.Context, opts Options, guestNS, client string) error {
	dir := guestStateDir(opts, guestNS)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	stopDHCPClient(opts, guestNS)
	conf, script := filepath.Join(dir, "dhclient.conf"), filepath.Join(dir, "dhclient-script")
	if err := os.WriteFile(conf, []byte(dhclientConf), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(script, []byte(dhclientScript), 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, dhclientTimeout+5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, client, "-1", "-v", "-cf", conf, "-sf", script,
		"-lf", filepath.Join(dir, "dhclient.leases"), "-pf", filepath.Join(dir, "dhclient.pid"), GuestInterface)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := RunIn(guestNS, cmd); err != nil {
		return fmt.Errorf("%s: %w: %s", filepath.Base(client), err, lastLines(out.String(), 3))
	}
	return nil
}

// GuestLease runs mdctl's guest DHCP client (dhclient with the lab's own
// config and script, never the host's) on eth0 of any namespace and waits
// for its first lease, which it then keeps renewing as a VM's client does.
// The lab's guests get theirs from LabUp; tests use it for the stand-ins
// of VMs outside the lab. StopGuestLease ends it.
func GuestLease(ctx context.Context, opts Options, nsName string) error {
	opts = opts.withDefaults()
	client, err := exec.LookPath(cmp.Or(opts.DHCPClient, DHCPClientBinary))
	if err != nil {
		return fmt.Errorf("no DHCP client: %w", err)
	}
	return runDHCPClient(ctx, opts, nsName, client)
}

// StopGuestLease ends GuestLease's client in nsName and forgets its lease.
func StopGuestLease(opts Options, nsName string) { removeGuestState(opts.withDefaults(), nsName) }

// stopDHCPClient ends the guest's DHCP client, if one runs: the pid its
// pid file names, or, without a pid file naming a live client of this
// guest, any process whose command line names a file of the guest's state
// dir (dhclientPids): one whose pid file is gone is found too.
func stopDHCPClient(opts Options, guestNS string) {
	dir := guestStateDir(opts, guestNS)
	inDir := func(d string) bool { return d == dir }
	pidFile := filepath.Join(dir, "dhclient.pid")
	b, err := os.ReadFile(pidFile)
	os.Remove(pidFile)
	// A pid whose command line does not name dir is gone, or reused by
	// someone else.
	if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && pid > 1 && namesStateDir(pid, inDir) {
		endAll([]int{pid})
		return
	}
	endAll(dhclientPids(inDir))
}

// stopLabDHCPClients ends every lab DHCP client of this mdctl: each
// process whose command line names a file in a guest state dir under this
// StateDir, which is this data dir's alone. LabDown runs it after the
// sweep for the clients of guests whose namespace or pid file is gone.
func stopLabDHCPClients(opts Options) {
	lab := filepath.Join(opts.StateDir, "lab")
	endAll(dhclientPids(func(d string) bool { return filepath.Dir(d) == lab }))
}

// dhclientFileFlags are the flags by which dhclient is given a file of its
// guest's state dir (runDHCPClient).
var dhclientFileFlags = []string{"-cf", "-sf", "-lf", "-pf"}

// dhclientPids are the processes one of whose dhclientFileFlags names a
// file in a directory dir that match accepts. The directory is compared
// whole, never as a prefix: mdctl-vm-a is not mdctl-vm-ab, nor one data
// dir's state dir another's.
func dhclientPids(match func(dir string) bool) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 1 || pid == os.Getpid() {
			continue
		}
		if namesStateDir(pid, match) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// namesStateDir reports whether pid's command line gives one of
// dhclientFileFlags a file in a directory match accepts.
func namesStateDir(pid int, match func(dir string) bool) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(b), "\x00")
	for i, a := range args[:max(len(args)-1, 0)] {
		if slices.Contains(dhclientFileFlags, a) && match(filepath.Dir(args[i+1])) {
			return true
		}
	}
	return false
}

// endAll sends each pid SIGTERM, then SIGKILL to those still there after
// 2 s.
func endAll(pids []int) {
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	for range 100 {
		pids = slices.DeleteFunc(pids, func(pid int) bool {
			_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
			return err != nil
		})
		if len(pids) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// removeGuestState stops the guest's DHCP client and forgets its lease.
func removeGuestState(opts Options, guestNS string) {
	stopDHCPClient(opts, guestNS)
	os.RemoveAll(guestStateDir(opts, guestNS))
}

// flushDHCPRoutes removes routes a DHCP client installed (proto dhcp).
func flushDHCPRoutes(n *nsLink, dev string) error {
	l, err := n.linkByName(dev)
	if err != nil || l == nil {
		return err
	}
	rs, err := n.h.RouteList(l, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	for _, r := range rs {
		if r.Protocol == unix.RTPROT_DHCP {
			if err := n.h.RouteDel(&r); err != nil {
				return fmt.Errorf("%s: remove DHCP route %s: %w", n.name, routeDst(r), err)
			}
		}
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
