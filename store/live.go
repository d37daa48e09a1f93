package store

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
)

// Snapshot is the settings in force at one generation. Raw holds every
// setting's resolved value; it is shared, so callers must not modify it.
type Snapshot struct {
	Generation uint64
	Config     Config
	Raw        map[string]string
}

// Live hands servers the settings in force, re-reading them only when the
// store's generation moved, so a `config set` from the CLI takes effect on
// the next request without a restart. Safe for concurrent use.
type Live struct {
	r         Reader
	overrides map[string]string
	cur       atomic.Pointer[Snapshot]
	mu        sync.Mutex // one re-read at a time
}

// NewLive returns a Live over r; overrides (a process's own flags) win over
// stored settings.
func NewLive(r Reader, overrides map[string]string) *Live {
	return &Live{r: r, overrides: maps.Clone(overrides)}
}

// Changed returns a channel closed once the store's generation moves (see
// Notifier), or nil, which never fires, when the store cannot say: then
// only polling finds changes.
func (l *Live) Changed() <-chan struct{} {
	if n, ok := l.r.(Notifier); ok {
		return n.Changed()
	}
	return nil
}

// requestSnapshot is the context key of one request's snapshot of a Live.
type requestSnapshot struct{ l *Live }

// WithSnapshot returns ctx carrying s as the snapshot its request is
// answered with: every later hop of this process that handles the same
// request (proxy, agent, API) sees the same settings and generation, and
// the store is looked at once per request rather than once per hop.
func (l *Live) WithSnapshot(ctx context.Context, s Snapshot) context.Context {
	return context.WithValue(ctx, requestSnapshot{l}, &s)
}

// Snapshot returns the settings in force: the request's own when ctx
// carries one (WithSnapshot), else the newest. On the hot path it costs one
// Generation call and an atomic load.
func (l *Live) Snapshot(ctx context.Context) (Snapshot, error) {
	if s, ok := ctx.Value(requestSnapshot{l}).(*Snapshot); ok {
		return *s, nil
	}
	gen, err := l.r.Generation(ctx)
	if err != nil {
		return Snapshot{}, fmt.Errorf("live settings: %w", err)
	}
	if s := l.cur.Load(); s != nil && s.Generation == gen {
		return *s, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// Generations only grow: another caller may have re-read past gen
	// while this one waited.
	if s := l.cur.Load(); s != nil && s.Generation >= gen {
		return *s, nil
	}
	// Settings read after gen may already include a later write; labelling
	// them gen only costs one more re-read when that write's gen is seen.
	stored, err := l.r.Settings(ctx)
	if err != nil {
		return Snapshot{}, fmt.Errorf("live settings: %w", err)
	}
	raw, err := Resolve(stored, l.overrides)
	if err != nil {
		return Snapshot{}, fmt.Errorf("live settings: %w", err)
	}
	cfg, err := ParseConfig(stored, l.overrides)
	if err != nil {
		return Snapshot{}, fmt.Errorf("live settings: %w", err)
	}
	s := &Snapshot{Generation: gen, Config: cfg, Raw: raw}
	l.cur.Store(s)
	return *s, nil
}
