package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/diag"
	"github.com/mdctl/mdctl/internal/sdlisten"
	"github.com/mdctl/mdctl/internal/sdnotify"
	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/store"
)

// serve's wiring lives in this one file; server.Run owns the components.

type serveOptions struct {
	IO         *iostreams
	Store      func(context.Context) (store.Store, error)
	DataDir    string
	Components []string
	APIListen  string
	// AdminListen adds a TCP address to the admin endpoint (events, metrics,
	// status) beside <data-dir>/admin.sock, for mdctl tui --server on another host.
	AdminListen string
	// AdminTokenFile holds the token --admin-listen requires.
	AdminTokenFile string
	Overrides      map[string]string
	Logger         *slog.Logger      // default: text at info on IO.ErrOut
	Dataplane      dataplane.Options // this data dir's (or --profile's) names
	// Node is --node: this serve's name among the nodes sharing the store.
	Node    string
	Version string
	// NotifySocket is $NOTIFY_SOCKET: systemd (Type=notify) hears READY=1
	// once the components listen and STOPPING=1 when serve stops.
	NotifySocket string
	// Activated are the sockets systemd passed (socket activation), by
	// FileDescriptorName: the api's and the agent's.
	Activated map[string]net.Listener
}

func newCmdServe(f *factory, runF func(context.Context, *serveOptions) error) *cobra.Command {
	opts := &serveOptions{IO: f.IO, Store: f.CreateStore}
	var components string
	var sets []string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the metadata API, agent and proxies in the foreground",
		Long: `Serve runs the nova-compatible API, the neutron-compatible agent (a unix
socket in --data-dir), one proxy per router and DHCP-served network
(reconciling namespaces and iptables from the store), and keeps a config
drive in --data-dir/config-drives for every instance that needs one.
Changes to the store, settings included, apply within a second without a
restart. SIGINT or SIGTERM stop it cleanly; namespaces and rules stay for
the next start to adopt (mdctl cleanup removes them). One serve per data
dir: a second one refuses to start (it holds <data-dir>/serve.lock).
Logs go to stderr. Started by systemd with sockets (socket activation:
dist/systemd/mdctl-api.socket, mdctl-agent.socket), it serves the API on the
one named api instead of --api-listen, and the agent on the one named agent.

Several serves on one store (postgres://, or one SQLite file) are nodes:
each registers under --node (default the host name) and heartbeats; the
scheduler in each serve running the proxy component binds every router to
one live such node (the least loaded, or its pin: router set --node) and
every DHCP network to dhcp_agents_per_network of them, and each builds
only what is bound to it. A node silent for agent_down_time seconds is
dead: its routers and networks move to live nodes; back, it takes nothing
back. One serve alone hosts everything, as ever. See mdctl node list.`,
		Example: `  mdctl serve
  mdctl serve --components api --api-listen 0.0.0.0:8775
  mdctl serve --components agent,proxy --set nova_metadata_host=10.0.0.5
  mdctl serve --components agent,proxy --set nova_metadata_host=10.0.0.5,10.0.0.6   # API replicas: the next answers when one does not
  mdctl serve --set metadata_proxy_shared_secret=node-secret
  mdctl --db postgres://mdctl@db1/mdctl serve --node net-1 --components agent,proxy
  mdctl serve --admin-listen 127.0.0.1:9100   # token in <data-dir>/admin.token; then:
  MDCTL_ADMIN_TOKEN=$(cat /var/lib/mdctl/admin.token) mdctl tui --server http://127.0.0.1:9100`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if opts.Components, err = server.ParseComponents(components); err != nil {
				return usageErrorf("--components: %v", err)
			}
			if opts.Overrides, err = parseSets(sets); err != nil {
				return err
			}
			opts.Logger = f.Logger(f.IO.ErrOut, slog.LevelInfo)
			opts.DataDir, opts.NotifySocket = f.DataDir, f.Getenv("NOTIFY_SOCKET")
			if opts.Activated, err = sdlisten.Listeners(f.Getenv); err != nil {
				return err
			}
			if err := store.CheckNodeName(opts.Node); err != nil {
				return usageErrorf("--node: %v", err)
			}
			opts.Version = f.Version
			events.Version = f.Version // mdctl_build_info's version label
			if opts.Dataplane, err = f.Dataplane(); err != nil {
				return err
			}
			return runOrTest(cmd, opts, runF, serveRun)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&components, "components", strings.Join(server.AllComponents, ","), "components to run: "+strings.Join(server.AllComponents, ","))
	_ = cmd.RegisterFlagCompletionFunc("components", completeComponents)
	fl.StringVar(&opts.APIListen, "api-listen", "127.0.0.1:8775", "address the metadata API listens on")
	fl.StringVar(&opts.AdminListen, "admin-listen", "", "also serve the admin endpoint (events, /metrics, status) on this TCP address; every request needs the bearer token (a non-loopback address needs --admin-token-file)")
	fl.StringVar(&opts.AdminTokenFile, "admin-token-file", "", "file holding the --admin-listen bearer token (default <data-dir>/admin.token, made on first use; clients send it from $MDCTL_ADMIN_TOKEN)")
	fl.StringVar(&opts.Node, "node", server.DefaultNodeName(), "this serve's node name among the serves sharing the store (mdctl node list)")
	fl.StringArrayVar(&sets, "set", nil, "override a setting for this process only, KEY=VALUE (repeatable)")
	return cmd
}

