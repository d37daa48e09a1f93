package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/store"
	"github.com/mdctl/mdctl/store/topology"
)

type applyOptions struct {
	IO     *iostreams
	Store  func(context.Context) (store.Store, error)
	File   string
	Output string
	DryRun bool // check against the store and print what would change; write nothing
}

func newCmdApply(f *factory, runF func(context.Context, *applyOptions) error) *cobra.Command {
	opts := &applyOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or update, idempotently, everything in a topology file",
		Long: `Apply reads a topology (settings, routers, networks, instances) and makes the
store match it in one transaction. A file with any mistake is refused whole,
naming each field and line. Applying the same file again changes nothing.`,
		Example: `  mdctl apply -f topology.yaml
  cat topology.yaml | mdctl apply -f -
  mdctl apply -f topology.yaml -o json   # what was created, updated, unchanged
  mdctl apply -f topology.yaml --dry-run # what it would do, writing nothing`,
		Args: exactArgs(0, "no arguments (give the file with -f)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.File == "" {
				return usageErrorf("apply needs a file: mdctl apply -f topology.yaml (or -f - for stdin)")
			}
			opts.Store = f.CreateStore
			if opts.DryRun {
				opts.Store = f.OpenStoreOrEmpty
			}
			return checkOutputAndRun(cmd, opts.Output, opts, runF, applyRun)
		},
	}
	cmd.Flags().StringVarP(&opts.File, "filename", "f", "", "topology file (YAML), or - for stdin")
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "check the file against the store and print what would change, writing nothing")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml")
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

func applyRun(ctx context.Context, opts *applyOptions) error {
	res, err := applyFile(ctx, opts)
	if err != nil {
		return err
	}
	return printResult(opts.IO, opts.Output, res)
}

// applyFile applies (or dry-runs) opts.File against the store: apply's and
// diff's work.
func applyFile(ctx context.Context, opts *applyOptions) (topology.Result, error) {
	top, err := readTopology(opts.IO.In, opts.File)
	if err != nil {
		return topology.Result{}, err
	}
	st, err := opts.Store(ctx)
	if err != nil {
		return topology.Result{}, err
	}
	defer st.Close()
	if opts.DryRun {
		return topology.DryRun(ctx, st, top)
	}
	return topology.Apply(ctx, st, top)
}

// readTopology reads and parses the file apply and diff take (- for
// stdin); a file that describes nothing is a mistake, not a no-op.
func readTopology(in io.Reader, file string) (*topology.Topology, error) {
	data, err := readInput(in, file)
	if err != nil {
		return nil, err
	}
	name := file
	if name == "-" {
		name = "<stdin>" // errors read "<stdin>:12: …"; paths resolve from the working directory
	}
	top, err := topology.Parse(data, name)
	if err != nil {
		return nil, err
	}
	if len(top.Settings)+len(top.Routers)+len(top.Networks)+len(top.Instances) == 0 {
		return nil, usageErrorf("%s: the topology is empty: give settings, routers, networks or instances (see mdctl apply --help)", name)
	}
	return top, nil
}

// readInput reads the topology from in ("-") or the file name, at most one
// byte past topology.MaxBytes: enough for Parse to refuse it, and never all
// of a /dev/zero.
func readInput(in io.Reader, name string) ([]byte, error) {
	what := "stdin"
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("read topology: %w", err)
		}
		defer f.Close()
		in, what = f, name
	}
	b, err := io.ReadAll(io.LimitReader(in, topology.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return b, nil
}

// printResult shows what Apply did: every record for scripts, a table and
// a one-line summary for people.
func printResult(io *iostreams, format string, res topology.Result) error {
	if res.Changes == nil {
		res.Changes = []topology.Change{}
	}
	for i, c := range res.Changes {
		if c.Kind == "setting" {
			res.Changes[i].Detail = shownValue(c.Name, c.Detail)
		}
	}
	if format != "table" {
		return printData(io.Out, format, res)
	}
	t := newTable(io.Out, "KIND", "NAME", "ACTION", "ID", "DETAIL")
	for _, c := range res.Changes {
		t.row(c.Kind, c.Name, paintAction(io, c.Action), c.ID, c.Detail)
	}
	if err := t.flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(io.Out, "%d created, %d updated, %d deleted, %d unchanged\n",
		res.Count(topology.Created), res.Count(topology.Updated), res.Count(topology.Deleted), res.Count(topology.Unchanged))
	return err
}

func paintAction(io *iostreams, a topology.Action) string {
	switch a {
	case topology.Created:
		return io.paint("32", string(a))
	case topology.Updated:
		return io.paint("33", string(a))
	case topology.Deleted:
		return io.paint("31", string(a))
	}
	// Same escape length on every row keeps the table aligned.
	return io.paint("0", string(a))
}
