package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/server/admin"
)

type statusOptions struct {
	IO      *iostreams
	DataDir string
	Server  string // an admin address instead of <data-dir>/admin.sock
	Output  string
}

func newCmdStatus(f *factory, runF func(context.Context, *statusOptions) error) *cobra.Command {
	opts := &statusOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show whether serve's components are up, where, and what they counted",
		Long: `Status asks a running mdctl serve (its admin socket in --data-dir, or the
admin address given with --server) for each component: up or down, its
address, and its request counts; then how many of the DHCP servers its data
plane planned run (what mdctl lab up waits for). It fails when no serve
answers.`,
		Example: `  mdctl status
  mdctl status -o json
  mdctl status --server http://10.0.0.5:8776`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.DataDir = f.DataDir
			return checkOutputAndRun(cmd, opts.Output, opts, runF, statusRun)
		},
	}
	addOutputFlag(cmd, &opts.Output)
	cmd.Flags().StringVar(&opts.Server, "server", "", "admin endpoint to ask: a socket path or http://host:port, whose bearer token comes from $MDCTL_ADMIN_TOKEN (default <data-dir>/admin.sock)")
	return cmd
}

// adminAddr is where serve's admin endpoint is: --server, else the data
// dir's socket.
func adminAddr(dataDir, server string) string {
	if server != "" {
		return server
	}
	return filepath.Join(dataDir, admin.SocketName)
}

// notRunning turns "nobody answers" into the line a person can act on.
func notRunning(err error, addr string) error {
	if errors.Is(err, admin.ErrNotRunning) {
		return fmt.Errorf("no mdctl serve answers on %s; start one with mdctl serve (same --data-dir), or point --server at it", addr)
	}
	return err
}

func statusRun(ctx context.Context, opts *statusOptions) error {
	addr := adminAddr(opts.DataDir, opts.Server)
	c, err := admin.NewClient(addr)
	if err != nil {
		return usageErrorf("--server: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		return notRunning(err, addr)
	}
	if opts.Output != "table" {
		return printData(opts.IO.Out, opts.Output, st)
	}
	t := newTable(opts.IO.Out, "COMPONENT", "STATE", "ADDRESS", "COUNTS")
	for _, c := range st.Components {
		state := opts.IO.paint("32", "up")
		if !c.Up {
			state = opts.IO.paint("31", "down")
			if c.Error != "" {
				state += ": " + c.Error
			}
		}
		t.row(c.Name, state, c.Address, formatCounts(c.Counts))
	}
	if err := t.flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(opts.IO.Out, "\nserve pid %d, up since %s; %d event subscribers, %d events dropped\n",
		st.PID, st.Started.Local().Format(time.DateTime), st.Subscribers, st.Dropped)
	if err == nil && st.DHCPServers != nil {
		_, err = fmt.Fprintln(opts.IO.Out, dhcpLine(st))
	}
	return err
}

// dhcpLine says how many of the DHCP servers serve planned run.
func dhcpLine(st admin.Status) string {
	if st.DHCPPlanned == nil {
		return fmt.Sprintf("DHCP servers: %d running, the data plane's first pass still to come", *st.DHCPServers)
	}
	return fmt.Sprintf("DHCP servers: %d of %d planned running", *st.DHCPServers, *st.DHCPPlanned)
}

func formatCounts(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+strconv.FormatUint(m[k], 10))
	}
	return strings.Join(parts, " ")
}
