// Package server ties mdctl's components into one `mdctl serve`: the API,
// the agent, and the proxies with the data plane they listen in. Each
// component has Run(ctx) and stops on cancel; an errgroup joins them, so
// the first one to fail stops the rest. It holds no metadata or kernel
// logic of its own: that lives in the component packages.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mdctl/mdctl/internal/inprocess"
	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/agent"
	"github.com/mdctl/mdctl/server/api"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/server/proxy"
	"github.com/mdctl/mdctl/server/sched"
	"github.com/mdctl/mdctl/store"
)

// The components `mdctl serve --components` accepts (a node lists them
// in the store under the same names).
const (
	ComponentAPI   = store.ComponentAPI
	ComponentAgent = store.ComponentAgent
	ComponentProxy = store.ComponentProxy
)

// AllComponents is what `mdctl serve` runs by default.
var AllComponents = []string{ComponentAPI, ComponentAgent, ComponentProxy, ComponentConfigDrive}

// AgentSocketName is the agent's socket file in the data dir (neutron's
// $state_path/metadata_proxy).
const AgentSocketName = "metadata_proxy"

// Options configure one serve process.
type Options struct {
	Store      store.Store
	DataDir    string
	Components []string          // default AllComponents
	Overrides  map[string]string // --set KEY=VALUE, for this process only
	// APIListen is the API's address; default 127.0.0.1:8775.
	APIListen string
	// APIListener, when set, is used instead of listening on APIListen.
	APIListener net.Listener
	// AgentListener, when set, is the agent's socket instead of one it
	// makes at <data-dir>/metadata_proxy (systemd's: socket activation).
	AgentListener net.Listener
	// Dataplane names this mdctl's namespaces; without a SegmentNamespace,
	// dataplane.ForDataDir(DataDir) names them, so that no two data dirs
	// share kernel state.
	Dataplane dataplane.Options
	// Poll is how often the loops look for store changes the change feed
	// did not wake them for (a feed that is down); default 200ms.
	Poll time.Duration
	// Resync is how often the data plane is reconciled although the store
	// did not change, restoring rules and links someone else removed (a
	// namespace removed is rebuilt at the next poll); default 5s. Negative:
	// never heal (tests that inject faults for trace to find).
	Resync time.Duration
	Logger *slog.Logger
	// Ready, when set, is called once the components listen: the API's
	// port is bound, the agent answers on its socket and the data plane has
	// made its first pass (so the proxies listen). systemd's READY=1.
	Ready func()
	// AdminListen is an optional TCP address for the admin endpoint,
	// beside <data-dir>/admin.sock (for `mdctl tui --server` from elsewhere).
	AdminListen string
	// Node is this serve's node name (serve --node); default the host
	// name. Serves on one store with one name are one node: each hosts
	// every router and network bound to it.
	Node string
	// Version is what the node registers as its version.
	Version string
	// AdminTokenFile holds the bearer token AdminListen requires; default
	// <data-dir>/admin.token, made on first need. A non-loopback
	// AdminListen is refused without it (server/admin/auth.go).
	AdminTokenFile string
	// TraceKernel runs an instance's kernel-side trace checks on this
	// node, against the data plane's names (dp): the admin endpoint's
	// POST /trace/kernel, for a trace started on another node. The tracer
	// lives above this package (it imports it), so the CLI hands it in;
	// nil, or a serve without the proxy component, answers none.
	TraceKernel func(ctx context.Context, dp dataplane.Options, instance string, timeout time.Duration) (any, error)
}

// adminToken is the token the TCP admin endpoint requires ("" without
// one). A non-loopback address needs a token file the operator chose.
func (o Options) adminToken() (string, error) {
	if o.AdminListen == "" {
		return "", nil
	}
	if o.AdminTokenFile != "" {
		tok, err := admin.LoadToken(o.AdminTokenFile, false)
		if err != nil {
			return "", fmt.Errorf("serve: --admin-token-file: %w", err)
		}
		return tok, nil
	}
	if !admin.IsLoopback(o.AdminListen) {
		return "", fmt.Errorf("serve: --admin-listen %s is not a loopback address, and the admin endpoint carries instance ids and guest addresses: "+
			"give --admin-token-file FILE (a secret of 16+ characters, e.g. openssl rand -hex 32) or listen on 127.0.0.1", o.AdminListen)
	}
	tok, err := admin.LoadToken(filepath.Join(o.DataDir, admin.TokenFileName), true)
	if err != nil {
		return "", fmt.Errorf("serve: %w", err)
	}
	return tok, nil
}

