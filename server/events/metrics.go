package events

import (
	"io"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

// The families other components bump through Metrics.Counter and
// Metrics.Gauge. Their help and label names live in families, the one
// table /metrics is built from.
const (
	// CacheLookups counts cache lookups; labels "cache" and "result"
	// (ResultHit, ResultMiss).
	CacheLookups = "mdctl_cache_lookups_total"
	// RateLimited counts requests the proxy refused with 429; label
	// "listener" ("router:<id>" or "network:<id>").
	RateLimited = "mdctl_rate_limited_total"
	// ConnsRefused counts connections the proxy closed at once because
	// their source held its per-source cap; label "listener".
	ConnsRefused = "mdctl_proxy_connections_refused_total"
	// ReconcileErrors counts failed data-plane reconciliations.
	ReconcileErrors = "mdctl_reconcile_errors_total"
	// DataplaneRepairs counts kernel state (namespaces, rules) serve had to
	// restore while the store had not changed: someone else removed it.
	DataplaneRepairs = "mdctl_dataplane_repairs_total"
	// LookupFailures counts guest requests the agent answered 404 because
	// the source address named no single port; label "reason"
	// (ReasonNoPort, ReasonSeveralPorts).
	LookupFailures = "mdctl_agent_lookup_failures_total"
	// SignatureMismatches counts API requests refused with 403 because
	// their signature did not match (an agent with another shared secret).
	SignatureMismatches = "mdctl_api_signature_mismatches_total"
	// APIErrors counts agent→API exchanges that failed; label "kind"
	// (KindUnreachable, KindTimeout, KindError).
	APIErrors = "mdctl_agent_api_errors_total"
	// APIFailovers counts agent→API attempts that got no answer while
	// another listed API was left to ask, which the agent then asked.
	APIFailovers = "mdctl_agent_api_failovers_total"
	// DataplaneWanted and DataplaneActual are what the plan wants and
	// what runs; label "kind" (KindNamespace, KindProxy, KindDnsmasq).
	DataplaneWanted = "mdctl_dataplane_wanted"
	DataplaneActual = "mdctl_dataplane_actual"
	// LastReconcile is the unix time of the last successful reconcile.
	LastReconcile = "mdctl_last_reconcile_success_timestamp_seconds"
)

// Label values of the families above.
const (
	ResultHit          = "hit"
	ResultMiss         = "miss"
	ReasonNoPort       = "no_port"
	ReasonSeveralPorts = "several_ports"
	KindUnreachable    = "unreachable"
	KindTimeout        = "timeout"
	KindError          = "error"
	KindNamespace      = "namespace"
	KindProxy          = "proxy"
	KindDnsmasq        = "dnsmasq"
)

// family is one metric family of the Counter/Gauge kind: its help, its
// label names, and the label values it is exported with from the start
// (at 0), so that an alert on it has a series before the first event.
type family struct {
	help   string
	gauge  bool
	labels []string
	preset [][]string
}

var families = map[string]family{
	CacheLookups: {help: "Cache lookups, by cache and result (hit or miss).", labels: []string{"cache", "result"},
		preset: [][]string{{"agent", ResultHit}, {"agent", ResultMiss}}},
	RateLimited:      {help: "Requests the proxy refused with 429, by listener (router or network).", labels: []string{"listener"}},
	ConnsRefused:     {help: "Connections the proxy closed at once: their source held its connection cap.", labels: []string{"listener"}},
	ReconcileErrors:  {help: "Failed data-plane reconcile attempts."},
	DataplaneRepairs: {help: "Namespaces and rules serve restored after someone else removed them."},
	LookupFailures: {help: "Guest requests answered 404 because no single port holds the source address, by reason.", labels: []string{"reason"},
		preset: [][]string{{ReasonNoPort}, {ReasonSeveralPorts}}},
	SignatureMismatches: {help: "API requests refused with 403 because their signature did not match."},
	APIErrors: {help: "Agent requests that no listed API answered, by kind.", labels: []string{"kind"},
		preset: [][]string{{KindUnreachable}, {KindTimeout}, {KindError}}},
	APIFailovers: {help: "Agent requests to an API that gave no answer, sent on at once to the next API listed in nova_metadata_host."},
	DataplaneWanted: {help: "Data-plane objects the plan wants, by kind.", gauge: true, labels: []string{"kind"},
		preset: [][]string{{KindNamespace}, {KindProxy}, {KindDnsmasq}}},
	DataplaneActual: {help: "Data-plane objects that exist or run, by kind.", gauge: true, labels: []string{"kind"},
		preset: [][]string{{KindNamespace}, {KindProxy}, {KindDnsmasq}}},
	LastReconcile: {help: "Unix time of the last data-plane reconcile that succeeded (0: none yet).", gauge: true},
}

// Version is mdctl's version as mdctl_build_info reports it; main sets it.
var Version = "dev"

// latencyBuckets are the histogram's upper bounds in seconds: a metadata
// answer takes well under a millisecond from cache and up to the agent's
// 60 s timeout when the API is gone.
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// pathClasses are PathClass's answers; knownCodes the statuses mdctl's
// hops answer themselves. Both index the request counters' array, so that
// counting a request is an index and an atomic add; a code outside the
// list goes to a map.
var (
	pathClasses = [...]string{"root", "password", "openstack", "ec2", "health", "other"}
	knownCodes  = [...]int{200, 400, 401, 403, 404, 405, 409, 429, 500, 502, 503, 504}
)

// Metrics holds the counters and histograms served on /metrics, on a
// prometheus registry with the Go and process collectors and
// mdctl_build_info. Every method is safe for concurrent use and for a nil
// *Metrics (a no-op).
type Metrics struct {
	reg      *prometheus.Registry
	requests [len(Hops)][len(pathClasses)][len(knownCodes)]atomic.Uint64
	other    sync.Map // reqKey → *atomic.Uint64: unknown hops and codes
	latency  [len(Hops) + 1]histogram
	probes   [len(Hops) + 1]atomic.Uint64
	drops    atomic.Uint64

	mu     sync.Mutex
	series map[string]*Counter // by name and labels
}

type reqKey struct {
	hop, class string
	status     int
}

type histogram struct {
	counts [19]atomic.Uint64 // len(latencyBuckets) + the +Inf one
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

// NewMetrics returns metrics with every family at 0.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), series: map[string]*Counter{}}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		(*collector)(m),
	)
	for name, f := range families {
		for _, values := range f.preset {
			pairs := make([]string, 0, 2*len(values))
			for i, v := range values {
				pairs = append(pairs, f.labels[i], v)
			}
			m.Counter(name, pairs...)
		}
	}
	return m
}

