package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/configdrive"
	"github.com/mdctl/mdctl/store"
)

var configDriveFormats = []string{configdrive.FormatISO9660, configdrive.FormatVFAT}

func newCmdConfigDrive(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "configdrive",
		Aliases: []string{"config-drive"},
		Short:   "Build and inspect config drives (iso9660 or vfat images labelled config-2)",
		Long: `A config drive carries an instance's metadata for guests that cannot reach
169.254.169.254: nova's layout (openstack/<version>/..., ec2/...), labelled
config-2, built from the same metadata the API serves. mdctl serve keeps one
per instance that needs it in <data-dir>/config-drives; these commands build
one by hand and check any image as a guest would read it.`,
		Example: `  mdctl configdrive build vm1 -o disk.config
  mdctl configdrive inspect disk.config`,
	}
	cmd.AddCommand(newCmdConfigDriveBuild(f, nil), newCmdConfigDriveInspect(f, nil))
	return cmd
}

type configDriveBuildOptions struct {
	IO       *iostreams
	Store    func(context.Context) (store.Store, error)
	Ref      string // instance name or id
	File     string
	Output   string // table|json|yaml: how the result is printed
	Format   string // "" means config_drive_format in force
	Now      func() time.Time
	ReadFile func(string) ([]byte, error) // reads vendordata_jsonfile_path
	Logger   *slog.Logger                 // default: warnings as text on IO.ErrOut
}

