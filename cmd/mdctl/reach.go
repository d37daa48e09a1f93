package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/store"
)

// Several serves on one store are nodes, each with its own admin
// endpoint; status, tui, trace and config set find them through the store
// (store.Node's admin socket and URL) and ask each one.

// addAdminTokenFileFlag adds --admin-token-file: the bearer token for the
// TCP admin endpoints (--admin-listen) of other nodes.
func addAdminTokenFileFlag(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVar(path, "admin-token-file", "", "file holding the bearer token of other nodes' TCP admin endpoints (serve --admin-listen; default $"+admin.TokenEnv+")")
}

// adminToken reads --admin-token-file; "" (no flag) lets the client take
// $MDCTL_ADMIN_TOKEN.
func adminToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	tok, err := admin.LoadToken(path, false)
	if err != nil {
		return "", usageErrorf("--admin-token-file: %v", err)
	}
	return tok, nil
}

// reachTimeout bounds the asking of one node.
const reachTimeout = 3 * time.Second

// nodeEndpoint is one node of the store as this machine reaches it.
type nodeEndpoint struct {
	Node  store.Node
	Alive bool
	// Client is the address to ask (nil when the node has none reachable
	// from here); Status its answer when Err is nil.
	Client *admin.Client
	Status admin.Status
	Err    error
}

// storeNodes lists the store's nodes, nil when there is no store: a
// caller with no nodes does what it did before nodes were. A store that
// cannot be read (an outage) is said on warn and also gives nil: the data
// dir's own serve still answers, and its status names the store's fault.
func storeNodes(ctx context.Context, open func(context.Context) (store.Store, error), warn io.Writer) ([]store.Node, time.Duration) {
	st, err := open(ctx)
	if err != nil {
		return nil, 0 // no store here: the data dir's serve alone
	}
	defer st.Close()
	nodes, err := st.ListNodes(ctx)
	if err == nil {
		var down time.Duration
		if down, err = agentDownTime(ctx, st); err == nil {
			return nodes, down
		}
	}
	fmt.Fprintf(warn, "mdctl: cannot read the store's nodes (%v); asking this data dir's serve only\n", err)
	return nil, 0
}

// acrossNodes says whether status and tui show the store's nodes rather
// than the data dir's serve alone: when the store has several, or its one
// node is not this data dir's serve (a store on PostgreSQL whose serve runs
// elsewhere). One serve on its own data dir shows as it always did.
func acrossNodes(nodes []store.Node, dataDir string) bool {
	if len(nodes) != 1 {
		return len(nodes) > 1
	}
	own, err := filepath.Abs(adminAddr(dataDir, ""))
	return err == nil && nodes[0].AdminSocket != own
}

// reachNodes asks every live node's admin endpoint for its status, at
// once, each within reachTimeout; a dead node (heartbeat older than
// agent_down_time) is not asked, and says so.
func reachNodes(ctx context.Context, nodes []store.Node, down time.Duration, token string) []nodeEndpoint {
	out := make([]nodeEndpoint, len(nodes))
	now := time.Now()
	var wg sync.WaitGroup
	for i, n := range nodes {
		out[i] = nodeEndpoint{Node: n, Alive: n.Alive(now, down)}
		if !out[i].Alive {
			out[i].Err = fmt.Errorf("dead: last heartbeat %s ago (agent_down_time %v)", age(now.Sub(n.HeartbeatAt)), down)
			continue
		}
		wg.Add(1)
		go func(e *nodeEndpoint) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, reachTimeout)
			defer cancel()
			e.Client, e.Status, e.Err = admin.Reach(ctx, e.Node, token)
		}(&out[i])
	}
	wg.Wait()
	return out
}
