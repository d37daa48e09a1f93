package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/store/topology"
)

// diff is apply --dry-run that prints only what would change and says by
// its exit code whether anything would (kubectl diff's contract).

func newCmdDiff(f *factory, runF func(context.Context, *applyOptions) error) *cobra.Command {
	opts := &applyOptions{IO: f.IO, Store: f.OpenStoreOrEmpty, DryRun: true}
	cmd := &cobra.Command{
		Use:   "diff -f FILE",
		Short: "Show what apply -f FILE would change, writing nothing",
		Long: `Diff checks a topology file against the store as apply does and lists what
apply would create, update or delete (unchanged records are left out).
Exit 0 when the store already matches the file, 1 when apply would change
something (or the file is wrong), 2 on bad usage.`,
		Example: `  mdctl diff -f topology.yaml
  mdctl diff -f topology.yaml -o json
  mdctl diff -f topology.yaml && echo "in sync"`,
		Args: exactArgs(0, "no arguments (give the file with -f)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.File == "" {
				return usageErrorf("diff needs a file: mdctl diff -f topology.yaml (or -f - for stdin)")
			}
			return checkOutputAndRun(cmd, opts.Output, opts, runF, diffRun)
		},
	}
	cmd.Flags().StringVarP(&opts.File, "filename", "f", "", "topology file (YAML), or - for stdin")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml")
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

func diffRun(ctx context.Context, opts *applyOptions) error {
	res, err := applyFile(ctx, opts)
	if err != nil {
		return err
	}
	changed := topology.Result{Changes: []topology.Change{}}
	for _, c := range res.Changes {
		if c.Action != topology.Unchanged {
			changed.Changes = append(changed.Changes, c)
		}
	}
	if err := printResult(opts.IO, opts.Output, changed); err != nil {
		return err
	}
	if len(changed.Changes) > 0 {
		return &exitError{code: exitFail, err: fmt.Errorf("apply would change %d records", len(changed.Changes))}
	}
	return nil
}
