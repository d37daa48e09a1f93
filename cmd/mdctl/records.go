package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/store"
)

// Instances, networks and routers have the same list, show and delete
// commands: they differ only in how a record is read, deleted and printed,
// and in their help text, which a recordKind carries.

// recordOptions are the options of every list, show and delete command.
type recordOptions struct {
	IO     *iostreams
	Store  func(context.Context) (store.Store, error)
	Ref    string // show, delete: a name or ID
	Output string // list, show
}

// recordHelp is one command's help text.
type recordHelp struct {
	Short, Long, Example string
}

// recordKind is one kind of record: R as the store keeps it, V as mdctl
// prints it (the record with what neutron or nova would show beside it).
type recordKind[R, V any] struct {
	name   string // "network": in argument hints and messages
	list   func(ctx context.Context, st store.Reader) ([]R, error)
	get    func(ctx context.Context, st store.Reader, ref string) (R, error) // by name or ID
	view   func(ctx context.Context, st store.Reader, r R) (V, error)
	remove func(ctx context.Context, st store.Store, ref string) (R, error)
	ident  func(r R) (name, id string)
	table  func(io *iostreams, views []V) error // list's table
	detail func(io *iostreams, v V) error       // show's, when it says more than list's row; nil: the table of one

	listHelp, showHelp, deleteHelp recordHelp
}

func newCmdRecordList[R, V any](f *factory, k recordKind[R, V], runF func(context.Context, *recordOptions) error) *cobra.Command {
	opts := &recordOptions{IO: f.IO, Store: f.OpenStore}
	cmd := k.listHelp.command("list", exactArgs(0, "no arguments"), "ls")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return checkOutputAndRun(cmd, opts.Output, opts, runF, k.listRun)
	}
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

func newCmdRecordShow[R, V any](f *factory, k recordKind[R, V], runF func(context.Context, *recordOptions) error) *cobra.Command {
	opts := &recordOptions{IO: f.IO, Store: f.OpenStore}
	cmd := k.showHelp.command("show NAME|ID", exactArgs(1, k.oneRef()))
	cmd.ValidArgsFunction = completeNames(f, k.names)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		opts.Ref = args[0]
		return checkOutputAndRun(cmd, opts.Output, opts, runF, k.showRun)
	}
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

func newCmdRecordDelete[R, V any](f *factory, k recordKind[R, V], runF func(context.Context, *recordOptions) error) *cobra.Command {
	opts := &recordOptions{IO: f.IO, Store: f.OpenStore}
	cmd := k.deleteHelp.command("delete NAME|ID", exactArgs(1, k.oneRef()), "rm")
	cmd.ValidArgsFunction = completeNames(f, k.names)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		opts.Ref = args[0]
		return runOrTest(cmd, opts, runF, k.deleteRun)
	}
	return cmd
}

// names lists the records' names, for shell completion.
func (k recordKind[R, V]) names(ctx context.Context, st store.Reader) ([]string, error) {
	rs, err := k.list(ctx, st)
	var out []string
	for _, r := range rs {
		if name, _ := k.ident(r); name != "" {
			out = append(out, name)
		}
	}
	return out, err
}

// command is a command with this help; the caller sets RunE.
func (h recordHelp) command(use string, args cobra.PositionalArgs, aliases ...string) *cobra.Command {
	return &cobra.Command{Use: use, Aliases: aliases, Short: h.Short, Long: h.Long, Example: h.Example, Args: args}
}

// oneRef is show's and delete's argument hint.
func (k recordKind[R, V]) oneRef() string { return "one " + k.name + " NAME or ID" }

func (k recordKind[R, V]) listRun(ctx context.Context, opts *recordOptions) error {
	return withStoreFn(ctx, opts.Store, func(st store.Store) error {
		rs, err := k.list(ctx, st)
		if err != nil {
			return err
		}
		views := make([]V, 0, len(rs))
		for _, r := range rs {
			v, err := k.view(ctx, st, r)
			if err != nil {
				return err
			}
			views = append(views, v)
		}
		if len(views) == 0 && opts.Output == "table" {
			// kubectl's words, on stderr: stdout stays empty for a pipe.
			_, err := fmt.Fprintln(opts.IO.ErrOut, "No resources found")
			return err
		}
		return k.print(opts.IO, opts.Output, views, false)
	})
}

func (k recordKind[R, V]) showRun(ctx context.Context, opts *recordOptions) error {
	return withStoreFn(ctx, opts.Store, func(st store.Store) error {
		r, err := k.get(ctx, st, opts.Ref)
		if err != nil {
			return notFound(err, k.name, opts.Ref)
		}
		return k.show(ctx, st, opts.IO, opts.Output, r)
	})
}

func (k recordKind[R, V]) deleteRun(ctx context.Context, opts *recordOptions) error {
	return withStoreFn(ctx, opts.Store, func(st store.Store) error {
		r, err := k.remove(ctx, st, opts.Ref)
		if err != nil {
			return notFound(err, k.name, opts.Ref)
		}
		name, id := k.ident(r)
		fmt.Fprintf(opts.IO.Out, "deleted %s %s (%s)\n", k.name, name, id)
		return nil
	})
}

// show prints one record in full: what show and create print.
func (k recordKind[R, V]) show(ctx context.Context, st store.Reader, io *iostreams, format string, r R) error {
	v, err := k.view(ctx, st, r)
	if err != nil {
		return err
	}
	return k.print(io, format, []V{v}, true)
}

// print writes views for scripts (an object for show, an array for list)
// or for people (list's table, or show's detail).
func (k recordKind[R, V]) print(io *iostreams, format string, views []V, one bool) error {
	if format != "table" {
		if one {
			return printData(io.Out, format, views[0])
		}
		return printData(io.Out, format, views)
	}
	if one && k.detail != nil {
		return k.detail(io, views[0])
	}
	return k.table(io, views)
}
