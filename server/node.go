package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/sched"
	"github.com/mdctl/mdctl/store"
)

// DefaultNodeName is serve's --node default: the host name.
func DefaultNodeName() string {
	h, err := os.Hostname()
	if err != nil || store.CheckNodeName(h) != nil {
		return "localhost"
	}
	return h
}

// HeartbeatInterval is how often a serve reports (neutron's report_interval,
// 30 s beside agent_down_time's 75): a third of agent_down_time, between
// 200 ms and 30 s, so two missed beats do not make a node dead.
func HeartbeatInterval(downTime time.Duration) time.Duration {
	return min(max(downTime/3, 200*time.Millisecond), 30*time.Second)
}

// nodeAgent registers this serve as a node and keeps its heartbeat.
type nodeAgent struct {
	st   store.Store
	live *store.Live
	log  *slog.Logger

	// local: every node of the store runs on this machine (SQLite), so
	// a node registered from this data dir under another name is this
	// serve's past (the data dir's lock is ours): see forgetPast.
	local bool

	mu   sync.Mutex
	node store.Node
}

// forgetPast deletes the nodes an earlier serve of this data dir
// registered under another name (the host name changed, say a container
// restarted), so that what they host is rebound at once rather than after
// agent_down_time: one machine alone serves exactly as before nodes were.
func (a *nodeAgent) forgetPast(ctx context.Context) error {
	if !a.local {
		return nil
	}
	nodes, err := a.st.ListNodes(ctx)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if n.Name != a.node.Name && n.AdminSocket == a.node.AdminSocket {
			a.log.Info("forgetting this data dir's node under its former name", "former", n.Name)
			if err := a.st.DeleteNode(ctx, n.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
	}
	return nil
}

// registerNode registers serve o as its node (o.Node, default the host
// name), forgetting this data dir's former names on SQLite.
func registerNode(ctx context.Context, o Options, live *store.Live) (*nodeAgent, error) {
	if o.Node == "" {
		o.Node = DefaultNodeName()
	}
	if err := store.CheckNodeName(o.Node); err != nil {
		return nil, fmt.Errorf("serve: --node: %w", err)
	}
	adminSocket, err := filepath.Abs(filepath.Join(o.DataDir, admin.SocketName))
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	a := &nodeAgent{st: o.Store, live: live, log: o.Logger.With("component", "node", "node", o.Node),
		node: store.Node{Name: o.Node, Components: o.Components, AdminSocket: adminSocket,
			Version: o.Version, StartedAt: time.Now()}}
	_, a.local = o.Store.(*store.SQLite)
	if err := a.register(ctx); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	if err := a.forgetPast(ctx); err != nil {
		return nil, fmt.Errorf("serve: node %s: %w", o.Node, err)
	}
	return a, nil
}

// adminURL is the URL other hosts reach a TCP admin endpoint at: its bound
// address, with the host name for an unspecified host (0.0.0.0, [::]).
func adminURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

// register writes the node's row. A serve sharing the name with another
// live serve (one host, several component sets, each its own data dir)
// adds its components to that one's: they are one node.
func (a *nodeAgent) register(ctx context.Context) error {
	a.mu.Lock()
	n := a.node
	a.mu.Unlock()
	cur, err := a.st.GetNode(ctx, n.Name)
	switch {
	case err == nil && cur.AdminSocket != n.AdminSocket && cur.Alive(time.Now(), sched.DownTime(ctx, a.live)):
		for _, c := range cur.Components {
			if !slices.Contains(n.Components, c) {
				n.Components = append(n.Components, c)
			}
		}
		if n.AdminURL == "" {
			n.AdminURL = cur.AdminURL
		}
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("register node %s: %w", n.Name, err)
	}
	if err := a.st.RegisterNode(ctx, n); err != nil {
		return err
	}
	return nil
}

// setAdminURL records the TCP admin endpoint once it listens.
func (a *nodeAgent) setAdminURL(ctx context.Context, addr string) {
	a.mu.Lock()
	a.node.AdminURL = adminURL(addr)
	a.mu.Unlock()
	if err := a.register(ctx); err != nil {
		a.log.Warn("could not record the admin endpoint's address", "err", err)
	}
}

// Run heartbeats until ctx ends. A failed beat is logged (once until it
// works again) and never stops serve: guests are served regardless. A
// node removed meanwhile (mdctl node delete) registers again.
func (a *nodeAgent) Run(ctx context.Context) error {
	errs := errorLog{log: a.log, what: "heartbeat"}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(HeartbeatInterval(sched.DownTime(ctx, a.live))):
		}
		err := a.st.Heartbeat(ctx, a.node.Name)
		if errors.Is(err, store.ErrNotFound) {
			err = a.register(ctx)
		}
		if ctx.Err() != nil {
			return nil
		}
		errs.report(err, "heartbeat", "node", a.node.Name)
	}
}
