package diag

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/store"
)

// Several nodes share a store; each builds the namespaces of the routers
// and DHCP networks bound to it. The hops inside such a namespace can only
// be checked on the machine that holds it: a trace started elsewhere asks
// the hosting node's admin endpoint to run them (POST /trace/kernel).

// KernelHops are the hops checked in the namespace of the hosting node.
var KernelHops = []string{HopNamespace, HopIPTables, HopProxy}

// KernelTrace is a node's answer to POST /trace/kernel.
type KernelTrace struct {
	Node string `json:"node"`
	Hops []Hop  `json:"hops"`
}

// TraceKernel runs only instanceRef's KernelHops, on this machine: what a
// node answers another node's trace with. o.Node names this node.
func TraceKernel(ctx context.Context, o Options, instanceRef string) (KernelTrace, error) {
	t, err := resolve(ctx, o, instanceRef)
	if err != nil {
		return KernelTrace{}, err
	}
	o = o.withDefaults(t.cfg)
	kt := KernelTrace{Node: o.Node, Hops: []Hop{}}
	for _, c := range hopChecks {
		if slices.Contains(KernelHops, c.name) {
			h := timed(ctx, c.name, o, t, c.fn)
			h.Node = o.Node
			kt.Hops = append(kt.Hops, h)
		}
	}
	return kt, nil
}

// host is where the traced instance's metadata namespace is built.
type host struct {
	name   string // the hosting node, "" when no node hosts it (or nodes are not in use)
	others []string
	local  bool  // name is this machine's node: check here
	err    error // the hosting node could not be asked
	remote *admin.Client
}

// hostOf finds the node bound to the traced instance's router (router
// mode) or DHCP network (DHCP mode). This node, when among a network's
// several DHCP hosts, is preferred.
func hostOf(ctx context.Context, o Options, t *target) host {
	var hosts []string
	var err error
	what := ""
	switch {
	case t.mode == ModeRouter && t.router != nil:
		what = "router " + t.router.RouterID
		hosts, err = o.Store.RouterHosts(ctx, t.router.RouterID)
	case t.mode == ModeDHCP && t.dhcp != nil:
		what = "network " + t.dhcp.NetworkID
		hosts, err = o.Store.NetworkHosts(ctx, t.dhcp.NetworkID)
	default:
		return host{local: true}
	}
	if err != nil {
		return host{local: true, err: fmt.Errorf("hosts of %s: %w", what, err)}
	}
	if len(hosts) == 0 {
		return host{local: true}
	}
	h := host{name: hosts[0], others: hosts[1:]}
	for i, n := range hosts {
		if o.isLocal(ctx, n) {
			h.name, h.local = n, true
			h.others = slices.Delete(slices.Clone(hosts), i, i+1)
			return h
		}
	}
	n, err := o.Store.GetNode(ctx, h.name)
	if err != nil {
		h.err = fmt.Errorf("node %s hosts %s, but: %w", h.name, what, err)
		return h
	}
	c, _, err := admin.Reach(ctx, n, o.AdminToken)
	if err != nil {
		h.err = fmt.Errorf("node %s hosts %s (last heartbeat %s ago), and its admin endpoint does not answer: %w",
			h.name, what, time.Since(n.HeartbeatAt).Round(time.Second), err)
		return h
	}
	h.remote = c
	return h
}

// isLocal says whether node is this machine's: every node of an SQLite
// store is (it is one machine's file), else the serve of o.DataDir
// registered as it, or (no serve answering) the store records this data
// dir's admin socket as its.
func (o Options) isLocal(ctx context.Context, node string) bool {
	if _, ok := o.Store.(*store.SQLite); ok {
		return true
	}
	if o.Node != "" {
		return node == o.Node
	}
	n, err := o.Store.GetNode(ctx, node)
	if err != nil {
		return false
	}
	sock, err := filepath.Abs(filepath.Join(o.DataDir, admin.SocketName))
	return err == nil && n.AdminSocket == sock
}

// remoteHops runs the kernel hops on the hosting node h, or, when it
// cannot be asked, says why for each.
func remoteHops(ctx context.Context, o Options, t *target, h host) []Hop {
	var kt KernelTrace
	err := h.err
	if err == nil {
		// The whole exchange is bounded: every check's limit (iptables has
		// three), plus a second for the round trip.
		ctx, cancel := context.WithTimeout(ctx, 5*o.Timeout+time.Second)
		defer cancel()
		if err = h.remote.TraceKernel(ctx, t.view.Instance.ID, o.Timeout, &kt); err == nil && len(kt.Hops) != len(KernelHops) {
			err = fmt.Errorf("node %s answered %d hops, want %s", h.name, len(kt.Hops), strings.Join(KernelHops, ", "))
		}
		if err != nil {
			err = fmt.Errorf("node %s hosts it, but its kernel checks did not run: %w", h.name, err)
		}
	}
	if err != nil {
		hint := "mdctl node show " + h.name + "; start or restart mdctl serve there; a TCP admin endpoint needs its token: --admin-token-file"
		if errors.Is(err, admin.ErrNotRunning) {
			hint = "mdctl serve on node " + h.name + " is not answering: start it (systemctl start mdctl there), or mdctl node show " + h.name
		}
		out := make([]Hop, 0, len(KernelHops))
		for _, name := range KernelHops {
			s := skipped(err.Error())
			s.Name, s.Node, s.Hint = name, h.name, hint
			out = append(out, s)
		}
		return out
	}
	for i := range kt.Hops {
		kt.Hops[i].Node = h.name
	}
	return kt.Hops
}
