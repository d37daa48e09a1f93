package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/store"
)

// settingView is one setting as `config list` and `config get` print it.
type settingView struct {
	Key     string `json:"key" yaml:"key"`
	Value   string `json:"value" yaml:"value"` // in force
	Default string `json:"default" yaml:"default"`
	Source  string `json:"source" yaml:"source"` // default | store
	Secret  bool   `json:"secret" yaml:"secret"`
	Help    string `json:"help" yaml:"help"`
}

const masked = admin.Masked

func newCmdConfig(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "List, read and switch settings (nova/neutron option names)",
		Long: `Settings keep nova's and neutron's option names. A running mdctl serve applies
a change on its next request, without a restart.`,
		Example: `  mdctl config list
  mdctl config get force_metadata
  mdctl config set force_metadata true
  mdctl config set metadata_proxy_shared_secret s3cret
  mdctl config unset force_metadata`,
	}
	cmd.AddCommand(newCmdConfigList(f, nil), newCmdConfigGet(f, nil), newCmdConfigSet(f, nil), newCmdConfigUnset(f, nil))
	return cmd
}

type configOptions struct {
	IO          *iostreams
	Store       func(context.Context) (store.Store, error)
	Key, Value  string
	ShowSecrets bool
	Output      string
	// Wait bounds set's and unset's wait for the nodes to apply the
	// change (configwait.go); TokenFile is --admin-token-file.
	Wait      time.Duration
	TokenFile string
}

// completeKeys offers the known setting names.
func completeKeys(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var keys []string
	for _, d := range store.SettingDefs() {
		keys = append(keys, d.Key+"\t"+d.Help)
	}
	return keys, cobra.ShellCompDirectiveNoFileComp
}

func newCmdConfigList(f *factory, runF func(context.Context, *configOptions) error) *cobra.Command {
	opts := &configOptions{IO: f.IO, Store: f.OpenStore}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List every setting: value in force, default, source and help",
		Example: `  mdctl config list
  mdctl config list --show-secrets -o json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return checkOutputAndRun(cmd, opts.Output, opts, runF, configListRun)
		},
	}
	cmd.Flags().BoolVar(&opts.ShowSecrets, "show-secrets", false, "show secret values instead of "+masked)
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

// shownValue is what mdctl prints of a setting's value (or of a change to
// it): secrets masked, in every output format.
func shownValue(key, value string) string {
	if d, _ := store.LookupSetting(key); d.Secret && value != "" {
		return masked
	}
	return value
}

// settingViews resolves every setting against the stored values.
func settingViews(ctx context.Context, st store.Reader, showSecrets bool) ([]settingView, error) {
	stored, err := st.Settings(ctx)
	if err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	inForce, err := store.Resolve(stored, nil)
	if err != nil {
		return nil, fmt.Errorf("stored settings: %w (fix it with mdctl config set or unset)", err)
	}
	var out []settingView
	for _, d := range store.SettingDefs() {
		v := settingView{Key: d.Key, Value: inForce[d.Key], Default: d.Default, Source: "default", Secret: d.Secret, Help: d.Help}
		if _, ok := stored[d.Key]; ok {
			v.Source = "store"
		}
		if !showSecrets {
			v.Value = shownValue(d.Key, v.Value)
		}
		out = append(out, v)
	}
	return out, nil
}

func configListRun(ctx context.Context, opts *configOptions) error {
	return withStoreFn(ctx, opts.Store, func(st store.Store) error {
		views, err := settingViews(ctx, st, opts.ShowSecrets)
		if err != nil {
			return err
		}
		if opts.Output != "table" {
			return printData(opts.IO.Out, opts.Output, views)
		}
		t := newTable(opts.IO.Out, "KEY", "VALUE", "DEFAULT", "SOURCE", "HELP")
		for _, v := range views {
			t.row(v.Key, v.Value, v.Default, v.Source, v.Help)
		}
		return t.flush()
	})
}

func newCmdConfigGet(f *factory, runF func(context.Context, *configOptions) error) *cobra.Command {
	opts := &configOptions{IO: f.IO, Store: f.OpenStore}
	cmd := &cobra.Command{
		Use:               "get KEY",
		Short:             "Print the value in force of one setting",
		Example:           `  mdctl config get metadata_cache_expiration`,
		Args:              oneSettingKey,
		ValidArgsFunction: completeKeys,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Key = args[0]
			return checkOutputAndRun(cmd, opts.Output, opts, runF, configGetRun)
		},
	}
	cmd.Flags().BoolVar(&opts.ShowSecrets, "show-secrets", false, "show a secret value instead of "+masked)
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

// oneSettingKey is get's and unset's argument: one setting KEY, which must
// be a known one (else exit 2 with the list of known ones).
func oneSettingKey(cmd *cobra.Command, args []string) error {
	if err := exactArgs(1, "one setting KEY")(cmd, args); err != nil {
		return err
	}
	if _, ok := store.LookupSetting(args[0]); !ok {
		_, err := store.NormalizeSetting(args[0], "")
		return &exitError{code: exitUsage, err: err}
	}
	return nil
}

func configGetRun(ctx context.Context, opts *configOptions) error {
	return withStoreFn(ctx, opts.Store, func(st store.Store) error {
		views, err := settingViews(ctx, st, opts.ShowSecrets)
		if err != nil {
			return err
		}
		for _, v := range views {
			if v.Key != opts.Key {
				continue
			}
			if opts.Output != "table" {
				return printData(opts.IO.Out, opts.Output, v)
			}
			_, err := fmt.Fprintln(opts.IO.Out, v.Value)
			return err
		}
		return fmt.Errorf("setting %s vanished", opts.Key)
	})
}

func newCmdConfigSet(f *factory, runF func(context.Context, *configOptions) error) *cobra.Command {
	opts := &configOptions{IO: f.IO, Store: f.OpenStore}
	cmd := &cobra.Command{
		Use:   "set KEY VALUE",
		Short: "Store a setting; a bad value is refused with the allowed ones",
		Long: `Set stores a setting; a running serve applies it within a second. Booleans
take oslo's spellings (true/false, yes/no, on/off, 1/0), hosts an IP
address or a host name (nova_metadata_host a comma-separated list of them:
API replicas in order of preference), ports 1-65535. Flags go before KEY, so a VALUE may
start with '-'.

Every serve sharing the store (mdctl node list) gets the change through the
store's change feed. Set then asks each live node's admin endpoint (its
socket when it is this machine's, else its --admin-listen URL with the token
of --admin-token-file or $MDCTL_ADMIN_TOKEN) until the node has the
change in force, for --wait at most, and says on stderr, a line per node,
where it is in force, where not yet, where a serve's own --set of the key
wins, and which nodes are dead or unreachable. The exit code is the write's.`,
		Example: `  mdctl config set force_metadata true
  mdctl config set enable_isolated_metadata yes
  mdctl config set config_drive_format vfat
  mdctl config set nova_metadata_host 10.0.0.5
  mdctl config set nova_metadata_host 10.0.0.5,10.0.0.6,fd00::5
  mdctl config set metadata_rate_limiting.base_query_rate_limit 50`,
		Args:              exactArgs(2, "a setting KEY and a VALUE"),
		ValidArgsFunction: completeSettingValue,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Key = args[0]
			v, err := store.NormalizeSetting(args[0], args[1])
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			opts.Value = v
			return runOrTest(cmd, opts, runF, configSetRun)
		},
	}
	// "-1" is a VALUE (refused or taken on its merits), not a shorthand flag.
	cmd.Flags().SetInterspersed(false)
	addConfigWaitFlags(cmd, opts)
	return cmd
}