// ParseComponents checks a --components value.
func ParseComponents(s string) ([]string, error) {
	var out []string
	for _, c := range strings.Split(s, ",") {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		if !slices.Contains(AllComponents, c) {
			return nil, fmt.Errorf("unknown component %q; allowed: %s", c, strings.Join(AllComponents, ", "))
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no component given; allowed: %s", strings.Join(AllComponents, ", "))
	}
	return out, nil
}

// Run serves until ctx is cancelled or a component fails.
func Run(ctx context.Context, o Options) error {
	if o.Store == nil {
		return errors.New("serve: no store")
	}
	if len(o.Components) == 0 {
		o.Components = AllComponents
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Poll <= 0 {
		o.Poll = 200 * time.Millisecond
	}
	if o.Resync == 0 {
		o.Resync = 5 * time.Second
	}
	if slices.Contains(o.Components, ComponentAPI) {
		if err := ensureTokenKey(ctx, o.Store); err != nil {
			return fmt.Errorf("serve: session-token key: %w", err)
		}
	}
	if o.Dataplane.SegmentNamespace == "" {
		dp, err := dataplane.ForDataDir(o.DataDir, "")
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		o.Dataplane.SegmentNamespace, o.Dataplane.GuestPrefix = dp.SegmentNamespace, dp.GuestPrefix
	}
	live := store.NewLive(o.Store, o.Overrides)
	if _, err := live.Snapshot(ctx); err != nil {
		return fmt.Errorf("serve: read settings: %w", err)
	}
	has := func(c string) bool { return slices.Contains(o.Components, c) }
	// The node registers before anything schedules, so that its own
	// scheduler finds it.
	node, err := registerNode(ctx, o, live)
	if err != nil {
		return err
	}
	o.Node = node.node.Name
	socket := filepath.Join(o.DataDir, AgentSocketName)
	agentAddr := o.agentAddr(socket)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return node.Run(ctx) })
	// The live view: every hop publishes to bus, the admin endpoint serves it.
	bus := events.NewBus()
	reg := admin.NewRegistry(bus)
	token, err := o.adminToken()
	if err != nil {
		return err
	}
	// What each instance last asked (the agent knows who asked), for
	// trace on guests it cannot enter.
	var recent *events.Recent
	if has(ComponentAgent) {
		recent = events.NewRecent(bus)
		g.Go(func() error { return recent.Run(ctx) })
	}
	var names *admin.DataplaneNames
	var dhcpSeen *dhcpCounts
	var dhcpStatus func() admin.DHCPCounts
	var traceKernel func(context.Context, string, time.Duration) (any, error)
	if has(ComponentProxy) {
		dp := dataplane.NewReconciler(o.Dataplane).Options()
		names = &admin.DataplaneNames{SegmentNamespace: dp.SegmentNamespace, GuestPrefix: dp.GuestPrefix, HostNamespace: dp.HostNamespace}
		dhcpSeen = &dhcpCounts{}
		dhcpStatus = dhcpSeen.counts
		if o.TraceKernel != nil {
			traceKernel = func(ctx context.Context, instance string, timeout time.Duration) (any, error) {
				return o.TraceKernel(ctx, dp, instance, timeout)
			}
		}
	}
	adm := admin.New(admin.Options{Bus: bus, Recent: recent, Dataplane: names, Overrides: maskedOverrides(o.Overrides), SocketPath: filepath.Join(o.DataDir, admin.SocketName), TCPAddr: o.AdminListen, Token: token,
		TCPBound: func(addr string) { node.setAdminURL(ctx, addr) },
		Status:   reg.Components, DHCP: dhcpStatus, Names: admin.StoreNames(o.Store), Logger: o.Logger.With("component", "admin"),
		Node: o.Node, TraceKernel: traceKernel,
		SettingsGeneration: func(ctx context.Context) (uint64, error) {
			snap, err := live.Snapshot(ctx)
			return snap.Generation, err
		},
		Health: func(ctx context.Context) error { return store.Ping(ctx, o.Store) }})
	g.Go(func() error {
		// The live view is not worth guests' metadata: a serve whose admin
		// endpoint cannot run (its socket taken in a race, a bad
		// --admin-listen) says so and serves on.
		if err := wrap("admin", adm.Run(ctx)); err != nil {
			o.Logger.Error("admin endpoint stopped; mdctl status, tui and events are unavailable from this serve", "err", err)
		}
		return nil
	})
	var apiURLs func(store.Config) []string
	var apiTransport http.RoundTripper
	if has(ComponentAPI) {
		ln, err := o.listenAPI()
		if err != nil {
			return err
		}
		srv := api.New(api.Options{Store: o.Store, Live: live, Logger: o.Logger.With("component", "api"), Events: bus,
			HealthcheckDisableFile: filepath.Join(o.DataDir, api.HealthcheckDisableName)})
		// An agent in this process talks to this API wherever it listens,
		// and through its handler rather than a loopback connection.
		addrs := []string{"http://" + ln.Addr().String()}
		apiURLs = func(store.Config) []string { return addrs }
		apiTransport = inprocess.Transport{Handler: srv.Handler()}
		g.Go(reg.Track("api", ln.Addr().String(), func() error { return wrap("api", srv.Run(ctx, ln)) }))
	}
	var agentTransport http.RoundTripper
	var loop *dataplaneLoop
	if has(ComponentAgent) {
		ag := agent.New(agent.Options{
			Store: o.Store, Live: live, SocketPath: socket, SocketOwner: -1, SocketGroup: -1, Listener: o.AgentListener,
			Logger:  o.Logger, // the agent names itself in its logs
			APIURLs: apiURLs, APITransport: apiTransport, Events: bus,
		})
		// A proxy in this process calls the agent's handler, as the agent
		// calls the API's; the socket still serves proxies elsewhere and
		// trace's socket hop.
		agentTransport = inprocess.Transport{Handler: ag.Handler()}
		g.Go(reg.Track("agent", agentAddr, func() error { return wrap("agent", ag.Run(ctx)) }))
	}
	if has(ComponentProxy) {
		px := proxy.New(proxy.Options{AgentSocket: socket, AgentTransport: agentTransport, Live: live,
			Logger: o.Logger, Events: bus}) // the proxy names itself in its logs
		mgr := proxy.NewManager(px)
		// This node's scheduler binds routers and DHCP networks to live
		// nodes (each pass of the loop first, then every Interval).
		sc := &sched.Scheduler{Store: o.Store, Live: live, Self: o.Node, Log: o.Logger.With("component", "scheduler")}
		g.Go(func() error { return sc.Run(ctx) })
		loop = &dataplaneLoop{
			node: o.Node, sched: sc,
			store: o.Store, live: live, rec: dataplane.NewReconciler(o.Dataplane), mgr: mgr,
			log: o.Logger.With("component", "dataplane"), poll: o.Poll,
			failures: bus.Metrics().Counter(events.ReconcileErrors),
			resync:   o.Resync, firstPass: make(chan struct{}),
			repairs: bus.Metrics().Counter(events.DataplaneRepairs),
			gauges:  newDataplaneGauges(bus.Metrics()), dhcpSeen: dhcpSeen,
		}
		o.Logger.Info("proxy starting", "component", ComponentProxy, "segment", o.Dataplane.SegmentNamespace, "resync", o.Resync.String())
		g.Go(reg.Track("proxy", "", func() error { return wrap("proxy", mgr.Run(ctx)) }))
		g.Go(reg.Track("dataplane", "", func() error { return wrap("dataplane", loop.Run(ctx)) }))
	}
	if has(ComponentConfigDrive) {
		// Config drives: see configdrives.go.
		cd := newConfigDriveLoop(o.Store, live, o.DataDir, o.Poll, o.Logger.With("component", ComponentConfigDrive))
		dir := filepath.Join(o.DataDir, ConfigDrivesDirName)
		o.Logger.Info("config drives kept", "component", ComponentConfigDrive, "dir", dir)
		g.Go(reg.Track(ComponentConfigDrive, dir, func() error { return wrap(ComponentConfigDrive, cd.Run(ctx)) }))
	}
	if o.Ready != nil {
		g.Go(func() error {
			if waitListening(ctx, has(ComponentAgent), agentAddr, loop) {
				o.Ready()
			}
			return nil
		})
	}
	return g.Wait()
}

