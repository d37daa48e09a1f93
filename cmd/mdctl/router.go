package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/store"
	"github.com/mdctl/mdctl/store/topology"
)

// routerView is a router with the networks its interfaces are on.
type routerView struct {
	store.Router `yaml:",inline"`
	Networks     []string `json:"networks" yaml:"networks"` // names, in interface order
	// Hosts is the node the scheduler bound the router to (node list
	// shows them all); omitted while no serve has bound it.
	Hosts []string `json:"hosts,omitempty" yaml:"hosts,omitempty"`
}

func newCmdRouter(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "router",
		Aliases: []string{"routers"},
		Short:   "Create, list, show and delete routers",
		Example: `  mdctl router create r1 --project demo
  mdctl network create net1 --project demo --cidr 10.90.1.0/24 --router r1
  mdctl router list`,
	}
	k := routerKind()
	cmd.AddCommand(newCmdRouterCreate(f, nil), newCmdRouterSet(f, nil), newCmdRecordList(f, k, nil), newCmdRecordShow(f, k, nil), newCmdRecordDelete(f, k, nil))
	return cmd
}

// routerKind is how router list, show and delete read, delete and print a
// router: with the networks its interfaces are on.
func routerKind() recordKind[store.Router, routerView] {
	return recordKind[store.Router, routerView]{
		name: "router",
		list: func(ctx context.Context, st store.Reader) ([]store.Router, error) { return st.ListRouters(ctx) },
		get: func(ctx context.Context, st store.Reader, ref string) (store.Router, error) {
			return st.GetRouter(ctx, ref)
		},
		view:   readRouterView,
		remove: topology.DeleteRouter,
		ident:  func(r store.Router) (string, string) { return r.Name, r.ID },
		table:  printRouterTable,
		listHelp: recordHelp{
			Short:   "List routers with the networks they serve",
			Example: `  mdctl router list -o json`,
		},
		showHelp: recordHelp{
			Short:   "Show one router",
			Example: `  mdctl router show r1`,
		},
		deleteHelp: recordHelp{
			Short:   "Delete a router and its interfaces (its networks become isolated)",
			Example: `  mdctl router delete r1`,
		},
	}
}

type routerCreateOptions struct {
	IO     *iostreams
	Store  func(context.Context) (store.Store, error)
	Spec   topology.RouterSpec
	Output string
}

func newCmdRouterCreate(f *factory, runF func(context.Context, *routerCreateOptions) error) *cobra.Command {
	opts := &routerCreateOptions{IO: f.IO, Store: f.CreateStore}
	cmd := &cobra.Command{
		Use:     "create NAME --project PROJECT",
		Short:   "Create a router (attach networks with network create --router)",
		Example: `  mdctl router create r1 --project demo`,
		Args:    exactArgs(1, "one router NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Spec.Name = args[0]
			return checkOutputAndRun(cmd, opts.Output, opts, runF, routerCreateRun)
		},
	}
	cmd.Flags().StringVar(&opts.Spec.Project, "project", "", "project name (created when missing)")
	_ = cmd.MarkFlagRequired("project")
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

func routerCreateRun(ctx context.Context, opts *routerCreateOptions) error {
	return withStoreFn(ctx, opts.Store, func(st store.Store) error {
		r, _, err := topology.CreateRouter(ctx, st, opts.Spec)
		if err != nil {
			return err
		}
		return routerKind().show(ctx, st, opts.IO, opts.Output, r)
	})
}

func readRouterView(ctx context.Context, st store.Reader, r store.Router) (routerView, error) {
	v := routerView{Router: r, Networks: []string{}}
	hosts, err := st.RouterHosts(ctx, r.ID)
	if err != nil {
		return v, fmt.Errorf("router %s: %w", r.Name, err)
	}
	if len(hosts) > 0 {
		v.Hosts = hosts
	}
	ports, err := st.ListPorts(ctx, store.PortFilter{DeviceIDs: []string{r.ID}, DeviceOwners: []string{store.OwnerRouterInterface}})
	if err != nil {
		return v, fmt.Errorf("router %s: %w", r.Name, err)
	}
	for _, p := range ports {
		name := p.NetworkID
		if n, err := st.GetNetwork(ctx, p.NetworkID); err == nil {
			name = n.Name
		}
		v.Networks = append(v.Networks, name)
	}
	return v, nil
}

// routerHost is the router's host for the table: the node, its pin when
// it has one ("-" while unbound).
func routerHost(v routerView) string {
	host := orDash(v.Hosts)
	if v.Node != "" {
		host += " (pinned to " + v.Node + ")"
	}
	return host
}

func printRouterTable(io *iostreams, views []routerView) error {
	t := newTable(io.Out, "NAME", "ID", "PROJECT", "NETWORKS", "HOST")
	for _, v := range views {
		t.row(v.Name, v.ID, v.ProjectID, strings.Join(v.Networks, ","), routerHost(v))
	}
	return t.flush()
}

type routerSetOptions struct {
	IO     *iostreams
	Store  func(context.Context) (store.Store, error)
	Ref    string
	Node   *string // --node: the pin ("" unpins); nil when not given
	Output string
}

func newCmdRouterSet(f *factory, runF func(context.Context, *routerSetOptions) error) *cobra.Command {
	opts := &routerSetOptions{IO: f.IO, Store: f.OpenStore}
	var node string
	cmd := &cobra.Command{
		Use:   "set NAME|ID --node NODE",
		Short: "Pin a router to a node (--node NODE), or unpin it (--node '')",
		Long: `Set --node pins the router to a node (see mdctl node list): the schedulers
bind it there and never move it, even while that node is dead. --node ''
unpins it: it stays where it is while that node lives, and fails over as
any router.`,
		Example: `  mdctl router set r1 --node net-2
  mdctl router set r1 --node ''`,
		Args: exactArgs(1, "one router NAME or ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = args[0]
			if !cmd.Flags().Changed("node") {
				return usageErrorf("router set: nothing to set; give --node NODE (or --node '' to unpin)")
			}
			if node != "" {
				if err := store.CheckNodeName(node); err != nil {
					return usageErrorf("--node: %v", err)
				}
			}
			opts.Node = &node
			return checkOutputAndRun(cmd, opts.Output, opts, runF, routerSetRun)
		},
	}
	cmd.ValidArgsFunction = completeNames(f, routerKind().names)
	cmd.Flags().StringVar(&node, "node", "", "the node to pin the router to; '' unpins")
	_ = cmd.RegisterFlagCompletionFunc("node", completeNamesFlag(f, nodeKind().names))
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

func routerSetRun(ctx context.Context, opts *routerSetOptions) error {
	return withStoreFn(ctx, opts.Store, func(st store.Store) error {
		var r store.Router
		err := st.Update(ctx, func(tx store.Tx) error {
			var err error
			if r, err = tx.GetRouter(ctx, opts.Ref); err != nil {
				return notFound(err, "router", opts.Ref)
			}
			r.Node = *opts.Node
			return tx.PutRouter(ctx, r)
		})
		if err != nil {
			return err
		}
		if r.Node != "" {
			if _, err := st.GetNode(ctx, r.Node); errors.Is(err, store.ErrNotFound) {
				fmt.Fprintf(opts.IO.ErrOut, "note: no node %s has registered yet; the router is hosted nowhere until it does\n", r.Node)
			}
		}
		return routerKind().show(ctx, st, opts.IO, opts.Output, r)
	})
}
