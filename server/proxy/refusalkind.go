package proxy

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/mdctl/mdctl/server/events"
)

// refusalKind is one kind of refusal a listener makes to protect the
// others (429 past the rate limit, a connection past the per-source cap).
// A guest flooding its proxy makes them by the hundred thousand (one WARN
// each was 38 MB of log for 147k 429s): every one is counted in metrics,
// per listener, and the log takes them through a logGate (refusal.go),
// the line after a shut gate saying how many it left out.
type refusalKind struct {
	msg     string
	counter *events.Counter
	log     *slog.Logger
	now     func() time.Time
	gate    logGate
}

func newRefusalKind(log *slog.Logger, bus *events.Bus, msg, metric string, id Identity, now func() time.Time) *refusalKind {
	return &refusalKind{
		msg:     msg,
		counter: bus.Metrics().Counter(metric, "listener", id.String()),
		log:     log.With("listener", id.String()),
		now:     now,
	}
}

// add counts one refusal of src and logs it if the gate lets it; attrs
// describe this refusal.
func (r *refusalKind) add(src netip.Addr, attrs ...any) {
	r.counter.Inc()
	ok, suppressed := r.gate.allow(r.now())
	if !ok {
		return
	}
	args := append([]any{"src", src.String()}, attrs...)
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	r.log.Warn(r.msg, args...)
}