func hopIndex(hop string) int {
	for i, h := range Hops {
		if h == hop {
			return i
		}
	}
	return len(Hops)
}

func classIndex(c string) int {
	for i, k := range pathClasses {
		if k == c {
			return i
		}
	}
	return len(pathClasses) - 1
}

func codeIndex(code int) int {
	for i, k := range knownCodes {
		if k == code {
			return i
		}
	}
	return -1
}

func (m *Metrics) observe(e *Event) {
	h := hopIndex(e.Hop)
	if e.Probe {
		m.probes[h].Add(1) // trace's own: never counted as guest traffic
		return
	}
	m.latency[h].observe(e.Duration)
	class := PathClass(e.Path)
	if c := codeIndex(e.Status); c >= 0 && h < len(Hops) {
		m.requests[h][classIndex(class)][c].Add(1)
		return
	}
	k := reqKey{hop: e.Hop, class: class, status: e.Status}
	c, ok := m.other.Load(k)
	if !ok {
		c, _ = m.other.LoadOrStore(k, new(atomic.Uint64))
	}
	c.(*atomic.Uint64).Add(1)
}

// Drops is how many events subscribers missed in all.
func (m *Metrics) Drops() uint64 {
	if m == nil {
		return 0
	}
	return m.drops.Load()
}

// Requests sums the guest requests counted for hop (all hops when empty)
// and how many of them failed (status 5xx).
func (m *Metrics) Requests(hop string) (total, failed uint64) {
	if m == nil {
		return 0, 0
	}
	m.eachRequest(func(k reqKey, n uint64) {
		if hop == "" || k.hop == hop {
			total += n
			if k.status >= 500 {
				failed += n
			}
		}
	})
	return total, failed
}

func (m *Metrics) eachRequest(f func(reqKey, uint64)) {
	for h, hop := range Hops {
		for c, class := range pathClasses {
			for s, code := range knownCodes {
				f(reqKey{hop, class, code}, m.requests[h][c][s].Load())
			}
		}
	}
	m.other.Range(func(k, v any) bool {
		f(k.(reqKey), v.(*atomic.Uint64).Load())
		return true
	})
}

// Counter is one series of a family in families: a counter or, for a
// gauge family, a gauge. Bumping it is one atomic operation.
type Counter struct {
	name   string
	values []string
	v      atomic.Uint64 // a count, or a gauge's float64 bits
}

// Counter returns the series of that family and label pairs ("cache",
// "agent", …), creating it on first use; components keep the pointer.
// A name missing from families panics: every family is declared there.
func (m *Metrics) Counter(name string, labelPairs ...string) *Counter {
	if m == nil {
		return nil
	}
	f, ok := families[name]
	if !ok {
		panic("events: undeclared metric family " + name)
	}
	values := make([]string, len(f.labels))
	for i := 0; i+1 < len(labelPairs); i += 2 {
		j := slices.Index(f.labels, labelPairs[i])
		if j < 0 {
			panic("events: family " + name + " has no label " + labelPairs[i])
		}
		values[j] = labelPairs[i+1]
	}
	key := name + "\xff" + strings.Join(values, "\xff")
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.series[key]; ok {
		return c
	}
	c := &Counter{name: name, values: values}
	m.series[key] = c
	return c
}

