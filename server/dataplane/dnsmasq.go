package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DnsmasqBinary is Debian's dnsmasq (package dnsmasq-base).
const DnsmasqBinary = "/usr/sbin/dnsmasq"

// DnsmasqOptions configure the DHCP servers of one mdctl.
type DnsmasqOptions struct {
	// StateDir holds <network id>/{host,opts,leases,pid,log} (neutron's
	// $state_path/dhcp/<network>/); required.
	StateDir string
	// Binary defaults to DnsmasqBinary, else dnsmasq on $PATH.
	Binary string
	Logger *slog.Logger
}

// Dnsmasq runs one dnsmasq per DHCPServer, each inside its qdhcp namespace
// bound to the ns- interface, as neutron's DHCP agent does. Sync starts,
// reloads (SIGHUP re-reads the hosts and opts files, so the next renewal
// carries a switched route) and stops them; Close stops them all.
type Dnsmasq struct {
	opts    DnsmasqOptions
	bin     string // "" when no dnsmasq is installed
	mu      sync.Mutex
	procs   map[string]*dnsmasqProc // by network id
	warned  bool
	stopped bool
}

type dnsmasqProc struct {
	cmd   *exec.Cmd
	args  []string
	inode string // of the namespace it was started in
	done  chan struct{}
	// stopping: mdctl ended it, so its exit is no news worth a warning.
	stopping atomic.Bool
}

// NewDnsmasq returns a manager with nothing running yet.
func NewDnsmasq(o DnsmasqOptions) *Dnsmasq {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	bin := o.Binary
	if bin == "" {
		bin = DnsmasqBinary
		if _, err := os.Stat(bin); err != nil {
			bin, _ = exec.LookPath("dnsmasq")
		}
	}
	return &Dnsmasq{opts: o, bin: bin, procs: map[string]*dnsmasqProc{}}
}

// Available reports whether a dnsmasq binary was found.
func (m *Dnsmasq) Available() bool { return m.bin != "" }

// Sync makes the running dnsmasqs match servers: one per server, restarted
// when its command line or namespace changed or it died, sent SIGHUP when
// its hosts or opts file changed; the others are stopped. Without a dnsmasq
// binary it warns once and does nothing: guests then need static routes.
func (m *Dnsmasq) Sync(servers []DHCPServer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return nil
	}
	if m.bin == "" {
		if !m.warned && len(servers) > 0 {
			m.opts.Logger.Warn("dnsmasq not installed (Debian: apt-get install dnsmasq-base): no DHCP served; lab guests fall back to static routes")
			m.warned = true
		}
		return nil
	}
	wanted := map[string]bool{}
	var errs error
	for _, srv := range servers {
		wanted[srv.NetworkID] = true
		if err := m.syncOne(srv); err != nil {
			errs = errors.Join(errs, fmt.Errorf("dhcp %s: %w", srv.NetworkID, err))
		}
	}
	for id, p := range m.procs {
		if !wanted[id] {
			m.stop(id, p)
			os.RemoveAll(m.dir(id))
		}
	}
	return errs
}

func (m *Dnsmasq) dir(networkID string) string { return filepath.Join(m.opts.StateDir, networkID) }

func (m *Dnsmasq) syncOne(srv DHCPServer) error {
	dir := m.dir(srv.NetworkID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	hostsChanged, err := writeIfChanged(filepath.Join(dir, "host"), DHCPHostsFile(srv.Hosts, srv.Domain))
	if err != nil {
		return err
	}
	addnChanged, err := writeIfChanged(filepath.Join(dir, "addn_hosts"), DHCPAddnHostsFile(srv.Hosts, srv.Domain))
	if err != nil {
		return err
	}
	optsChanged, err := writeIfChanged(filepath.Join(dir, "opts"), DHCPOpts(srv.Subnets, srv.Domain))
	if err != nil {
		return err
	}
	args := dnsmasqArgs(srv, dir)
	inode := namespaceInode(srv.Namespace)
	p := m.procs[srv.NetworkID]
	if p != nil && (p.exited() || !slices.Equal(p.args, args) || p.inode != inode) {
		m.stop(srv.NetworkID, p)
		p = nil
	}
	if p == nil {
		return m.start(srv, dir, args, inode)
	}
	if hostsChanged || addnChanged || optsChanged {
		m.opts.Logger.Info("dnsmasq reload", "network", srv.NetworkID)
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			return fmt.Errorf("reload dnsmasq: %w", err)
		}
	}
	return nil
}

