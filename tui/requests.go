package tui

import (
	"slices"
	"time"

	"github.com/mdctl/mdctl/server/events"
)

// request is one guest request as the hops saw it, joined by request id.
type request struct {
	ID    string
	Node  string // the admin endpoint its first event came from
	First time.Time
	Hops  map[string]events.Event
	// byIP is the instance this request's source address belonged to on
	// an earlier request through the same namespace, for a request no hop
	// named one (the proxy's 429 refuses before the agent looks).
	byIP string
}

// sourceKey is where a request came from: node, namespace and source IP
// (tenant networks reuse addresses; a namespace is one network's).
func (r *request) sourceKey() string {
	ip := r.pick(func(e events.Event) string { return e.SourceIP })
	if ip == "" {
		return ""
	}
	return r.Node + "|" + r.pick(func(e events.Event) string { return e.Namespace }) + "|" + ip
}

// pick returns the field from the outermost hop that knows it: the proxy
// saw what the guest saw, the agent knows who the guest is.
func (r *request) pick(f func(events.Event) string) string {
	for _, h := range [...]string{events.HopProxy, events.HopAgent, events.HopAPI} {
		if e, ok := r.Hops[h]; ok {
			if v := f(e); v != "" {
				return v
			}
		}
	}
	return ""
}

func (r *request) instance() string {
	if n := r.pick(func(e events.Event) string { return e.InstanceName }); n != "" {
		return n
	}
	if id := r.pick(func(e events.Event) string { return e.InstanceID }); id != "" {
		return id
	}
	return r.byIP
}

func (r *request) outer() events.Event {
	for _, h := range events.Hops {
		if e, ok := r.Hops[h]; ok {
			return e
		}
	}
	return events.Event{}
}

// status is what the guest got: the outermost hop's status.
func (r *request) status() int { return r.outer().Status }

// total is the outermost hop's time, which includes the hops behind it.
func (r *request) total() time.Duration { return r.outer().Duration }

func (r *request) failed() bool {
	for _, e := range r.Hops {
		if e.Failed() {
			return true
		}
	}
	return false
}

// requestLog keeps the newest requests, bounded.
type requestLog struct {
	max   int
	byID  map[string]*request
	order []*request // oldest first
	// seen maps a sourceKey to the instance a hop last named for it.
	seen map[string]string
}

func newRequestLog(max int) *requestLog {
	return &requestLog{max: max, byID: map[string]*request{}, seen: map[string]string{}}
}

// add files e under its request, making the request on its first event.
func (l *requestLog) add(node string, e events.Event) {
	id := e.RequestID
	if id == "" {
		id = node + "/" + e.Hop + "/" + e.Time.String() // no id: its own request
	}
	r, ok := l.byID[id]
	if !ok {
		r = &request{ID: id, Node: node, First: e.Time, Hops: map[string]events.Event{}}
		l.byID[id] = r
		l.order = append(l.order, r)
		if len(l.order) > l.max {
			drop := len(l.order) - l.max
			for _, old := range l.order[:drop] {
				delete(l.byID, old.ID)
			}
			l.order = slices.Delete(l.order, 0, drop)
		}
	}
	if e.Time.Before(r.First) {
		r.First = e.Time
	}
	r.Hops[e.Hop] = e
	l.resolve(r)
}

// resolve learns which instance r's source is when a hop named it, and
// names a request no hop did after the instance its source was before.
func (l *requestLog) resolve(r *request) {
	k := r.sourceKey()
	if k == "" {
		return
	}
	named := r.pick(func(e events.Event) string { return e.InstanceName })
	if named == "" {
		named = r.pick(func(e events.Event) string { return e.InstanceID })
	}
	if named != "" {
		l.seen[k], r.byIP = named, ""
		return
	}
	r.byIP = l.seen[k]
}

// newestFirst returns the requests passing f, newest first.
func (l *requestLog) newestFirst(f filter) []*request {
	out := make([]*request, 0, len(l.order))
	for i := len(l.order) - 1; i >= 0; i-- {
		if f.match(l.order[i]) {
			out = append(out, l.order[i])
		}
	}
	slices.SortStableFunc(out, func(a, b *request) int { return b.First.Compare(a.First) })
	return out
}

// stats are the header's numbers over a window.
type stats struct {
	rate, errRate float64
	p99           time.Duration
	n             int
	// n4xx and n5xx count the answers by class: a guest asking for what
	// does not exist (4xx) is not serve failing (5xx).
	n4xx, n5xx int
}

func (l *requestLog) stats(now time.Time, window time.Duration) stats {
	var lat []time.Duration
	failed, n4, n5 := 0, 0, 0
	for i := len(l.order) - 1; i >= 0; i-- {
		r := l.order[i]
		if now.Sub(r.First) > window {
			continue // not break: several nodes' clocks interleave
		}
		lat = append(lat, r.total())
		if r.failed() {
			failed++
		}
		switch c := r.status() / 100; c {
		case 4:
			n4++
		case 5:
			n5++
		}
	}
	s := stats{n: len(lat), rate: float64(len(lat)) / window.Seconds(), n4xx: n4, n5xx: n5}
	if len(lat) == 0 {
		return s
	}
	s.errRate = float64(failed) / float64(len(lat))
	slices.Sort(lat)
	s.p99 = lat[(len(lat)*99+99)/100-1]
	return s
}
