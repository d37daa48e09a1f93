package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/store"
)

// storeWatch is the loop every reconciling component runs. It wakes as
// soon as the store says its generation moved (Live.Changed: PostgreSQL's
// LISTEN/NOTIFY, SQLite's -wal watcher) and on every poll, the fallback
// for a feed that is down or a store that cannot say. Each wake it reads
// the Live snapshot: when the generation moved since the last successful
// full pass (or resync has passed since it) it runs full; a poll that
// finds nothing to do runs tick. A failed full pass is retried on the
// next wake.
type storeWatch struct {
	live   *store.Live
	poll   time.Duration
	resync time.Duration // 0: only on changes
	now    func() time.Time
	full   func(ctx context.Context, cfg store.Config) error
	tick   func(ctx context.Context) error // may be nil
	report func(err error)
}

// watchGap is the least time between two full passes woken by changes: a
// burst of commits is then planned in a few passes, not one per commit,
// at the price of a few ms on the first.
const watchGap = 10 * time.Millisecond

func (w storeWatch) run(ctx context.Context) error {
	t := time.NewTicker(w.poll)
	defer t.Stop()
	now := w.now
	if now == nil {
		now = time.Now
	}
	var applied uint64
	var last, lastFull time.Time
	first, polled := true, false
	for {
		// Taken before the read: a move after it closes this channel.
		changed := w.live.Changed()
		snap, err := w.live.Snapshot(ctx)
		switch {
		case err != nil:
			w.report(fmt.Errorf("read store: %w", err))
		case first || snap.Generation != applied || (w.resync > 0 && now().Sub(last) >= w.resync):
			lastFull = time.Now()
			err := w.full(ctx, snap.Config)
			w.report(err)
			if err == nil {
				applied, first, last = snap.Generation, false, now()
			}
		case w.tick != nil && polled:
			w.report(w.tick(ctx))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			polled = true
		case <-changed:
			polled = false
			if !sleepCtx(ctx, watchGap-time.Since(lastFull)) {
				return nil
			}
		}
	}
}

// sleepCtx sleeps for d (nothing when d ≤ 0); false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

// errorLog logs a component's error once until it changes, so a broken
// namespace does not flood the log five times a second, and counts every
// failure for /metrics.
type errorLog struct {
	log      *slog.Logger
	what     string
	failures *events.Counter // may be nil
	last     string
}

// report logs err if it differs from the last; ok, when the state turns
// good, logs okMsg with okArgs.
func (e *errorLog) report(err error, okMsg string, okArgs ...any) {
	msg := ""
	if err != nil {
		msg = err.Error()
		e.failures.Inc()
	}
	if msg == e.last {
		return
	}
	e.last = msg
	if err != nil {
		e.log.Error(e.what, "err", err)
	} else {
		e.log.Info(okMsg, okArgs...)
	}
}