// waitListening waits, until ctx ends, for the agent to answer on socket
// (when this serve runs one) and for the data plane's first pass (when
// loop is set). It reports whether both came.
func waitListening(ctx context.Context, agent bool, socket string, loop *dataplaneLoop) bool {
	if loop != nil {
		select {
		case <-loop.firstPass:
		case <-ctx.Done():
			return false
		}
	}
	for agent {
		if c, err := net.Dial("unix", socket); err == nil {
			c.Close()
			break
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return ctx.Err() == nil
}

// agentAddr is where the agent listens: socket, or the socket systemd
// passed, which had better be socket: proxies in other processes and
// trace's socket hop look there.
func (o Options) agentAddr(socket string) string {
	if o.AgentListener == nil {
		return socket
	}
	addr := o.AgentListener.Addr().String()
	if addr != socket {
		o.Logger.Warn("the agent's socket from systemd is not in the data dir: proxies in other processes and trace look for it there (mdctl-agent.socket's ListenStream= should be that path)",
			"socket", addr, "data_dir_socket", socket)
	}
	return addr
}

func (o Options) listenAPI() (net.Listener, error) {
	if o.APIListener != nil {
		return o.APIListener, nil
	}
	addr := o.APIListen
	if addr == "" {
		addr = "127.0.0.1:8775"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("api: listen on %s: %w (another server there? move it with --api-listen)", addr, err)
	}
	return ln, nil
}

// wrap names the component that failed; a clean stop is not an error.
func wrap(component string, err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("%s: %w", component, err)
}

// maskedOverrides is overrides with each secret setting's value masked, as
// /status shows them.
func maskedOverrides(overrides map[string]string) map[string]string {
	if len(overrides) == 0 {
		return nil
	}
	out := make(map[string]string, len(overrides))
	for k, v := range overrides {
		if d, _ := store.LookupSetting(k); d.Secret && v != "" {
			v = admin.Masked
		}
		out[k] = v
	}
	return out
}
