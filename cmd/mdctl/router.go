package main

import (
	"context"
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
	cmd.AddCommand(newCmdRouterCreate(f, nil), newCmdRecordList(f, k, nil), newCmdRecordShow(f, k, nil), newCmdRecordDelete(f, k, nil))
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

func printRouterTable(io *iostreams, views []routerView) error {
	t := newTable(io.Out, "NAME", "ID", "PROJECT", "NETWORKS")
	for _, v := range views {
		t.row(v.Name, v.ID, v.ProjectID, strings.Join(v.Networks, ","))
	}
	return t.flush()
}
