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
	"github.com/mdctl/mdctl/store"
)

type statusOptions struct {
	IO      *iostreams
	Store   func(context.Context) (store.Store, error)
	DataDir string
	Server  string // an admin address instead of <data-dir>/admin.sock
	Output  string
	// TokenFile is --admin-token-file: the token of TCP admin endpoints.
	TokenFile string
}

func newCmdStatus(f *factory, runF func(context.Context, *statusOptions) error) *cobra.Command {
	opts := &statusOptions{IO: f.IO, Store: f.OpenStore}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show whether serve's components are up, where, and what they counted",
		Long: `Status asks a running mdctl serve (its admin socket in --data-dir, or the
admin address given with --server) for each component: up or down, its
address, and its request counts; then how many of the DHCP servers its data
plane planned run (what mdctl lab up waits for). It fails when no serve
answers.

When the store has several nodes (serves sharing it, mdctl node list), or
its one node is not this data dir's serve, and no --server is given, it asks every live node's admin endpoint as the store
records it (its socket when it is this machine's, else its --admin-listen
URL, whose token comes from --admin-token-file or $MDCTL_ADMIN_TOKEN) and
shows each node's components. A node that does not answer is shown as
unreachable, with why, and status exits 1; a dead node (heartbeat older
than agent_down_time) is shown as dead and not asked. -o json then prints
{"nodes": [{"node", "alive", "admin", "error", "status"}]}.`,
		Example: `  mdctl status
  mdctl status -o json
  mdctl status --server http://10.0.0.5:8776
  mdctl --db postgres://mdctl@db/mdctl status --admin-token-file /etc/mdctl/admin.token`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.DataDir = f.DataDir
			return checkOutputAndRun(cmd, opts.Output, opts, runF, statusRun)
		},
	}
	addOutputFlag(cmd, &opts.Output)
	addAdminTokenFileFlag(cmd, &opts.TokenFile)
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
	token, err := adminToken(opts.TokenFile)
	if err != nil {
		return err
	}
	if opts.Server == "" {
		nodes, down := storeNodes(ctx, opts.Store, opts.IO.ErrOut)
		if acrossNodes(nodes, opts.DataDir) {
			return nodesStatusRun(ctx, opts, reachNodes(ctx, nodes, down, token))
		}
	}
	addr := adminAddr(opts.DataDir, opts.Server)
	c, err := admin.NewClientToken(addr, token)
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
		t.row(c.Name, componentState(opts.IO, c), c.Address, formatCounts(c.Counts))
	}
	if err := t.flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(opts.IO.Out, "\nserve pid %d, up since %s; %d event subscribers, %d events dropped\n",
		st.PID, st.Started.Local().Format(time.DateTime), st.Subscribers, st.Dropped)
	if err == nil && st.DHCPServers != nil {
		_, err = fmt.Fprintln(opts.IO.Out, dhcpLine(st))
	}
	if err == nil && st.StoreError != "" {
		_, err = fmt.Fprintln(opts.IO.Out, opts.IO.paint("31", "store: "+st.StoreError))
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

func componentState(io *iostreams, c admin.Component) string {
	if c.Up {
		return io.paint("32", "up")
	}
	state := io.paint("31", "down")
	if c.Error != "" {
		state += ": " + c.Error
	}
	return state
}

// nodeStatus is one node in status's JSON across nodes.
type nodeStatus struct {
	Node  string `json:"node" yaml:"node"`
	Alive bool   `json:"alive" yaml:"alive"`
	// Admin is the endpoint asked ("" when none is reachable from here).
	Admin  string        `json:"admin,omitempty" yaml:"admin,omitempty"`
	Error  string        `json:"error,omitempty" yaml:"error,omitempty"`
	Status *admin.Status `json:"status,omitempty" yaml:"status,omitempty"`
}

func nodeStatuses(eps []nodeEndpoint) []nodeStatus {
	out := make([]nodeStatus, 0, len(eps))
	for _, e := range eps {
		ns := nodeStatus{Node: e.Node.Name, Alive: e.Alive}
		if e.Client != nil {
			ns.Admin = e.Client.Addr()
		}
		if e.Err != nil {
			ns.Error = e.Err.Error()
		} else {
			st := e.Status
			ns.Status = &st
		}
		out = append(out, ns)
	}
	return out
}

// nodesStatusRun prints every node's components; it fails when a live
// node does not answer.
func nodesStatusRun(_ context.Context, opts *statusOptions, eps []nodeEndpoint) error {
	var err error
	if opts.Output != "table" {
		err = printData(opts.IO.Out, opts.Output, map[string][]nodeStatus{"nodes": nodeStatuses(eps)})
	} else {
		err = writeNodesStatus(opts.IO, eps, time.Local)
	}
	if err != nil {
		return err
	}
	var unreachable []string
	for _, e := range eps {
		if e.Alive && e.Err != nil {
			unreachable = append(unreachable, e.Node.Name)
		}
	}
	if len(unreachable) > 0 {
		return &exitError{code: exitFail, said: opts.Output == "table",
			err: fmt.Errorf("node %s: admin endpoint unreachable", strings.Join(unreachable, ", "))}
	}
	return nil
}

// writeNodesStatus is status's table across nodes: a row per component
// of each node, a row saying why for a node not asked or not answering,
// and a line per node about its serve (times in loc).
func writeNodesStatus(io *iostreams, eps []nodeEndpoint, loc *time.Location) error {
	t := newTable(io.Out, "NODE", "COMPONENT", "STATE", "ADDRESS", "COUNTS")
	for _, e := range eps {
		switch {
		case !e.Alive:
			t.row(e.Node.Name, "", io.paint("31", e.Err.Error()), "", "")
		case e.Err != nil:
			t.row(e.Node.Name, "", io.paint("31", "unreachable: "+e.Err.Error()), "", "")
		case len(e.Status.Components) == 0:
			t.row(e.Node.Name, "", "no components", "", "")
		}
		if e.Err != nil {
			continue
		}
		for _, c := range e.Status.Components {
			t.row(e.Node.Name, c.Name, componentState(io, c), c.Address, formatCounts(c.Counts))
		}
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(io.Out)
	for _, e := range eps {
		var err error
		switch {
		case e.Err != nil && !e.Alive:
			_, err = fmt.Fprintf(io.Out, "node %s: not asked; mdctl node delete %s if it is gone for good\n", e.Node.Name, e.Node.Name)
		case e.Err != nil:
			_, err = fmt.Fprintf(io.Out, "node %s: alive in the store (heartbeat %s), but its admin endpoint (%s) does not answer from here\n",
				e.Node.Name, e.Node.HeartbeatAt.In(loc).Format(time.DateTime), orText(adminOf(e.Node), "none recorded"))
		default:
			st := e.Status
			_, err = fmt.Fprintf(io.Out, "node %s: serve pid %d on %s, up since %s; %d event subscribers, %d events dropped\n",
				e.Node.Name, st.PID, e.Client.Addr(), st.Started.In(loc).Format(time.DateTime), st.Subscribers, st.Dropped)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// adminOf is a node's recorded admin endpoints, as one string.
func adminOf(n store.Node) string {
	var a []string
	for _, s := range []string{n.AdminSocket, n.AdminURL} {
		if s != "" {
			a = append(a, s)
		}
	}
	return strings.Join(a, ", ")
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
