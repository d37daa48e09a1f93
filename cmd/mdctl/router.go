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
	cmd.AddCommand(newCmdRouterCreate(f, nil), newCmdRouterList(f, nil), newCmdRouterShow(f, nil), newCmdRouterDelete(f, nil))
	return cmd
}

type routerCreateOptions struct {
	IO     *iostreams
	Store  func(context.Context) (store.Store, error)
	Spec   topology.RouterSpec
	Output string
}

func newCmdRouterCreate(f *factory, runF func(context.Context, *routerCreateOptions) error) *cobra.Command {
	opts := &routerCreateOptions{IO: f.IO, Store: f.OpenStore}
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
		return printRouters(opts.IO, opts.Output, []routerView{{Router: r, Networks: []string{}}}, true)
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

func newCmdRouterList(f *factory, runF func(context.Context, *recordOptions) error) *cobra.Command {
	opts := &recordOptions{IO: f.IO, Store: f.OpenStore}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List routers with the networks they serve",
		Example: `  mdctl router list -o json`,
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return checkOutputAndRun(cmd, opts.Output, opts, runF, routerListRun)
		},
	}
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

func routerListRun(ctx context.Context, opts *recordOptions) error {
	return withStoreFn(ctx, opts.Store, func(st store.Store) error {
		rs, err := st.ListRouters(ctx)
		if err != nil {
			return err
		}
		views := make([]routerView, 0, len(rs))
		for _, r := range rs {
			v, err := readRouterView(ctx, st, r)
			if err != nil {
				return err
			}
			views = append(views, v)
		}
		return printRouters(opts.IO, opts.Output, views, false)
	})
}

func newCmdRouterShow(f *factory, runF func(context.Context, *recordOptions) error) *cobra.Command {
	opts := &recordOptions{IO: f.IO, Store: f.OpenStore}
	cmd := &cobra.Command{
		Use:     "show NAME|ID",
		Short:   "Show one router",
		Example: `  mdctl router show r1`,
		Args:    exactArgs(1, "one router NAME or ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = args[0]
			return checkOutputAndRun(cmd, opts.Output, opts, runF, routerShowRun)
		},
	}
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

func routerShowRun(ctx context.Context, opts *recordOptions) error {
	return withStoreFn(ctx, opts.Store, func(st store.Store) error {
		r, err := st.GetRouter(ctx, opts.Ref)
		if err != nil {
			return notFound(err, "router", opts.Ref)
		}
		v, err := readRouterView(ctx, st, r)
		if err != nil {
			return err
		}
		return printRouters(opts.IO, opts.Output, []routerView{v}, true)
	})
}

func newCmdRouterDelete(f *factory, runF func(context.Context, *recordOptions) error) *cobra.Command {
	opts := &recordOptions{IO: f.IO, Store: f.OpenStore}
	cmd := &cobra.Command{
		Use:     "delete NAME|ID",
		Aliases: []string{"rm"},
		Short:   "Delete a router and its interfaces (its networks become isolated)",
		Example: `  mdctl router delete r1`,
		Args:    exactArgs(1, "one router NAME or ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = args[0]
			return runOrTest(cmd, opts, runF, routerDeleteRun)
		},
	}
	return cmd
}

func routerDeleteRun(ctx context.Context, opts *recordOptions) error {
	return withStoreFn(ctx, opts.Store, func(st store.Store) error {
		r, err := topology.DeleteRouter(ctx, st, opts.Ref)
		if err != nil {
			return notFound(err, "router", opts.Ref)
		}
		fmt.Fprintf(opts.IO.Out, "deleted router %s (%s)\n", r.Name, r.ID)
		return nil
	})
}

func printRouters(io *iostreams, format string, views []routerView, one bool) error {
	if format != "table" {
		if one {
			return printData(io.Out, format, views[0])
		}
		return printData(io.Out, format, views)
	}
	t := newTable(io.Out, "NAME", "ID", "PROJECT", "NETWORKS")
	for _, v := range views {
		t.row(v.Name, v.ID, v.ProjectID, strings.Join(v.Networks, ","))
	}
	return t.flush()
}