func newCmdConfigDriveBuild(f *factory, runF func(context.Context, *configDriveBuildOptions) error) *cobra.Command {
	opts := &configDriveBuildOptions{IO: f.IO, Store: f.OpenStore, Now: time.Now, ReadFile: os.ReadFile}
	cmd := &cobra.Command{
		Use:   "build INSTANCE FILE [--format iso9660|vfat] [-o table|json|yaml]",
		Short: "Write an instance's config drive to a file",
		Long: `Build writes the config drive nova would attach to INSTANCE (a name or id):
its metadata, user data, vendor data, network data and admin password (which
only the drive carries, never the API). The file is written atomically.
The format defaults to the config_drive_format setting in force. The file
is a path argument or --file/-f; -o is the output format, as everywhere
(-o FILE, its meaning before, still works for one release, with a warning).`,
		Example: `  mdctl configdrive build vm1 disk.config
  mdctl configdrive build vm1 -f vm1.img --format vfat
  mdctl configdrive build 8b0a3fd4-2c0e-4d8b-9a4b-0d0c6a1f3e21 /tmp/cd.iso -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageErrorf("%s takes one INSTANCE (name or id) and the FILE to write (got %d arguments); see %s --help", cmd.CommandPath(), len(args), cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref, opts.Logger = args[0], f.Logger(f.IO.ErrOut, slog.LevelWarn)
			if err := opts.pickFile(args[1:], opts.IO); err != nil {
				return err
			}
			if opts.Format != "" && !slices.Contains(configDriveFormats, opts.Format) {
				return usageErrorf("--format %s: use %s", opts.Format, strings.Join(configDriveFormats, " or "))
			}
			return checkOutputAndRun(cmd, opts.Output, opts, runF, configDriveBuildRun)
		},
	}
	cmd.ValidArgsFunction = func(c *cobra.Command, args []string, s string) ([]string, cobra.ShellCompDirective) {
		if len(args) == 1 {
			return nil, cobra.ShellCompDirectiveDefault // the FILE
		}
		return completeNames(f, instanceKind().names)(c, args, s)
	}
	cmd.Flags().StringVarP(&opts.File, "file", "f", "", "image file to write (or give it as the second argument)")
	_ = cmd.MarkFlagFilename("file")
	addOutputFlag(cmd, &opts.Output)
	cmd.Flags().StringVar(&opts.Format, "format", "", "iso9660 or vfat (default: the config_drive_format setting)")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions(configDriveFormats, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// pickFile settles which file build writes: the path argument or --file,
// or, for one release, -o FILE as build took it before -o meant the output
// format everywhere (any -o value that is not a format, given no file).
func (o *configDriveBuildOptions) pickFile(positional []string, io *iostreams) error {
	if len(positional) == 1 {
		if o.File != "" && o.File != positional[0] {
			return usageErrorf("the FILE argument %s and --file %s differ; give one", positional[0], o.File)
		}
		o.File = positional[0]
	}
	if o.File == "" && checkOutput(o.Output) != nil {
		fmt.Fprintf(io.ErrOut, "warning: configdrive build -o FILE is deprecated and goes in the next release; write the FILE as an argument or with -f (-o is the output format)\n")
		o.File, o.Output = o.Output, "table"
	}
	if o.File == "" {
		return usageErrorf("configdrive build needs the FILE to write: mdctl configdrive build INSTANCE FILE (or -f FILE)")
	}
	return nil
}

// builtDrive is what build -o json|yaml prints.
type builtDrive struct {
	File       string `json:"file"`
	Format     string `json:"format"`
	Label      string `json:"label"`
	Files      int    `json:"files"`
	Bytes      int64  `json:"bytes"`
	Instance   string `json:"instance"`
	InstanceID string `json:"instance_id"`
}

func configDriveBuildRun(ctx context.Context, opts *configDriveBuildOptions) error {
	return withStoreFn(ctx, opts.Store, func(st store.Store) error {
		view, snap, err := instanceWithSettings(ctx, st, opts.Ref)
		if err != nil {
			return err
		}
		format := opts.Format
		if format == "" {
			format = snap.Config.ConfigDriveFormat
		}
		log := opts.Logger
		if log == nil {
			log = slog.New(slog.NewTextHandler(opts.IO.ErrOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}
		files, err := server.WriteConfigDrive(ctx, view, snap.Config, format, opts.File, opts.ReadFile, opts.Now(), log)
		if err != nil {
			return err
		}
		fi, err := os.Stat(opts.File)
		if err != nil {
			return err
		}
		b := builtDrive{File: opts.File, Format: format, Label: configdrive.Label, Files: files, Bytes: fi.Size(),
			Instance: view.Instance.Name, InstanceID: view.Instance.ID}
		if opts.Output == "json" || opts.Output == "yaml" {
			err = printData(opts.IO.Out, opts.Output, b)
		} else {
			_, err = fmt.Fprintf(opts.IO.Out, "wrote %s: %s, label %s, %d files, %d bytes, instance %s (%s)\n",
				b.File, b.Format, b.Label, b.Files, b.Bytes, b.Instance, b.InstanceID)
		}
		if err != nil {
			return err
		}
		if !server.NeedsConfigDrive(view.Instance, snap.Config) {
			fmt.Fprintf(opts.IO.ErrOut, "note: %s has config_drive off and force_config_drive is false, so serve keeps no drive for it\n", view.Instance.Name)
		}
		return nil
	})
}

// instanceWithSettings reads an instance's view and the settings in force,
// as serve would see them, for commands that build what nova would give it.
func instanceWithSettings(ctx context.Context, st store.Store, ref string) (store.InstanceView, store.Snapshot, error) {
	view, err := st.InstanceView(ctx, ref)
	if err != nil {
		return view, store.Snapshot{}, notFound(err, "instance", ref)
	}
	snap, err := store.NewLive(st, nil).Snapshot(ctx)
	return view, snap, err
}

type configDriveInspectOptions struct {
	IO     *iostreams
	File   string
	Output string
}

func newCmdConfigDriveInspect(f *factory, runF func(context.Context, *configDriveInspectOptions) error) *cobra.Command {
	opts := &configDriveInspectOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "List a config drive's tree and what a guest would miss on it",
		Long: `Inspect reads an iso9660 or vfat image (any tool's, not only mdctl's) without
mounting it, lists its tree with sizes, its format and label, and checks what
cloud-init needs: the config-2 label, meta_data.json with a uuid in every
version, network_data.json, vendor_data2.json, EC2 metadata, and every file
meta_data.json points at. Exit status 1 when a guest would hit a problem.`,
		Example: `  mdctl configdrive inspect disk.config
  mdctl configdrive inspect /var/lib/mdctl/config-drives/8b0a3fd4-2c0e-4d8b-9a4b-0d0c6a1f3e21.iso -o json`,
		Args: exactArgs(1, "one image FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.File = args[0]
			return checkOutputAndRun(cmd, opts.Output, opts, runF, configDriveInspectRun)
		},
	}
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

func configDriveInspectRun(_ context.Context, opts *configDriveInspectOptions) error {
	r, err := configdrive.Inspect(opts.File)
	if err != nil {
		return err
	}
	if r.Problems == nil {
		r.Problems = []string{} // scripts get [] rather than null
	}
	if opts.Output == "table" {
		err = printDriveReport(opts.IO, r)
	} else {
		err = printData(opts.IO.Out, opts.Output, r)
	}
	if err != nil {
		return err
	}
	if !r.OK() {
		return &exitError{code: exitFail, err: fmt.Errorf("%s: %d problem(s) a guest would hit", opts.File, len(r.Problems))}
	}
	return nil
}

// printDriveReport prints the report for people: a header, the tree, the
// problems.
func printDriveReport(ios *iostreams, r configdrive.Report) error {
	w := ios.Out
	fmt.Fprintf(w, "image:   %s\nformat:  %s\nlabel:   %s\n\n", r.Path, r.Format, r.Label)
	t := newTable(w, "PATH", "SIZE", "SHA256")
	for _, e := range r.Entries {
		if e.Dir {
			t.row(e.Path+"/", "", "")
			continue
		}
		sum := e.SHA256
		if len(sum) > 12 {
			sum = sum[:12]
		}
		t.row(e.Path, strconv.Itoa(e.Size), sum)
	}
	if err := t.flush(); err != nil {
		return err
	}
	printProblems(ios, w, r.Problems)
	return nil
}

func printProblems(ios *iostreams, w io.Writer, problems []string) {
	if len(problems) == 0 {
		fmt.Fprintf(w, "\n%s a guest finds everything it looks for\n", ios.paint("32", "ok:"))
		return
	}
	fmt.Fprintf(w, "\n%s\n", ios.paint("31", fmt.Sprintf("%d problem(s):", len(problems))))
	for _, p := range problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
}
