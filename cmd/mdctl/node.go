package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/store"
)

// nodeView is a node as node list and show print it: its row, whether it
// is alive, and what it hosts (compare `openstack network agent list`).
type nodeView struct {
	Name       string   `json:"name" yaml:"name"`
	Alive      bool     `json:"alive" yaml:"alive"`
	Components []string `json:"components" yaml:"components"`
	// Routers and Networks are the IDs of the routers and DHCP networks
	// bound to the node; Pinned the routers pinned to it (router set --node).
	Routers      []string  `json:"routers" yaml:"routers"`
	Networks     []string  `json:"networks" yaml:"networks"`
	Pinned       []string  `json:"pinned_routers" yaml:"pinned_routers"`
	HeartbeatAt  time.Time `json:"heartbeat_at" yaml:"heartbeat_at"`
	HeartbeatAge string    `json:"heartbeat_age" yaml:"heartbeat_age"` // "4s" at the time of asking
	StartedAt    time.Time `json:"started_at" yaml:"started_at"`
	Version      string    `json:"version" yaml:"version"`
	AdminURL     string    `json:"admin_url" yaml:"admin_url"`
	AdminSocket  string    `json:"admin_socket" yaml:"admin_socket"`

	routerNames, networkNames []string // for the table
}

func newCmdNode(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "node",
		Aliases: []string{"nodes"},
		Short:   "List, show and delete the nodes (serves) sharing this store",
		Long: `Every mdctl serve registers itself as a node (serve --node, default the host
name) with its components, admin endpoint, version and start time, and
heartbeats every third of agent_down_time (at most 30 s). A node whose
heartbeat is older than agent_down_time is dead: the scheduler in each
live serve running the proxy component moves its routers and DHCP
networks to live ones (dhcp_agents_per_network of them per network), as
neutron's l3 and DHCP schedulers do. A node that comes back takes nothing
back. Pin a router to a node with router set --node.`,
		Example: `  mdctl node list
  mdctl node show net-2 -o json
  mdctl node delete net-3`,
	}
	k := nodeKind()
	cmd.AddCommand(newCmdRecordList(f, k, nil), newCmdRecordShow(f, k, nil), newCmdNodeDelete(f, nil))
	return cmd
}

func nodeKind() recordKind[store.Node, nodeView] {
	return recordKind[store.Node, nodeView]{
		name: "node",
		list: func(ctx context.Context, st store.Reader) ([]store.Node, error) { return st.ListNodes(ctx) },
		get: func(ctx context.Context, st store.Reader, ref string) (store.Node, error) {
			return st.GetNode(ctx, ref)
		},
		view: readNodeView,
		ident: func(n store.Node) (string, string) {
			return n.Name, n.Name
		},
		table:  printNodeTable,
		detail: printNodeDetail,
		listHelp: recordHelp{
			Short: "List nodes: alive, heartbeat, components, what each hosts",
			Example: `  mdctl node list
  mdctl node list -o json | jq '.[] | select(.alive | not) | .name'`,
		},
		showHelp: recordHelp{
			Short:   "Show one node with the routers and networks it hosts",
			Example: `  mdctl node show net-1`,
		},
	}
}

// agentDownTime is agent_down_time as the store sets it.
func agentDownTime(ctx context.Context, st store.Reader) (time.Duration, error) {
	stored, err := st.Settings(ctx)
	if err != nil {
		return 0, err
	}
	cfg, err := store.ParseConfig(stored, nil)
	if err != nil {
		return 0, err
	}
	return cfg.AgentDownTime, nil
}

func readNodeView(ctx context.Context, st store.Reader, n store.Node) (nodeView, error) {
	down, err := agentDownTime(ctx, st)
	if err != nil {
		return nodeView{}, err
	}
	now := time.Now()
	v := nodeView{Name: n.Name, Alive: n.Alive(now, down), Components: n.Components,
		Pinned:      []string{},
		HeartbeatAt: n.HeartbeatAt, HeartbeatAge: age(now.Sub(n.HeartbeatAt)), StartedAt: n.StartedAt,
		Version: n.Version, AdminURL: n.AdminURL, AdminSocket: n.AdminSocket}
	rb, err := st.RouterBindings(ctx)
	if err != nil {
		return v, err
	}
	v.Routers, v.routerNames = boundTo(n.Name, rb, func(id string) (string, error) {
		r, err := st.GetRouter(ctx, id)
		return r.Name, err
	})
	nb, err := st.NetworkBindings(ctx)
	if err != nil {
		return v, err
	}
	v.Networks, v.networkNames = boundTo(n.Name, nb, func(id string) (string, error) {
		nw, err := st.GetNetwork(ctx, id)
		return nw.Name, err
	})
	routers, err := st.ListRouters(ctx)
	if err != nil {
		return v, err
	}
	for _, r := range routers {
		if r.Node == n.Name {
			v.Pinned = append(v.Pinned, r.ID)
		}
	}
	return v, nil
}

