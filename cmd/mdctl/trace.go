package main

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/diag"
	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
)

// trace's wiring: diag walks the hops; this file only parses flags and prints.

type traceOptions struct {
	IO        *iostreams
	Store     func(context.Context) (store.Store, error)
	DataDir   string
	StoreName string // the store's file or redacted URL, for hints
	Instance  string
	JSON      bool
	Fix       bool
	Timeout   time.Duration
	Overrides map[string]string
	Dataplane dataplane.Options
	// TokenFile is --admin-token-file: the token of the hosting node's
	// TCP admin endpoint.
	TokenFile string
}

func newCmdTrace(f *factory, runF func(context.Context, *traceOptions) error) *cobra.Command {
	opts := &traceOptions{IO: f.IO, Store: f.OpenStore}
	var sets []string
	cmd := &cobra.Command{
		Use:   "trace INSTANCE",
		Short: "Walk a guest's metadata request hop by hop and name the hop that fails",
		Long: `Trace checks, in order, the hops a guest's request to 169.254.169.254 crosses:
route, namespace, iptables, proxy, socket, store, agent, api, metadata. Each hop says
what it saw, how long it took and, when it fails, the command or setting that
fixes it. Hops after the first failure are still checked where they can be.
Every probe carries its own request id (X-Request-ID trace-…), which serve's
log lines carry: a hint that sends you to the log gives the command, for the
systemd unit mdctl ships: journalctl -u mdctl -g <id>.
The store hop reads the store and asks the running serve (its /healthz)
whether it can too; a store that cannot be read at all (its file removed or
not a database, PostgreSQL down) fails that hop, and the hops that need the
instance's record are NOT CHECKED.
It reads the guest's route from its lab namespace when there is one. A real
VM's route cannot be read from outside: the route hop then gathers what
stands in for it (the port's tap on its bridge, the DHCP lease mdctl gave its
MAC and the option 121 route in it, its neighbour entry on the router's or
DHCP port's interface, the requests serve last saw from it, cloud-init's
lines on a lab VM's console). Evidence of a fault fails the hop; otherwise it
is NOT CHECKED, never passed.

With a lab guest and a running serve it also sends the guest's own request end
to end. On a guest with IPv6 that includes what cloud-init >= 23.1 asks first,
http://[fe80::a9fe:a9fe%25eth0]/ with the zone in Host: an answer other than
the one IPv4 gets fails the proxy hop, as cloud-init would take it.

Read-only unless --fix: then it repairs what mdctl owns (namespaces, rules,
addresses, the socket's mode, lab guests) after saying what it will do.
Several nodes on one store: the report names the node hosting the
instance's router (router mode) or DHCP network (DHCP mode), as JSON's
"host", and each hop the node it was checked on ("node"). When that is
another node, the namespace, iptables and proxy hops are checked there: trace
asks its admin endpoint (POST /trace/kernel; a TCP one needs the token of
--admin-token-file or $MDCTL_ADMIN_TOKEN). A hosting node that cannot be
asked leaves those hops NOT CHECKED, saying why, and trace exits 1.

Exit 0 when every hop passes, 1 when one fails, 3 when none fails but a hop
could not be checked (NOT CHECKED).`,
		Example: `  mdctl trace vm1
  mdctl trace vm1 --json | jq .failed_hop
  mdctl trace vm1 --fix
  mdctl trace vm1 --set metadata_proxy_shared_secret=node-b-secret   # sign as another node would`,
		Args: exactArgs(1, "one INSTANCE (name or id)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Instance, opts.DataDir = args[0], f.DataDir
			var err error
			if _, opts.StoreName, err = store.Exists(f.DataDir, f.DB); err != nil {
				opts.StoreName = ""
			}
			if opts.Overrides, err = parseSets(sets); err != nil {
				return err
			}
			if opts.Dataplane, err = f.Dataplane(); err != nil {
				return err
			}
			return runOrTest(cmd, opts, runF, traceRun)
		},
	}
	cmd.ValidArgsFunction = completeNames(f, instanceKind().names)
	fl := cmd.Flags()
	fl.BoolVar(&opts.JSON, "json", false, "print one JSON object (CLI.md's shape) instead of text")
	fl.BoolVar(&opts.Fix, "fix", false, "repair what mdctl owns, then trace again")
	fl.DurationVar(&opts.Timeout, "timeout", diag.DefaultTimeout, "time limit of each check")
	fl.StringArrayVar(&sets, "set", nil, "trace with a setting overridden, KEY=VALUE (as serve --set)")
	addAdminTokenFileFlag(cmd, &opts.TokenFile)
	return cmd
}

