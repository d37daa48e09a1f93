package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/store"
	"github.com/mdctl/mdctl/store/topology"
)

// Exit codes, as CLI.md promises scripts.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
	// exitUnverified: trace found no fault but could not check every hop
	// (a real VM's route).
	exitUnverified = 3
)

// exitError carries an exit code other than exitFail.
type exitError struct {
	code int
	err  error
	// said: the command's own output already told the person; stderr
	// stays quiet rather than repeat it.
	said bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf is a bad-usage error: exit code 2.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func newRootCmd(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mdctl",
		Short: "An OpenStack-compatible instance-metadata service in one binary",
		Long: `mdctl serves nova's metadata API, neutron's metadata agent and proxies, and
the operator tools to seed, switch and trace them.`,
		Example: `  # seed the store from a file and run everything
  mdctl apply -f topology.yaml
  mdctl serve

  # look at what is there
  mdctl instance list
  mdctl config list

  # try it on this machine: simulated guests, then follow one's request
  mdctl lab up
  mdctl trace vm1
  mdctl tui`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       f.Version,
	}
	cmd.CompletionOptions.DisableDefaultCmd = true // ours is newCmdCompletion
	cmd.SetIn(f.IO.In)
	cmd.SetOut(f.IO.Out)
	cmd.SetErr(f.IO.ErrOut)
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErrorf("%v (see %s --help)", err, c.CommandPath())
	})
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.DataDir, "data-dir", f.DataDir, "directory of the SQLite store, agent socket and admin socket (env MDCTL_DATA_DIR)")
	pf.StringVar(&f.Profile, "profile", f.Profile, "name of this mdctl's namespaces and lab guests, for several on one host (env MDCTL_PROFILE; default from --data-dir)")
	pf.StringVar(&f.LogLevel, "log-level", "", "least level of logs on stderr: debug, info, warn or error (default: info for serve, warn for the rest)")
	pf.StringVar(&f.LogFormat, "log-format", "text", "logs as text or json (slog's handlers)")
	_ = cmd.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions([]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions(logFormats, cobra.ShellCompDirectiveNoFileComp))
	cmd.PersistentPreRunE = func(*cobra.Command, []string) error { return f.checkLogFlags() }
	pf.StringVar(&f.DB, "db", f.DB, "another store: sqlite:///path/mdctl.db, or postgres://user:pass@host/db shared by several hosts (overrides the SQLite file in --data-dir)")

	cmd.AddCommand(
		newCmdApply(f, nil),
		newCmdDiff(f, nil),
		newCmdInstance(f),
		newCmdNetwork(f),
		newCmdRouter(f),
		newCmdNode(f),
		newCmdConfig(f),
		newCmdServe(f, nil),
		newCmdLab(f),
		newCmdStatus(f, nil),
		newCmdTUI(f, nil),
		newCmdCleanup(f, nil),
		newCmdTrace(f, nil),
		newCmdConfigDrive(f),
		newCmdStore(f),
		newCmdVersion(f),
		newCmdCompletion(f),
	)
	refuseUnknownSubcommands(cmd)
	return cmd
}

// refuseUnknownSubcommands makes every command group (mdctl itself,
// instance, config, lab…) answer a subcommand it does not have with a usage
// error (exit 2) and the nearest names, instead of its help and exit 0;
// the group alone still prints its help.
func refuseUnknownSubcommands(c *cobra.Command) {
	if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
		c.Args = cobra.ArbitraryArgs
		c.SuggestionsMinimumDistance = 2
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "; did you mean " + strings.Join(s, " or ") + "?"
			}
			return usageErrorf("%s (see %s --help)", msg, cmd.CommandPath())
		}
	}
	for _, sub := range c.Commands() {
		refuseUnknownSubcommands(sub)
	}
}

// run executes mdctl with args and returns the exit code; errors are
// printed as "mdctl: …" lines on stderr.
func run(ctx context.Context, args []string, io *iostreams, getenv func(string) string) int {
	f := &factory{IO: io, Getenv: getenv, DataDir: defaultDataDir(getenv), Profile: getenv("MDCTL_PROFILE"), LogFormat: "text", Version: version()}
	cmd := newRootCmd(f)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	if ee := (*exitError)(nil); !errors.As(err, &ee) || !ee.said {
		printError(io.ErrOut, err)
	}
	return exitCode(err)
}

// printError writes err as "mdctl: …" lines; a blank line stays blank.
func printError(w io.Writer, err error) {
	for _, line := range strings.Split(strings.TrimRight(err.Error(), "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			fmt.Fprintln(w)
			continue
		}
		fmt.Fprintf(w, "mdctl: %s\n", line)
	}
}

func exitCode(err error) int {
	var ee *exitError
	var te topology.Errors
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &te):
		return exitUsage // the file or flags describe something impossible
	case strings.HasPrefix(err.Error(), "unknown command"), strings.HasPrefix(err.Error(), "unknown flag"),
		strings.HasPrefix(err.Error(), "required flag"):
		return exitUsage
	}
	return exitFail
}

// exactArgs is cobra.ExactArgs with a usage exit code and a hint.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("%s takes %s (got %d arguments); see %s --help", cmd.CommandPath(), what, len(args), cmd.CommandPath())
		}
		return nil
	}
}

// notFound turns a store miss into an actionable line.
func notFound(err error, kind, ref string) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s %q not found; list them with mdctl %s list", kind, ref, kind)
	}
	return err
}

// runOrTest ends a command's RunE once its options are parsed and checked:
// a test's runF gets them (to see what the flags made, without effects),
// otherwise the command's own run function does the work.
func runOrTest[O any](cmd *cobra.Command, opts *O, runF, run func(context.Context, *O) error) error {
	if runF != nil {
		return runF(cmd.Context(), opts)
	}
	return run(cmd.Context(), opts)
}

// checkOutputAndRun is runOrTest for a command with -o: an unknown format
// is a usage error (exit 2) before anything runs or touches the store.
func checkOutputAndRun[O any](cmd *cobra.Command, format string, opts *O, runF, run func(context.Context, *O) error) error {
	if err := checkOutput(format); err != nil {
		return err
	}
	return runOrTest(cmd, opts, runF, run)
}