// boundTo lists the IDs bs binds to node, with each record's name (its
// ID when it has none, or is gone).
func boundTo(node string, bs []store.Binding, name func(id string) (string, error)) (ids, names []string) {
	ids, names = []string{}, []string{}
	for _, b := range bs {
		if b.Node != node {
			continue
		}
		ids = append(ids, b.ID)
		if n, err := name(b.ID); err == nil && n != "" {
			names = append(names, n)
		} else {
			names = append(names, b.ID)
		}
	}
	return ids, names
}

// age is a duration for people: whole seconds up to an hour, then coarser.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s" // a clock ahead of ours
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

func aliveWord(v nodeView) string {
	if v.Alive {
		return "yes"
	}
	return "NO"
}

func orDash(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

func printNodeTable(io *iostreams, views []nodeView) error {
	t := newTable(io.Out, "NAME", "ALIVE", "HEARTBEAT", "COMPONENTS", "ROUTERS", "NETWORKS", "ADMIN")
	for _, v := range views {
		admin := v.AdminURL
		if admin == "" {
			admin = v.AdminSocket
		}
		t.row(v.Name, aliveWord(v), v.HeartbeatAge+" ago", strings.Join(v.Components, ","),
			orDash(v.routerNames), orDash(v.networkNames), admin)
	}
	return t.flush()
}

func printNodeDetail(io *iostreams, v nodeView) error {
	t := newTable(io.Out, "FIELD", "VALUE")
	t.row("name", v.Name)
	t.row("alive", fmt.Sprintf("%s (heartbeat %s ago, at %s)", aliveWord(v), v.HeartbeatAge, v.HeartbeatAt.Format(time.RFC3339)))
	t.row("components", strings.Join(v.Components, ","))
	t.row("started", v.StartedAt.Format(time.RFC3339))
	t.row("version", v.Version)
	t.row("admin url", v.AdminURL)
	t.row("admin socket", v.AdminSocket)
	for i, id := range v.Routers {
		t.row("router", fmt.Sprintf("%s (%s)", v.routerNames[i], id))
	}
	for i, id := range v.Networks {
		t.row("dhcp network", fmt.Sprintf("%s (%s)", v.networkNames[i], id))
	}
	for _, id := range v.Pinned {
		t.row("pinned router", id)
	}
	return t.flush()
}

type nodeDeleteOptions struct {
	IO    *iostreams
	Store func(context.Context) (store.Store, error)
	Name  string
	Force bool
}

func newCmdNodeDelete(f *factory, runF func(context.Context, *nodeDeleteOptions) error) *cobra.Command {
	opts := &nodeDeleteOptions{IO: f.IO, Store: f.OpenStore}
	cmd := &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Forget a dead node; its routers and networks go to live nodes",
		Long: `Delete removes a node and its bindings; the scheduler of every live serve
binds its routers and DHCP networks again (to live nodes) at its next pass.
A live node is refused (it would register again at its next heartbeat):
stop its serve first, or give --force.`,
		Example: `  mdctl node delete net-3`,
		Args:    exactArgs(1, "one node NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			return runOrTest(cmd, opts, runF, nodeDeleteRun)
		},
	}
	cmd.ValidArgsFunction = completeNames(f, nodeKind().names)
	cmd.Flags().BoolVar(&opts.Force, "force", false, "delete a node that is alive too")
	return cmd
}

func nodeDeleteRun(ctx context.Context, opts *nodeDeleteOptions) error {
	return withStoreFn(ctx, opts.Store, func(st store.Store) error {
		n, err := st.GetNode(ctx, opts.Name)
		if err != nil {
			return notFound(err, "node", opts.Name)
		}
		down, err := agentDownTime(ctx, st)
		if err != nil {
			return err
		}
		if n.Alive(time.Now(), down) && !opts.Force {
			return fmt.Errorf("node %s is alive (heartbeat %s ago, agent_down_time %s): stop its serve first, or give --force",
				n.Name, age(time.Since(n.HeartbeatAt)), down)
		}
		if err := st.DeleteNode(ctx, n.Name); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return notFound(err, "node", opts.Name)
			}
			return err
		}
		_, err = fmt.Fprintf(opts.IO.Out, "deleted node %s\n", n.Name)
		return err
	})
}
