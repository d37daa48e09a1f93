package proxy

import (
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/mdctl/mdctl/server/events"
)

// refusalLogEvery is how often a listener logs one kind of refusal at
// most: a guest flooding its proxy makes refusals by the hundred thousand
// (one WARN each was 38 MB of log for 147k 429s), and the metric counts
// every one of them anyway.
const refusalLogEvery = 10 * time.Second

// refusal is one kind of refusal a listener makes to protect the others
// (429 past the rate limit, a connection past the per-source cap): every
// one is counted in metrics, and the log gets at most one line per
// refusalLogEvery, saying how many it stands for.
type refusal struct {
	msg     string
	counter *events.Counter
	log     *slog.Logger
	now     func() time.Time

	mu         sync.Mutex
	lastLog    time.Time
	suppressed int
}

func newRefusal(log *slog.Logger, bus *events.Bus, msg, metric, help string, id Identity, now func() time.Time) *refusal {
	return &refusal{
		msg:     msg,
		counter: bus.Metrics().Counter(metric, help, "listener", id.String()),
		log:     log.With("listener", id.String()),
		now:     now,
	}
}

// add counts one refusal of src and logs it unless a line was logged
// within refusalLogEvery; attrs describe this refusal.
func (r *refusal) add(src netip.Addr, attrs ...any) {
	r.counter.Inc()
	now := r.now()
	r.mu.Lock()
	if !r.lastLog.IsZero() && now.Sub(r.lastLog) < refusalLogEvery {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	n := r.suppressed
	r.suppressed, r.lastLog = 0, now
	r.mu.Unlock()
	r.log.Warn(r.msg, append([]any{"src", src.String(), "suppressed_since_last", n,
		"note", "logged at most once per " + refusalLogEvery.String() + " per listener; metrics count each"}, attrs...)...)
}
