package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/server/proxy"
	"github.com/mdctl/mdctl/store"
)

// dataplaneLoop keeps the kernel and the proxy listeners in step with the
// store: on every generation change it plans, applies and syncs; on every
// tick it re-syncs the listeners, which restarts dead ones and follows a
// namespace that was recreated underneath it.
type dataplaneLoop struct {
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

	desired dataplane.Desired
}

func (l *dataplaneLoop) Run(ctx context.Context) error {
	if l.dhcp == nil {
		l.dhcp = dataplane.NewDnsmasq(dataplane.DnsmasqOptions{StateDir: l.rec.Options().DHCPStateDir(), Logger: l.log})
	}
	defer l.dhcp.Close()
	errs := errorLog{log: l.log, what: "reconcile", failures: l.failures}
	return storeWatch{
		live: l.live, poll: l.poll,
		full: l.apply,
		// Each tick re-syncs listeners (a dead one restarts, a recreated
		// namespace gets fresh ones) and restarts a dnsmasq that died.
		tick: func(context.Context) error {
			return errors.Join(l.mgr.Sync(l.listeners()), l.dhcp.Sync(l.desired.DHCPServers))
		},
		report: func(err error) {
			errs.report(err, "reconciled", "routers", len(l.desired.Routers), "dhcp", len(l.desired.DHCP))
		},
	}.run(ctx)
}

func (l *dataplaneLoop) apply(ctx context.Context, cfg store.Config) error {
	d, err := PlanFromStore(ctx, l.store, cfg)
	if err != nil {
		return err
	}
	l.desired = d
	err = l.rec.Apply(ctx, d)
	// Listeners and DHCP servers follow even a partial apply: the routers
	// and networks that worked serve.
	return errors.Join(err, l.mgr.Sync(l.listeners()), l.dhcp.Sync(d.DHCPServers))
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
