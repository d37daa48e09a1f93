package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/server/proxy"
	"github.com/mdctl/mdctl/server/sched"
	"github.com/mdctl/mdctl/store"
)

// dataplaneLoop keeps the kernel and the proxy listeners in step with the
// store: on every generation change it plans, applies and syncs; on every
// tick it re-syncs the listeners, which restarts dead ones and follows a
// namespace that was recreated underneath it.
type dataplaneLoop struct {
	// node builds what the store binds to it; sched, when set, runs a
	// scheduling pass before each plan, so that a new router is bound
	// (and built) in the pass that first sees it.
	node  string
	sched *sched.Scheduler
	store store.Reader
	live  *store.Live
	rec   *dataplane.Reconciler
	mgr   *proxy.Manager
	// dhcp runs a dnsmasq per DHCP server the plan wants; made in Run from
	// the reconciler's options when serve did not set it.
	dhcp *dataplane.Dnsmasq
	log  *slog.Logger
	poll time.Duration

	// failures counts every failed reconcile attempt for /metrics.
	failures *events.Counter
	// resync is how often the kernel is reconciled although the store did
	// not change, so that what someone else removed comes back (negative:
	// never); repairs counts what those passes restored.
	resync  time.Duration
	repairs *events.Counter
	// gauges are wanted against actual data-plane objects and the time of
	// the last reconcile that worked, set after every pass.
	gauges dataplaneGauges
	// dhcpSeen, when set, hears after every pass how many DHCP servers the
	// plan wants and how many run (admin /status).
	dhcpSeen *dhcpCounts

	desired dataplane.Desired
	planned bool // desired holds a plan applied before
	// firstPass is closed once the first apply has run (well or not):
	// the proxies of what worked listen then.
	firstPass chan struct{}
	passed    sync.Once
	cfg       store.Config // the settings desired was planned with
}

func (l *dataplaneLoop) Run(ctx context.Context) error {
	if l.dhcp == nil {
		l.dhcp = dataplane.NewDnsmasq(dataplane.DnsmasqOptions{StateDir: l.rec.Options().DHCPStateDir(), Logger: l.log})
	}
	defer l.dhcp.Close()
	errs := errorLog{log: l.log, what: "reconcile", failures: l.failures}
	return storeWatch{
		live: l.live, poll: l.poll, resync: max(l.resync, 0),
		full: l.apply,
		// Each tick re-syncs listeners (a dead one restarts, a recreated
		// namespace gets fresh ones) and restarts a dnsmasq that died.
		tick: func(ctx context.Context) error {
			if l.resync > 0 && l.planned && l.namespaceMissing() {
				return l.apply(ctx, l.cfg) // deleted under us: rebuild now, not at the next resync
			}
			return errors.Join(l.mgr.Sync(l.listeners()), l.dhcp.Sync(l.desired.DHCPServers))
		},
		report: func(err error) {
			l.gauges.set(l, err)
			l.dhcpSeen.set(l)
			errs.report(err, "reconciled", "routers", len(l.desired.Routers), "dhcp", len(l.desired.DHCP))
		},
	}.run(ctx)
}

func (l *dataplaneLoop) apply(ctx context.Context, cfg store.Config) error {
	defer l.passed.Do(func() {
		if l.firstPass != nil {
			close(l.firstPass)
		}
	})
	if l.sched != nil {
		if _, err := l.sched.Pass(ctx); err != nil {
			l.log.Warn("scheduling pass failed; planning with the bindings as they are", "err", err)
		}
	}
	d, err := HostedPlan(ctx, l.store, cfg, l.node)
	if err != nil {
		return err
	}
	same := l.planned && reflect.DeepEqual(d, l.desired)
	l.desired, l.planned, l.cfg = d, true, cfg
	err = l.rec.Apply(ctx, d)
	if n := l.rec.Changes(); same && n > 0 {
		l.repairs.Add(uint64(n))
		l.log.Warn("restored kernel state removed outside mdctl", "changes", n)
	}
	// Listeners and DHCP servers follow even a partial apply: the routers
	// and networks that worked serve.
	return errors.Join(err, l.mgr.Sync(l.listeners()), l.dhcp.Sync(d.DHCPServers))
}

// namespaceMissing reports whether a namespace the plan wants is gone: a
// stat each, cheap enough for every tick.
func (l *dataplaneLoop) namespaceMissing() bool {
	_, missing := l.namespaces()
	return missing > 0
}