func configSetRun(ctx context.Context, opts *configOptions) error {
	return withStoreFn(ctx, opts.Store, func(st store.Store) error {
		if err := st.SetSetting(ctx, opts.Key, opts.Value); err != nil {
			return fmt.Errorf("set %s: %w", opts.Key, err)
		}
		if _, err := fmt.Fprintf(opts.IO.Out, "%s = %s\n", opts.Key, shownValue(opts.Key, opts.Value)); err != nil {
			return err
		}
		return reportWritten(ctx, opts, st)
	})
}

func newCmdConfigUnset(f *factory, runF func(context.Context, *configOptions) error) *cobra.Command {
	opts := &configOptions{IO: f.IO, Store: f.OpenStore}
	cmd := &cobra.Command{
		Use:   "unset KEY",
		Short: "Remove a stored setting so its default applies again",
		Long: `Unset removes a stored setting; like set, it then waits (--wait) for every
live node sharing the store to have the change in force and says on stderr
where it is.`,
		Example:           `  mdctl config unset force_metadata`,
		Args:              oneSettingKey,
		ValidArgsFunction: completeKeys,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Key = args[0]
			return runOrTest(cmd, opts, runF, configUnsetRun)
		},
	}
	addConfigWaitFlags(cmd, opts)
	return cmd
}

func configUnsetRun(ctx context.Context, opts *configOptions) error {
	return withStoreFn(ctx, opts.Store, func(st store.Store) error {
		if err := st.UnsetSetting(ctx, opts.Key); err != nil {
			return fmt.Errorf("unset %s: %w", opts.Key, err)
		}
		d, _ := store.LookupSetting(opts.Key)
		if _, err := fmt.Fprintf(opts.IO.Out, "%s unset; default %q applies\n", opts.Key, d.Default); err != nil {
			return err
		}
		return reportWritten(ctx, opts, st)
	})
}

// reportWritten says on stderr which nodes have the write just made in
// force. The write stands whatever they say: a failure to ask is a
// warning, not the command's error.
func reportWritten(ctx context.Context, opts *configOptions, st store.Store) error {
	gen, err := st.Generation(ctx)
	if err == nil {
		err = reportInForce(ctx, opts, st, gen, opts.IO.ErrOut)
	}
	if err != nil {
		_, err = fmt.Fprintf(opts.IO.ErrOut, "mdctl: warning: stored, but could not ask the nodes whether it is in force: %v\n", err)
	}
	return err
}