func (m *Dnsmasq) start(srv DHCPServer, dir string, args []string, inode string) error {
	killStale(filepath.Join(dir, "pid"), dir)
	cmd := exec.Command(m.bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// Its own process group: a Ctrl-C meant for serve must not reach
	// dnsmasq first; serve stops it itself on the way out.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := Do(srv.Namespace, cmd.Start); err != nil {
		return fmt.Errorf("start dnsmasq in %s: %w", srv.Namespace, err)
	}
	p := &dnsmasqProc{cmd: cmd, args: args, inode: inode, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		if !p.stopping.Load() {
			logTail, _ := os.ReadFile(filepath.Join(dir, "log"))
			m.opts.Logger.Warn("dnsmasq exited", "network", srv.NetworkID, "err", err,
				"stderr", strings.TrimSpace(stderr.String()), "log", lastLines(string(logTail), 4))
		}
		close(p.done)
	}()
	m.procs[srv.NetworkID] = p
	m.opts.Logger.Info("dnsmasq started", "network", srv.NetworkID, "namespace", srv.Namespace, "pid", cmd.Process.Pid)
	return nil
}

func (p *dnsmasqProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop forgets the network's dnsmasq and ends it (end).
func (m *Dnsmasq) stop(id string, p *dnsmasqProc) {
	delete(m.procs, id)
	m.end(id, p)
}

// end is neutron's: SIGTERM, then SIGKILL after 5 s. It touches no map, so
// that Close may end several at once.
func (m *Dnsmasq) end(id string, p *dnsmasqProc) {
	if p.exited() {
		return
	}
	p.stopping.Store(true)
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	m.opts.Logger.Info("dnsmasq stopped", "network", id)
}

// Close stops every dnsmasq, all at once so that serve's stop takes one
// dnsmasq's grace however many networks there are; Sync does nothing
// afterwards.
func (m *Dnsmasq) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopped = true
	var wg sync.WaitGroup
	for id, p := range m.procs {
		delete(m.procs, id)
		wg.Go(func() { m.end(id, p) })
	}
	wg.Wait()
}

// Running reports the pid of the network's dnsmasq, 0 when none runs.
func (m *Dnsmasq) Running(networkID string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.procs[networkID]; p != nil && !p.exited() {
		return p.cmd.Process.Pid
	}
	return 0
}

// Count is how many dnsmasqs run now.
func (m *Dnsmasq) Count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, p := range m.procs {
		if !p.exited() {
			n++
		}
	}
	return n
}

