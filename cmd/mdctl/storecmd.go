package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/store"
)

func newCmdStore(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Manage the store itself (copy it to another backend)",
		Example: `  mdctl store migrate --to postgres://mdctl:secret@db.example/mdctl
  mdctl store migrate --from sqlite:///var/lib/mdctl/mdctl.db --to postgres://db.example/mdctl`,
	}
	cmd.AddCommand(newCmdStoreMigrate(f, nil))
	return cmd
}

type storeMigrateOptions struct {
	IO      *iostreams
	DataDir string
	From    string // "" is the store --data-dir/--db names
	To      string
	Output  string
}

func newCmdStoreMigrate(f *factory, runF func(context.Context, *storeMigrateOptions) error) *cobra.Command {
	opts := &storeMigrateOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "migrate --to URL [--from URL]",
		Short: "Copy a whole store to another one, e.g. SQLite to PostgreSQL",
		Long: `Copies every record (projects, networks, subnets, routers, ports, instances,
settings, posted passwords, and the EC2 id counter) from one store to another in
one transaction of the target: the copy is whole, or the target is left as it was.
The target must hold no records; opening it creates (or upgrades) its schema, as
every mdctl command does. --from defaults to the store --data-dir or --db names.
Stop every serve on the source first: a write to it during the copy is not carried.
Afterwards, point every mdctl at the target with --db.`,
		Example: `  mdctl store migrate --to postgres://mdctl:secret@db.example/mdctl
  mdctl store migrate --from sqlite:///var/lib/mdctl/mdctl.db --to 'postgres://mdctl@/mdctl?host=/run/postgresql'
  mdctl store migrate --from postgres://db.example/mdctl --to sqlite:///tmp/backup.db -o json`,
		Args: exactArgs(0, "no arguments (name the stores with --from and --to)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.DataDir = f.DataDir
			if opts.From == "" {
				opts.From = f.DB
			}
			if opts.To == "" {
				return usageErrorf("store migrate needs --to URL (the target store); see %s --help", cmd.CommandPath())
			}
			if err := checkOutput(opts.Output); err != nil {
				return err
			}
			return runOrTest(cmd, opts, runF, storeMigrateRun)
		},
	}
	cmd.Flags().StringVar(&opts.From, "from", "", "source store URL (default: the store --data-dir/--db names)")
	cmd.Flags().StringVar(&opts.To, "to", "", "target store URL: postgres://… or sqlite:///path (must hold no records)")
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

// storeMigrateResult is what -o json|yaml prints.
type storeMigrateResult struct {
	From   string         `json:"from" yaml:"from"`
	To     string         `json:"to" yaml:"to"`
	Copied map[string]int `json:"copied" yaml:"copied"`
}

func storeMigrateRun(ctx context.Context, opts *storeMigrateOptions) error {
	from, to := opts.From, opts.To
	fromPath, fromSQLite, err := store.SQLiteFile(opts.DataDir, from)
	if err != nil {
		return usageErrorf("--from: %v", err)
	}
	toPath, toSQLite, err := store.SQLiteFile(opts.DataDir, to)
	if err != nil {
		return usageErrorf("--to: %v", err)
	}
	if fromSQLite {
		// Opening a missing file would create an empty store to copy.
		if _, err := os.Stat(fromPath); err != nil {
			return fmt.Errorf("source store %s: %w", fromPath, err)
		}
	}
	if (fromSQLite && toSQLite && fromPath == toPath) || (!fromSQLite && !toSQLite && from == to) {
		return usageErrorf("--from and --to name the same store")
	}
	// A SQLite target this command creates goes again if the copy fails.
	var created bool
	if toSQLite {
		_, err := os.Stat(toPath)
		created = errors.Is(err, os.ErrNotExist)
	}
	src, err := store.Open(opts.DataDir, from)
	if err != nil {
		return fmt.Errorf("source store: %w", err)
	}
	defer src.Close()
	dst, err := store.Open(opts.DataDir, to)
	if err != nil {
		return fmt.Errorf("target store: %w", err)
	}
	stats, err := store.Copy(ctx, src, dst)
	if cerr := dst.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("target store: close: %w", cerr)
	}
	if err != nil {
		if created {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				os.Remove(toPath + suffix)
			}
		}
		if errors.Is(err, store.ErrNotEmpty) {
			return fmt.Errorf("%w; copy into an empty store (a new database or SQLite file)", err)
		}
		return err
	}
	res := storeMigrateResult{From: describeStore(fromSQLite, fromPath, from), To: describeStore(toSQLite, toPath, to), Copied: stats}
	if opts.Output != "table" {
		return printData(opts.IO.Out, opts.Output, res)
	}
	fmt.Fprintf(opts.IO.Out, "copied %s to %s\n", res.From, res.To)
	t := newTable(opts.IO.Out, "TABLE", "ROWS")
	for _, name := range store.CopiedTables() {
		t.row(name, strconv.Itoa(stats[name]))
	}
	return t.flush()
}

// describeStore names a store for people: its SQLite file, or its URL
// without the password.
func describeStore(isSQLite bool, path, url string) string {
	if isSQLite {
		return "sqlite://" + path
	}
	return store.RedactURL(url)
}