func traceRun(ctx context.Context, opts *traceOptions) error {
	token, err := adminToken(opts.TokenFile)
	if err != nil {
		return err
	}
	serve := runningServe(ctx, opts.DataDir, opts.Dataplane)
	overrides, notes := withServeOverrides(serve.overrides, opts.Overrides)
	o := diag.Options{
		StoreName: opts.StoreName, DataDir: opts.DataDir, Overrides: overrides,
		Dataplane: serve.dp, Timeout: opts.Timeout, APIURLs: serve.apiURLs,
		Node: serve.node, AdminToken: token,
	}
	// A store that cannot be opened is the store hop's failure, in a
	// report like any other: serve answers guests 5xx meanwhile, and the
	// trace says which part is down.
	// Without a serve no guest is failed by it: the error alone says it.
	st, openErr := opts.Store(ctx)
	if openErr != nil && !serve.up {
		return openErr
	}
	if openErr == nil {
		defer st.Close()
		o.Store = st
	}
	trace := func() diag.Report {
		var r diag.Report
		if openErr != nil {
			r = diag.StoreUnreadable(ctx, o, opts.Instance, openErr)
		} else {
			r = diag.Trace(ctx, o, opts.Instance)
		}
		r.ServeOverrides = notes
		if !serve.up {
			r.NoServe = "no mdctl serve runs on " + opts.DataDir + " (its admin socket does not answer): start it with mdctl serve --data-dir " + opts.DataDir
		}
		return r
	}
	r := trace()
	if opts.Fix && r.FailedHop != "" && r.Error == "" && o.Store != nil {
		if err := printTrace(opts, r); err != nil {
			return err
		}
		if err := diag.Fix(ctx, o, r, opts.IO.ErrOut); err != nil {
			return fmt.Errorf("trace --fix: %w", err)
		}
		// serve's loop re-opens a recreated namespace's listener within a
		// tick or two, so the verdict after a fix gets a few short tries.
		for try := 0; try < 8; try++ {
			if r = trace(); r.OK {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	if r.Error != "" && !opts.JSON {
		// The trace could not start: there is no report, only the error.
		return traceFailure(r)
	}
	if err := printTrace(opts, r); err != nil {
		return err
	}
	// The text report says the failure already; only --json, read by a
	// program, gets the one-line summary on stderr too.
	switch {
	case r.Error == "" && r.FailedHop == "" && len(r.NotChecked) > 0:
		return &exitError{code: exitUnverified, said: !opts.JSON, err: fmt.Errorf("trace %s: no hop failed, but %s could not be checked from here", r.Instance, strings.Join(r.NotChecked, ", "))}
	case !r.OK:
		return &exitError{code: exitFail, said: !opts.JSON && r.Error == "", err: traceFailure(r)}
	}
	return nil
}

func printTrace(opts *traceOptions, r diag.Report) error {
	if opts.JSON {
		return r.WriteJSON(opts.IO.Out)
	}
	return r.WriteText(opts.IO.Out, opts.IO.Color)
}

// traceFailure is the one-line summary on stderr; the report itself says more.
func traceFailure(r diag.Report) error {
	if r.Error != "" && r.Hint != "" {
		return fmt.Errorf("trace %s: %s; %s", r.Instance, r.Error, r.Hint)
	}
	if r.Error != "" {
		return fmt.Errorf("trace %s: %s", r.Instance, r.Error)
	}
	return fmt.Errorf("trace %s: hop %q fails: %s", r.Instance, r.FailedHop, r.Hop(r.FailedHop).Detail)
}

// localServe is what the data dir's serve tells trace.
type localServe struct {
	// apiURLs is where its API listens (its agent uses that address
	// whatever nova_metadata_port says, so the trace must too; none lets
	// the settings decide).
	apiURLs []string
	// dp names the namespaces its data plane uses (as given when no serve
	// answers or it runs no data plane).
	dp        dataplane.Options
	overrides map[string]string // its --set values
	node      string            // the node it registered as
	up        bool              // a serve answered at all
}

// runningServe asks the data dir's serve.
func runningServe(ctx context.Context, dataDir string, dp dataplane.Options) localServe {
	out := localServe{dp: dp}
	c, err := admin.NewClient(filepath.Join(dataDir, admin.SocketName))
	if err != nil {
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		return out
	}
	if n := st.Dataplane; n != nil {
		out.dp.SegmentNamespace, out.dp.GuestPrefix, out.dp.HostNamespace = n.SegmentNamespace, n.GuestPrefix, n.HostNamespace
	}
	for _, comp := range st.Components {
		if comp.Name == server.ComponentAPI && comp.Up && comp.Address != "" {
			out.apiURLs = []string{"http://" + comp.Address}
		}
	}
	out.overrides, out.node, out.up = st.Overrides, st.Node, true
	return out
}

// withServeOverrides is the settings trace checks: the running serve's
// --set values under trace's own (which win). A secret serve shows only
// masked cannot be used: the stored value is checked instead, and the
// notes say so, with every other override serve runs with.
func withServeOverrides(serve, own map[string]string) (map[string]string, []string) {
	merged := map[string]string{}
	var notes []string
	for _, k := range slices.Sorted(maps.Keys(serve)) {
		v := serve[k]
		switch _, mine := own[k]; {
		case mine:
			notes = append(notes, fmt.Sprintf("serve runs with --set %s=%s; trace checks its own --set instead", k, v))
		case v == admin.Masked:
			notes = append(notes, fmt.Sprintf("serve runs with --set %s (a secret, not shown): trace checks the stored value; pass the same --set to trace to check serve's", k))
		default:
			merged[k] = v
			notes = append(notes, fmt.Sprintf("serve runs with --set %s=%s, and so does this trace", k, v))
		}
	}
	maps.Copy(merged, own)
	return merged, notes
}