// parseSets checks --set KEY=VALUE flags against the known settings.
func parseSets(sets []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range sets {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, usageErrorf("--set %q: use KEY=VALUE, e.g. --set force_metadata=true", kv)
		}
		nv, err := store.NormalizeSetting(k, v)
		if err != nil {
			return nil, usageErrorf("--set: %v", err)
		}
		out[k] = nv
	}
	return out, nil
}

func serveRun(ctx context.Context, opts *serveOptions) error {
	if err := server.CheckPrivileges(opts.Components); err != nil {
		return err
	}
	unlock, err := server.LockDataDir(opts.DataDir)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := opts.Store(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(opts.IO.ErrOut, nil))
	}
	log.Info("mdctl serve starting", "node", opts.Node, "components", strings.Join(opts.Components, ","), "data_dir", opts.DataDir)
	stopping := context.AfterFunc(ctx, func() { // SIGTERM: the stop begins
		if err := sdnotify.Notify(opts.NotifySocket, sdnotify.Stopping); err != nil {
			log.Warn("could not tell systemd serve stops", "err", err)
		}
	})
	defer stopping()
	apiLn, agentLn, err := activatedListeners(opts.Activated, opts.Components)
	if err != nil {
		return err
	}
	for name, ln := range opts.Activated {
		log.Info("socket from systemd", "name", name, "addr", ln.Addr().String())
	}
	err = server.Run(ctx, server.Options{
		APIListener: apiLn, AgentListener: agentLn,
		Store: st, DataDir: opts.DataDir, Components: opts.Components,
		Overrides: opts.Overrides, APIListen: opts.APIListen, AdminListen: opts.AdminListen, AdminTokenFile: opts.AdminTokenFile, Logger: log,
		Dataplane: opts.Dataplane, Node: opts.Node, Version: opts.Version,
		// Another node's trace of an instance this node hosts.
		TraceKernel: func(ctx context.Context, dp dataplane.Options, instance string, timeout time.Duration) (any, error) {
			return diag.TraceKernel(ctx, diag.Options{Store: st, DataDir: opts.DataDir, Overrides: opts.Overrides,
				Dataplane: dp, Timeout: timeout, Node: opts.Node}, instance)
		},
		Ready: func() {
			if err := sdnotify.Notify(opts.NotifySocket, sdnotify.Ready); err != nil {
				log.Warn("could not tell systemd serve is ready", "err", err)
			}
		},
	})

	if err == nil {
		log.Info("mdctl serve stopped")
	}
	return err
}

// activatedListeners are the API's and the agent's sockets among those
// systemd passed (FileDescriptorName=api, agent; nil for one it did not
// pass). A socket for no component this serve runs is an error: its
// clients would queue on it unanswered.
func activatedListeners(lns map[string]net.Listener, components []string) (api, agent net.Listener, err error) {
	for name, ln := range lns {
		switch {
		case name != server.ComponentAPI && name != server.ComponentAgent:
			err = fmt.Errorf("systemd passed a socket named %q (FileDescriptorName=): serve takes %s and %s", name, server.ComponentAPI, server.ComponentAgent)
		case !slices.Contains(components, name):
			err = fmt.Errorf("systemd passed the %s socket (%s), but --components has no %s", name, ln.Addr(), name)
		}
	}
	if err != nil {
		for _, ln := range lns {
			ln.Close()
		}
		return nil, nil, err
	}
	return lns[server.ComponentAPI], lns[server.ComponentAgent], nil
}
