package sched

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/mdctl/mdctl/store"
)

// Scheduler runs passes of Plan against a store for one node. Each serve
// running the proxy component runs one; passes on several hosts at once
// are safe: a pass that has moves to make plans again inside one write
// transaction, after the store's writer lock, and the router binding's
// primary key backs that.
type Scheduler struct {
	Store store.Store
	Live  *store.Live
	// Self is this node's name: it runs the proxy component whatever its
	// row says (another serve with the same --node, running other
	// components, may have registered last).
	Self string
	Log  *slog.Logger
	// Now is the clock heartbeats are judged by; default time.Now.
	Now func() time.Time

	mu sync.Mutex // one pass at a time per process
}

// Interval is how often Run passes: half of agent_down_time (neutron
// checks dead agents every agent_down_time/2), between 1 s and 30 s.
func Interval(downTime time.Duration) time.Duration {
	return min(max(downTime/2, time.Second), 30*time.Second)
}

// DownTime is agent_down_time in force, or its default while the settings
// cannot be read.
func DownTime(ctx context.Context, live *store.Live) time.Duration {
	if snap, err := live.Snapshot(ctx); err == nil {
		return snap.Config.AgentDownTime
	}
	return store.DefaultConfig().AgentDownTime
}

// Run passes at start and then every Interval until ctx ends. A failed
// pass is logged and retried at the next.
func (s *Scheduler) Run(ctx context.Context) error {
	for {
		if _, err := s.Pass(ctx); err != nil && ctx.Err() == nil {
			s.Log.Warn("scheduling pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(Interval(DownTime(ctx, s.Live))):
		}
	}
}

// Pass binds what is unbound and moves what a dead node hosts. It writes
// only when there is something to move, and returns the moves made.
func (s *Scheduler) Pass(ctx context.Context) ([]Move, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, err := s.Live.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	in, err := s.input(ctx, s.Store, snap.Config)
	if err != nil {
		return nil, err
	}
	if len(Plan(in)) == 0 {
		return nil, nil // the common case: no write, no lock
	}
	var moves []Move
	err = s.Store.Update(ctx, func(tx store.Tx) error {
		// Inside the writer lock every read sees every commit: plan again
		// on what another host's scheduler may just have written.
		in, err := s.input(ctx, tx, snap.Config)
		if err != nil {
			return err
		}
		moves = Plan(in)
		for _, m := range moves {
			set := tx.SetNetworkHosts
			if m.Kind == KindRouter {
				set = tx.SetRouterHosts
			}
			if err := set(ctx, m.ID, m.To); err != nil {
				return fmt.Errorf("schedule %s %s on %v: %w", m.Kind, m.ID, m.To, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, m := range moves {
		level := slog.LevelInfo
		if len(m.Lost) > 0 {
			level = slog.LevelWarn
		}
		s.Log.Log(ctx, level, "scheduled", "kind", m.Kind, "id", m.ID, "from", m.From, "to", m.To, "reason", m.Reason)
	}
	return moves, nil
}

// input reads what Plan needs through r (the store, or a transaction).
func (s *Scheduler) input(ctx context.Context, r store.Reader, cfg store.Config) (Input, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	in := Input{Now: now(), DownTime: cfg.AgentDownTime, PerNetwork: cfg.DHCPAgentsPerNetwork}
	var err error
	if in.Nodes, err = r.ListNodes(ctx); err != nil {
		return in, fmt.Errorf("schedule: %w", err)
	}
	for i, n := range in.Nodes {
		if n.Name == s.Self && !n.Runs(store.ComponentProxy) {
			in.Nodes[i].Components = append(slices.Clone(n.Components), store.ComponentProxy)
		}
	}
	if in.Routers, err = r.ListRouters(ctx); err != nil {
		return in, fmt.Errorf("schedule: %w", err)
	}
	subs, err := r.ListSubnets(ctx, "")
	if err != nil {
		return in, fmt.Errorf("schedule: %w", err)
	}
	for _, sn := range subs {
		if sn.EnableDHCP && !slices.Contains(in.DHCPNetworks, sn.NetworkID) {
			in.DHCPNetworks = append(in.DHCPNetworks, sn.NetworkID)
		}
	}
	if in.RouterBindings, err = r.RouterBindings(ctx); err != nil {
		return in, fmt.Errorf("schedule: %w", err)
	}
	if in.NetworkBindings, err = r.NetworkBindings(ctx); err != nil {
		return in, fmt.Errorf("schedule: %w", err)
	}
	return in, nil
}
