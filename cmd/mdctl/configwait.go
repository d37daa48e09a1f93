package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/store"
)

// config set and unset write the store; every serve sharing it sees the
// write through its change feed and applies it on its next request. What
// this file adds is the proof: each live node's /status says the store
// generation of the settings it has in force, and the command waits
// (bounded) for every node to reach its write's, then says on stderr
// where the change is in force.

// defaultConfigWait bounds config set's wait for the nodes.
const defaultConfigWait = 5 * time.Second

// configPoll is how often a node's /status is read while waiting.
const configPoll = 100 * time.Millisecond

func addConfigWaitFlags(cmd *cobra.Command, opts *configOptions) {
	cmd.Flags().DurationVar(&opts.Wait, "wait", defaultConfigWait, "how long to wait for every live node to have the change in force (0: do not ask them)")
	addAdminTokenFileFlag(cmd, &opts.TokenFile)
}

// nodeApplied is one node's answer to "is generation gen in force?".
type nodeApplied struct {
	name string
	line string // what stderr says of it
	ok   bool
}

// reportInForce waits up to opts.Wait for each live node of st to have
// the settings of generation gen (or later) in force, and writes a line
// per node to w. A store without nodes (no serve ever ran on it) says
// nothing.
func reportInForce(ctx context.Context, opts *configOptions, st store.Store, gen uint64, w io.Writer) error {
	if opts.Wait <= 0 {
		return nil
	}
	nodes, err := st.ListNodes(ctx)
	if err != nil || len(nodes) == 0 {
		return err
	}
	down, err := agentDownTime(ctx, st)
	if err != nil {
		return err
	}
	token, err := adminToken(opts.TokenFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Wait)
	defer cancel()
	out := make([]nodeApplied, len(nodes))
	now := time.Now()
	var wg sync.WaitGroup
	for i, n := range nodes {
		if !n.Alive(now, down) {
			out[i] = nodeApplied{name: n.Name, line: fmt.Sprintf("dead (last heartbeat %s ago): not asked; it reads the settings when it starts", age(now.Sub(n.HeartbeatAt)))}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = waitApplied(ctx, n, token, opts.Key, gen)
		}()
	}
	wg.Wait()
	in := 0
	for _, a := range out {
		if a.ok {
			in++
		}
		if _, err := fmt.Fprintf(w, "node %s: %s\n", a.name, a.line); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(w, "%s: in force on %d of %d nodes\n", opts.Key, in, len(nodes))
	return err
}

// waitApplied polls node n's /status until its settings generation
// reaches gen or ctx ends.
func waitApplied(ctx context.Context, n store.Node, token, key string, gen uint64) nodeApplied {
	start := time.Now()
	c, st, err := admin.Reach(ctx, n, token)
	for err == nil && st.SettingsGeneration < gen {
		select {
		case <-ctx.Done():
			return nodeApplied{name: n.Name, line: fmt.Sprintf("not in force after %s: it has the settings of generation %d, the change is %d", time.Since(start).Round(100*time.Millisecond), st.SettingsGeneration, gen)}
		case <-time.After(configPoll):
		}
		st, err = c.Status(ctx)
	}
	if err != nil {
		return nodeApplied{name: n.Name, line: "unknown: " + err.Error()}
	}
	a := nodeApplied{name: n.Name, ok: true, line: fmt.Sprintf("in force (generation %d, after %s)", st.SettingsGeneration, time.Since(start).Round(time.Millisecond))}
	if v, ok := st.Overrides[key]; ok {
		a.ok = false
		a.line = fmt.Sprintf("stored (generation %d), but its serve runs with --set %s=%s, which wins there", st.SettingsGeneration, key, v)
	}
	return a
}