// Gauge is Counter for a gauge family, named for what the caller does.
func (m *Metrics) Gauge(name string, labelPairs ...string) *Counter {
	return m.Counter(name, labelPairs...)
}

// Inc adds one; a nil counter ignores it.
func (c *Counter) Inc() { c.Add(1) }

// Add adds n; a nil counter ignores it.
func (c *Counter) Add(n uint64) {
	if c != nil {
		c.v.Add(n)
	}
}

// Set sets a gauge's value; a nil gauge ignores it.
func (c *Counter) Set(v float64) {
	if c != nil {
		c.v.Store(math.Float64bits(v))
	}
}

// Value is the counter's count.
func (c *Counter) Value() uint64 {
	if c == nil {
		return 0
	}
	return c.v.Load()
}

// GaugeValue is a gauge's value.
func (c *Counter) GaugeValue() float64 {
	if c == nil {
		return 0
	}
	return math.Float64frombits(c.v.Load())
}

// Registry is where the metrics are gathered from.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics (text or protobuf, as the scraper asks).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// WriteTo writes every metric in the Prometheus text exposition format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	if m == nil {
		return 0, nil
	}
	fams, err := m.reg.Gather()
	if err != nil {
		return 0, err
	}
	cw := &countWriter{w: w}
	enc := expfmt.NewEncoder(cw, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			return cw.n, err
		}
	}
	return cw.n, nil
}

// collector exports what Metrics counts with atomics; it describes
// nothing up front (an unchecked collector), as its series grow with the
// listeners.
type collector Metrics

var (
	requestsDesc = prometheus.NewDesc("mdctl_requests_total",
		"Guest requests seen by each hop, by status code and path class (trace's probes not included).", []string{"hop", "class", "code"}, nil)
	latencyDesc = prometheus.NewDesc("mdctl_request_duration_seconds",
		"Time each hop spent on a guest request, its downstream hops included.", []string{"hop"}, nil)
	probesDesc = prometheus.NewDesc("mdctl_probe_requests_total",
		"Requests of trace's own probes seen by each hop (not guest traffic).", []string{"hop"}, nil)
	dropsDesc = prometheus.NewDesc("mdctl_events_dropped_total",
		"Events subscribers missed because they fell behind.", nil, nil)
	buildDesc = prometheus.NewDesc("mdctl_build_info",
		"mdctl's version and the Go version it was built with; always 1.", []string{"version", "goversion"}, nil)
)

func (c *collector) Describe(chan<- *prometheus.Desc) {}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := (*Metrics)(c)
	ch <- prometheus.MustNewConstMetric(buildDesc, prometheus.GaugeValue, 1, Version, runtime.Version())
	ch <- prometheus.MustNewConstMetric(dropsDesc, prometheus.CounterValue, float64(m.drops.Load()))
	m.eachRequest(func(k reqKey, n uint64) {
		ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(n), k.hop, k.class, strconv.Itoa(k.status))
	})
	for i, hop := range Hops {
		ch <- prometheus.MustNewConstMetric(probesDesc, prometheus.CounterValue, float64(m.probes[i].Load()), hop)
		h := &m.latency[i]
		buckets := make(map[float64]uint64, len(latencyBuckets))
		var cum uint64
		for b, le := range latencyBuckets {
			cum += h.counts[b].Load()
			buckets[le] = cum
		}
		cum += h.counts[len(latencyBuckets)].Load()
		ch <- prometheus.MustNewConstHistogram(latencyDesc, cum, float64(h.sumNS.Load())/1e9, buckets, hop)
	}
	m.mu.Lock()
	series := make([]*Counter, 0, len(m.series))
	for _, s := range m.series {
		series = append(series, s)
	}
	m.mu.Unlock()
	for _, s := range series {
		f := families[s.name]
		if f.gauge {
			ch <- prometheus.MustNewConstMetric(f.desc(s.name), prometheus.GaugeValue, s.GaugeValue(), s.values...)
		} else {
			ch <- prometheus.MustNewConstMetric(f.desc(s.name), prometheus.CounterValue, float64(s.Value()), s.values...)
		}
	}
	// A family without labels is exported at 0 before anyone asked for it.
	for name, f := range families {
		if len(f.labels) == 0 && !m.has(name) {
			t := prometheus.CounterValue
			if f.gauge {
				t = prometheus.GaugeValue
			}
			ch <- prometheus.MustNewConstMetric(f.desc(name), t, 0)
		}
	}
}

func (m *Metrics) has(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.series[name+"\xff"]
	return ok
}

var descs sync.Map // name → *prometheus.Desc

func (f family) desc(name string) *prometheus.Desc {
	if d, ok := descs.Load(name); ok {
		return d.(*prometheus.Desc)
	}
	d, _ := descs.LoadOrStore(name, prometheus.NewDesc(name, f.help, f.labels, nil))
	return d.(*prometheus.Desc)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
