package events

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Names of the counters other components bump through Metrics.Counter.
const (
	// CacheHits counts answers served from a cache; label "cache".
	CacheHits = "mdctl_cache_hits_total"
	// CacheMisses counts lookups a cache could not answer; label "cache".
	CacheMisses = "mdctl_cache_misses_total"
	// RateLimited counts requests the proxy refused with 429; label
	// "listener".
	RateLimited = "mdctl_rate_limited_total"
	// ConnsRefused counts connections the proxy closed at once because
	// their source held its per-source cap; label "listener".
	ConnsRefused = "mdctl_proxy_connections_refused_total"
	// ReconcileErrors counts failed data-plane reconciliations.
	ReconcileErrors = "mdctl_reconcile_errors_total"
	// DataplaneRepairs counts kernel state (namespaces, rules) serve had to
	// restore while the store had not changed: someone else removed it.
	DataplaneRepairs = "mdctl_dataplane_repairs_total"
)

// latencyBuckets are the histogram's upper bounds in seconds: a metadata
// answer takes well under a millisecond from cache and up to the agent's
// 60 s timeout when the API is gone.
var latencyBuckets = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Metrics holds the counters and histograms served on /metrics. Every
// method is safe for concurrent use and for a nil *Metrics (a no-op).
type Metrics struct {
	requests sync.Map // reqKey → *atomic.Uint64
	latency  [len(Hops) + 1]histogram
	drops    atomic.Uint64

	mu       sync.Mutex
	counters map[string]*Counter // by name and labels
	help     map[string]string   // by name
}

type reqKey struct {
	hop, class string
	status     int
}

type histogram struct {
	counts [len(latencyBuckets) + 1]atomic.Uint64 // the last is +Inf
	sumNS  atomic.Uint64
}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(latencyBuckets) && s > latencyBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	if d > 0 {
		h.sumNS.Add(uint64(d))
	}
}

// NewMetrics returns empty metrics.
func NewMetrics() *Metrics {
	return &Metrics{counters: map[string]*Counter{}, help: map[string]string{}}
}

func hopIndex(hop string) int {
	for i, h := range Hops {
		if h == hop {
			return i
		}
	}
	return len(Hops)
}

func (m *Metrics) observe(e *Event) {
	k := reqKey{hop: e.Hop, class: PathClass(e.Path), status: e.Status}
	c, ok := m.requests.Load(k)
	if !ok {
		c, _ = m.requests.LoadOrStore(k, new(atomic.Uint64))
	}
	c.(*atomic.Uint64).Add(1)
	m.latency[hopIndex(e.Hop)].observe(e.Duration)
}

// Drops is how many events subscribers missed in all.
func (m *Metrics) Drops() uint64 {
	if m == nil {
		return 0
	}
	return m.drops.Load()
}

// Requests sums the requests counted for hop (all hops when empty) and
// how many of them failed (status 5xx).
func (m *Metrics) Requests(hop string) (total, failed uint64) {
	if m == nil {
		return 0, 0
	}
	m.requests.Range(func(k, v any) bool {
		rk := k.(reqKey)
		if hop == "" || rk.hop == hop {
			n := v.(*atomic.Uint64).Load()
			total += n
			if rk.status >= 500 {
				failed += n
			}
		}
		return true
	})
	return total, failed
}

// Counter is one named, labelled counter.
type Counter struct {
	name   string
	labels string // rendered: {k="v",…} or ""
	v      atomic.Uint64
}

// Counter returns the counter of that name and label pairs ("cache",
// "agent", …), creating it on first use; components keep the pointer, so
// bumping it costs one atomic add. help is kept from the first call.
func (m *Metrics) Counter(name, help string, labelPairs ...string) *Counter {
	if m == nil {
		return nil
	}
	labels := renderLabels(labelPairs)
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.counters[name+labels]; ok {
		return c
	}
	c := &Counter{name: name, labels: labels}
	m.counters[name+labels] = c
	if _, ok := m.help[name]; !ok {
		m.help[name] = help
	}
	return c
}

// Inc adds one; a nil counter ignores it.
func (c *Counter) Inc() { c.Add(1) }