// namespaces counts the namespaces the plan wants and how many of them
// are missing.
func (l *dataplaneLoop) namespaces() (wanted, missing int) {
	names := []string{l.rec.Options().SegmentNamespace}
	for _, rt := range l.desired.Routers {
		names = append(names, rt.Namespace)
	}
	for _, dh := range l.desired.DHCP {
		names = append(names, dh.Namespace)
	}
	for _, srv := range l.desired.DHCPServers {
		names = append(names, srv.Namespace)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	for _, ns := range names {
		if ok, err := dataplane.NamespaceExists(ns); err == nil && !ok {
			missing++
		}
	}
	return len(names), missing
}

// dhcpCounts is what /status says of the DHCP servers, as the loop saw
// them after its last pass; the zero value has seen no plan.
type dhcpCounts struct {
	mu   sync.Mutex
	seen bool
	c    admin.DHCPCounts
}

// set records l's DHCP servers; a nil d records nothing. Without dnsmasq
// installed serve runs none and plans none (it warned once), so nobody
// waits for them.
func (d *dhcpCounts) set(l *dataplaneLoop) {
	if d == nil || !l.planned {
		return
	}
	c := admin.DHCPCounts{Running: l.dhcp.Count()}
	if l.dhcp.Available() {
		c.Planned = len(l.desired.DHCPServers)
	}
	d.mu.Lock()
	d.seen, d.c = true, c
	d.mu.Unlock()
}

// counts is admin.Options.DHCP.
func (d *dhcpCounts) counts() admin.DHCPCounts {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.seen {
		return admin.DHCPCounts{Planned: -1}
	}
	return d.c
}

// dataplaneGauges are the loop's series of /metrics.
type dataplaneGauges struct {
	wanted, actual [3]*events.Counter // namespaces, proxies, dnsmasqs
	last           *events.Counter
}

func newDataplaneGauges(m *events.Metrics) dataplaneGauges {
	var g dataplaneGauges
	for i, kind := range [...]string{events.KindNamespace, events.KindProxy, events.KindDnsmasq} {
		g.wanted[i] = m.Gauge(events.DataplaneWanted, "kind", kind)
		g.actual[i] = m.Gauge(events.DataplaneActual, "kind", kind)
	}
	g.last = m.Gauge(events.LastReconcile)
	return g
}

// set records l's state after a pass that ended with err.
func (g dataplaneGauges) set(l *dataplaneLoop, err error) {
	if err == nil {
		g.last.Set(float64(time.Now().UnixNano()) / 1e9)
	}
	if !l.planned {
		return
	}
	nsWanted, nsMissing := l.namespaces()
	wanted := [3]int{nsWanted, len(l.listeners()), len(l.desired.DHCPServers)}
	actual := [3]int{nsWanted - nsMissing, len(l.mgr.Running()), l.dhcp.Count()}
	for i := range wanted {
		g.wanted[i].Set(float64(wanted[i]))
		g.actual[i].Set(float64(actual[i]))
	}
}

// PlanFromStore reads what the data plane needs and plans it: what serve
// builds, what the lab wires guests to, what trace checks against.
func PlanFromStore(ctx context.Context, st store.Reader, cfg store.Config) (dataplane.Desired, error) {
	nets, err := st.ListNetworks(ctx)
	if err != nil {
		return dataplane.Desired{}, fmt.Errorf("list networks: %w", err)
	}
	subs, err := st.ListSubnets(ctx, "")
	if err != nil {
		return dataplane.Desired{}, fmt.Errorf("list subnets: %w", err)
	}
	ports, err := st.ListPorts(ctx, store.PortFilter{})
	if err != nil {
		return dataplane.Desired{}, fmt.Errorf("list ports: %w", err)
	}
	routers, err := st.ListRouters(ctx)
	if err != nil {
		return dataplane.Desired{}, fmt.Errorf("list routers: %w", err)
	}
	return dataplane.Plan(nets, subs, ports, routers, cfg, dataplane.ReadHost()), nil
}

// HostedPlan is PlanFromStore cut down to what node builds: the routers
// and DHCP networks the store binds to it (dataplane.Hosted).
func HostedPlan(ctx context.Context, st store.Reader, cfg store.Config, node string) (dataplane.Desired, error) {
	d, err := PlanFromStore(ctx, st, cfg)
	if err != nil {
		return d, err
	}
	rb, err := st.RouterBindings(ctx)
	if err != nil {
		return d, fmt.Errorf("router bindings: %w", err)
	}
	nb, err := st.NetworkBindings(ctx)
	if err != nil {
		return d, fmt.Errorf("network bindings: %w", err)
	}
	return dataplane.Hosted(d, dataplane.NewHosting(node, rb, nb)), nil
}

// listeners is the proxy set the plan wants. A key carries the namespace's
// inode, so a namespace deleted and made again gets fresh listeners.
func (l *dataplaneLoop) listeners() map[string]proxy.Listen {
	want := map[string]proxy.Listen{}
	for _, rt := range l.desired.Routers {
		if !rt.MetadataProxy {
			continue
		}
		ns := rt.Namespace
		want["router:"+rt.RouterID+"@"+nsInode(ns)] = proxy.Listen{
			ID:   proxy.Identity{RouterID: rt.RouterID, Namespace: ns},
			Open: openIn(ns, []addr{{"tcp4", "0.0.0.0:9697", true}, {"tcp6", "[::]:9697", false}}),
		}
	}
	for _, dh := range l.desired.DHCP {
		ns := dh.Namespace
		addrs := []addr{{"tcp4", dataplane.MetadataIPv4 + ":80", true}}
		if dh.IPv6 {
			addrs = append(addrs, addr{"tcp6", "[" + dataplane.MetadataIPv6 + "%" + dh.Interface.Name + "]:80", false})
		}
		want["network:"+dh.NetworkID+"@"+nsInode(ns)] = proxy.Listen{
			ID:   proxy.Identity{NetworkID: dh.NetworkID, Namespace: ns},
			Open: openIn(ns, addrs),
		}
	}
	return want
}

type addr struct {
	network, address string
	required         bool // IPv6 is best effort: a host without it still serves IPv4
}

func openIn(ns string, addrs []addr) func() ([]net.Listener, error) {
	return func() ([]net.Listener, error) {
		var lns []net.Listener
		for _, a := range addrs {
			ln, err := dataplane.ListenTCP(ns, a.network, a.address)
			if err != nil {
				if a.required {
					for _, l := range lns {
						l.Close()
					}
					return nil, fmt.Errorf("%s: listen %s: %w", ns, a.address, err)
				}
				continue
			}
			lns = append(lns, ln)
		}
		return lns, nil
	}
}

func nsInode(ns string) string {
	fi, err := os.Stat("/run/netns/" + ns)
	if err != nil {
		return "missing"
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d", st.Ino)
	}
	return "?"
}