// dnsmasqArgs is the command line, after neutron's
// Dnsmasq._build_cmdline_callback with its defaults: no /etc/hosts and no
// upstream resolvers (dnsmasq_local_resolv off), the hosts, addn_hosts,
// opts and lease files, static ranges per DHCP subnet with
// dhcp_lease_duration, the MTU, the lease cap, --domain=dns_domain. Its
// DNS answers on the DHCP port, as neutron's does: a subnet without
// dns_nameservers hands the DHCP port out as its name server (option 6),
// which resolves the guests' host names. mdctl differs where a guest
// cannot tell: it stays in the foreground (serve's child), runs as root
// (the state dir may be unreadable to nobody), binds the DHCP port by
// name (--bind-interfaces, where neutron's --bind-dynamic follows address
// changes the reconciler makes anyway), logs DHCP to the state dir, and
// answers authoritatively (a restarted dnsmasq must ACK a renewal it has
// no lease for: every address is fixed by the hosts file anyway), except
// on the operator's L2: there other machines may renew leases from the
// operator's own DHCP, and an authoritative dnsmasq would NAK them.
// Without it, it answers only the MACs of its hosts file and stays silent
// to everyone else.
func dnsmasqArgs(srv DHCPServer, dir string) []string {
	args := []string{
		"--no-hosts", "--no-resolv", "--keep-in-foreground", "--conf-file=/dev/null",
		"--user=root", "--group=root",
		"--pid-file=" + filepath.Join(dir, "pid"),
		"--dhcp-hostsfile=" + filepath.Join(dir, "host"),
		"--addn-hosts=" + filepath.Join(dir, "addn_hosts"),
		"--dhcp-optsfile=" + filepath.Join(dir, "opts"),
		"--dhcp-leasefile=" + filepath.Join(dir, "leases"),
		"--log-facility=" + filepath.Join(dir, "log"), "--log-dhcp",
		"--bind-interfaces", "--interface=" + srv.Interface.Name, "--except-interface=lo",
	}
	if !srv.Interface.OnHost {
		args = append(args, "--dhcp-authoritative")
	}
	for _, r := range DHCPRanges(srv.Subnets, srv.LeaseSeconds) {
		args = append(args, "--dhcp-range="+r)
	}
	if srv.MTU > 0 {
		args = append(args, "--dhcp-option-force=option:mtu,"+strconv.Itoa(srv.MTU))
	}
	args = append(args, "--dhcp-lease-max="+strconv.Itoa(leaseMax(srv.Subnets)))
	if srv.Domain != "" {
		args = append(args, "--domain="+srv.Domain)
	}
	return args
}

// dnsmasqLeaseMax is neutron's dnsmasq_lease_max default.
const dnsmasqLeaseMax = 1 << 24

// leaseMax is neutron's --dhcp-lease-max: the sizes of the subnets it
// writes a range for (IPv4 with DHCP; DHCPv6 stateful or stateless ones
// of /64 or longer, though mdctl serves DHCPv4 only), capped at
// dnsmasq_lease_max.
func leaseMax(subnets []SubnetPlan) int {
	n := 0
	for _, s := range subnets {
		if !s.EnableDHCP || (s.IPVersion == 6 && s.IPv6AddressMode == "slaac") {
			continue
		}
		_, c, err := net.ParseCIDR(s.CIDR)
		if err != nil {
			continue
		}
		ones, bits := c.Mask.Size()
		if s.IPVersion == 6 && ones < 64 {
			continue
		}
		n = min(n+1<<min(bits-ones, 24), dnsmasqLeaseMax)
	}
	return n
}

// writeIfChanged replaces path with lines (atomically, so a dnsmasq
// reloading never reads half a file) and reports whether it changed.
func writeIfChanged(path string, lines []string) (bool, error) {
	data := []byte(strings.Join(lines, "\n"))
	if len(lines) > 0 {
		data = append(data, '\n')
	}
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return false, err
	}
	return true, os.Rename(tmp, path)
}

// killStale ends a dnsmasq a previous serve left behind (its pid file names
// a process whose command line mentions our state dir), so two never
// answer on one port.
func killStale(pidFile, dir string) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(dir)) {
		return
	}
	syscall.Kill(pid, syscall.SIGTERM)
	for range 50 {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// namespaceInode identifies a namespace instance: one deleted and made
// again under the same name gets a new inode, and a fresh dnsmasq.
func namespaceInode(name string) string {
	fi, err := os.Stat(nsPath(name))
	if err != nil {
		return "missing"
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return strconv.FormatUint(st.Ino, 10)
	}
	return "?"
}

// DHCPStateDir is where the DHCP servers of the data plane named by o keep
// their files: <dir>/<network id>/{host,opts,leases,pid,log}.
func (o Options) DHCPStateDir() string { return filepath.Join(o.withDefaults().StateDir, "dhcp") }