// Add adds n; a nil counter ignores it.
func (c *Counter) Add(n uint64) {
	if c != nil {
		c.v.Add(n)
	}
}

// Value is the counter's count.
func (c *Counter) Value() uint64 {
	if c == nil {
		return 0
	}
	return c.v.Load()
}

func renderLabels(pairs []string) string {
	if len(pairs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(pairs); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(pairs[i])
		b.WriteString(`="`)
		b.WriteString(escapeLabel(pairs[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func escapeLabel(v string) string { return labelEscaper.Replace(v) }

// WriteTo writes every metric in the Prometheus text exposition format
// (version 0.0.4), in a stable order.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: bufio.NewWriter(w)}
	if m != nil {
		m.writeRequests(cw)
		m.writeLatency(cw)
		fmt.Fprintf(cw, "# HELP mdctl_events_dropped_total Events subscribers missed because they fell behind.\n")
		fmt.Fprintf(cw, "# TYPE mdctl_events_dropped_total counter\nmdctl_events_dropped_total %d\n", m.drops.Load())
		m.writeCounters(cw)
	}
	err := cw.w.(*bufio.Writer).Flush()
	if cw.err != nil {
		err = cw.err
	}
	return cw.n, err
}

func (m *Metrics) writeRequests(w io.Writer) {
	type row struct {
		k reqKey
		n uint64
	}
	var rows []row
	m.requests.Range(func(k, v any) bool {
		rows = append(rows, row{k.(reqKey), v.(*atomic.Uint64).Load()})
		return true
	})
	slices.SortFunc(rows, func(a, b row) int {
		if c := strings.Compare(a.k.hop, b.k.hop); c != 0 {
			return c
		}
		if c := strings.Compare(a.k.class, b.k.class); c != 0 {
			return c
		}
		return a.k.status - b.k.status
	})
	fmt.Fprintf(w, "# HELP mdctl_requests_total Requests seen by each hop, by status and path class.\n# TYPE mdctl_requests_total counter\n")
	for _, r := range rows {
		fmt.Fprintf(w, "mdctl_requests_total{hop=\"%s\",class=\"%s\",status=\"%d\"} %d\n",
			escapeLabel(r.k.hop), r.k.class, r.k.status, r.n)
	}
}

func (m *Metrics) writeLatency(w io.Writer) {
	fmt.Fprintf(w, "# HELP mdctl_request_duration_seconds Time each hop spent on a request, its downstream hops included.\n# TYPE mdctl_request_duration_seconds histogram\n")
	for i, hop := range Hops {
		h := &m.latency[i]
		var cum uint64
		for b, le := range latencyBuckets {
			cum += h.counts[b].Load()
			fmt.Fprintf(w, "mdctl_request_duration_seconds_bucket{hop=\"%s\",le=\"%s\"} %d\n", hop, formatFloat(le), cum)
		}
		cum += h.counts[len(latencyBuckets)].Load()
		fmt.Fprintf(w, "mdctl_request_duration_seconds_bucket{hop=\"%s\",le=\"+Inf\"} %d\n", hop, cum)
		fmt.Fprintf(w, "mdctl_request_duration_seconds_sum{hop=\"%s\"} %s\n", hop, formatFloat(float64(h.sumNS.Load())/1e9))
		fmt.Fprintf(w, "mdctl_request_duration_seconds_count{hop=\"%s\"} %d\n", hop, cum)
	}
}

func (m *Metrics) writeCounters(w io.Writer) {
	m.mu.Lock()
	cs := make([]*Counter, 0, len(m.counters))
	for _, c := range m.counters {
		cs = append(cs, c)
	}
	help := make(map[string]string, len(m.help))
	for k, v := range m.help {
		help[k] = v
	}
	m.mu.Unlock()
	slices.SortFunc(cs, func(a, b *Counter) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return strings.Compare(a.labels, b.labels)
	})
	last := ""
	for _, c := range cs {
		if c.name != last {
			last = c.name
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", c.name, strings.ReplaceAll(help[c.name], "\n", " "), c.name)
		}
		fmt.Fprintf(w, "%s%s %d\n", c.name, c.labels, c.v.Load())
	}
}

func formatFloat(f float64) string {
	if math.IsInf(f, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}
