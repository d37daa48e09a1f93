package events

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultBuffer is a subscriber's channel size when Subscribe is given 0:
// a second of a busy boot storm, so a reader that redraws a screen now
// and then does not lose events.
const DefaultBuffer = 4096

// Bus fans events out to subscribers without ever blocking a publisher,
// and counts them into its Metrics. A nil *Bus is valid and does nothing,
// so a component built without one pays only a nil check.
type Bus struct {
	metrics *Metrics
	mu      sync.Mutex // serialises Subscribe and Close; Publish never takes it
	subs    atomic.Pointer[[]*Subscription]

	// probes are the paths trace announced for its probes (MarkProbe),
	// with when the mark expires; nProbes lets Publish skip the lock
	// while none is pending, which is nearly always.
	probeMu sync.Mutex
	probes  map[string]time.Time
	nProbes atomic.Int32
}

// MaxProbeMark bounds how long a probe path stays marked.
const MaxProbeMark = 5 * time.Minute

// MarkProbe marks the requests for path as trace's own probe until ttl
// (at most MaxProbeMark) has passed: their events carry Probe and are
// counted apart from guest requests. Only the admin socket (root, the
// operator) calls it, so a guest cannot hide its requests from metrics:
// it can neither mark a path nor know the one trace chose at random.
func (b *Bus) MarkProbe(path string, ttl time.Duration) {
	if b == nil || path == "" {
		return
	}
	b.probeMu.Lock()
	defer b.probeMu.Unlock()
	now := time.Now()
	if b.probes == nil {
		b.probes = map[string]time.Time{}
	}
	for p, until := range b.probes {
		if now.After(until) {
			delete(b.probes, p)
		}
	}
	b.probes[path] = now.Add(min(max(ttl, 0), MaxProbeMark))
	b.nProbes.Store(int32(len(b.probes)))
}

// ProbeLog is l marked probe=true when path is a pending probe's, so a
// hop's request log tells trace's probes from guest requests; else l.
func (b *Bus) ProbeLog(l *slog.Logger, path string) *slog.Logger {
	if b.IsProbe(path) {
		return l.With("probe", true)
	}
	return l
}

// IsProbe reports whether path is a pending probe's (MarkProbe). It costs
// an atomic load while no probe is pending.
func (b *Bus) IsProbe(path string) bool {
	if b == nil || b.nProbes.Load() == 0 {
		return false
	}
	b.probeMu.Lock()
	defer b.probeMu.Unlock()
	until, ok := b.probes[path]
	return ok && time.Now().Before(until)
}

// IsProbeQuery reports whether path?rawQuery is a pending probe's: a
// probe whose path every guest asks too (the token PUT's) is marked with
// its query, which only trace's probe carries. A hop sets its event's
// Probe with it; Publish looks at the path alone.
func (b *Bus) IsProbeQuery(path, rawQuery string) bool {
	if rawQuery == "" || b == nil || b.nProbes.Load() == 0 {
		return false
	}
	return b.IsProbe(path + "?" + rawQuery)
}

// NewBus returns a Bus with fresh metrics.
func NewBus() *Bus {
	b := &Bus{metrics: NewMetrics()}
	b.subs.Store(&[]*Subscription{})
	return b
}

// Metrics returns the bus's metrics; nil for a nil bus (whose counters
// ignore increments).
func (b *Bus) Metrics() *Metrics {
	if b == nil {
		return nil
	}
	return b.metrics
}

// Publish counts e and hands it to every subscriber whose filter it
// passes. It never waits: a subscriber whose buffer is full misses the
// event and its drop counter (and the bus-wide one) goes up.
func (b *Bus) Publish(e Event) {
	if b == nil {
		return
	}
	if !e.Probe {
		e.Probe = b.IsProbe(e.Path)
	}
	b.metrics.observe(&e)
	for _, s := range *b.subs.Load() {
		if !s.filter.Match(e) {
			continue
		}
		select {
		case s.ch <- e:
		default:
			s.dropped.Add(1)
			b.metrics.drops.Add(1)
		}
	}
}

// Subscription receives the events that pass its filter on C, until
// Close. C is never closed (a publisher may hold it while Close runs);
// readers select on Done too.
type Subscription struct {
	C       <-chan Event
	ch      chan Event
	filter  Filter
	dropped atomic.Uint64
	own     bool // serve's own reader, not an event-stream client
	done    chan struct{}
	once    sync.Once
	bus     *Bus
}

// Subscribe starts a subscription with a buffer of buf events
// (DefaultBuffer when buf <= 0).
func (b *Bus) Subscribe(f Filter, buf int) *Subscription { return b.subscribe(f, buf, false) }

// SubscribeOwn is Subscribe for serve's own readers (the record of recent
// requests): Subscribers leaves them out, since it tells operators how
// many clients read the event stream.
func (b *Bus) SubscribeOwn(f Filter, buf int) *Subscription { return b.subscribe(f, buf, true) }

func (b *Bus) subscribe(f Filter, buf int, own bool) *Subscription {
	if buf <= 0 {
		buf = DefaultBuffer
	}
	ch := make(chan Event, buf)
	s := &Subscription{C: ch, ch: ch, filter: f, own: own, done: make(chan struct{}), bus: b}
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.subs.Load()
	next := make([]*Subscription, 0, len(old)+1)
	next = append(append(next, old...), s)
	b.subs.Store(&next)
	return s
}

// Subscribers counts the open subscriptions of event-stream clients.
func (b *Bus) Subscribers() int {
	if b == nil {
		return 0
	}
	n := 0
	for _, s := range *b.subs.Load() {
		if !s.own {
			n++
		}
	}
	return n
}

// Readers counts every open subscription, serve's own included.
func (b *Bus) Readers() int {
	if b == nil {
		return 0
	}
	return len(*b.subs.Load())
}

// Dropped is how many events this subscriber missed because its buffer
// was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Done is closed by Close.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Close stops delivery; it is safe to call more than once.
func (s *Subscription) Close() {
	s.once.Do(func() {
		b := s.bus
		b.mu.Lock()
		old := *b.subs.Load()
		next := make([]*Subscription, 0, len(old))
		for _, o := range old {
			if o != s {
				next = append(next, o)
			}
		}
		b.subs.Store(&next)
		b.mu.Unlock()
		close(s.done)
	})
}
