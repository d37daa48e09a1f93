// Package admin is serve's operator endpoint: a small HTTP server on
// <data-dir>/admin.sock (and optionally a TCP address) that streams
// request events as NDJSON, serves Prometheus metrics, health, and the
// component status `mdctl status` prints; and the client the CLI and the
// TUI use to read it.
//
// It owns the admin listeners and the wire shapes of /events and /status.
// It must never be reachable from a guest (it listens on a unix socket
// and, when asked, on an operator-chosen address), and never slows a
// request: it only reads from server/events.
package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/mdctl/mdctl/server/events"
)

// SocketName is the admin socket's file name in the data dir.
const SocketName = "admin.sock"

// Component is one part of serve as /status reports it.
type Component struct {
	Name    string            `json:"name" yaml:"name"`
	Up      bool              `json:"up" yaml:"up"`
	Address string            `json:"address,omitempty" yaml:"address,omitempty"`
	Counts  map[string]uint64 `json:"counts,omitempty" yaml:"counts,omitempty"`
	Error   string            `json:"error,omitempty" yaml:"error,omitempty"`
}

// Status is the /status answer.
type Status struct {
	PID        int         `json:"pid" yaml:"pid"`
	Started    time.Time   `json:"started" yaml:"started"`
	Components []Component `json:"components" yaml:"components"`
	// Subscribers and Dropped describe the event stream.
	Subscribers int    `json:"event_subscribers" yaml:"event_subscribers"`
	Dropped     uint64 `json:"events_dropped" yaml:"events_dropped"`
	// Dataplane names the namespaces this serve's data plane uses, so a
	// tracer looks where serve and its lab built things; nil when serve
	// runs no data plane.
	Dataplane *DataplaneNames `json:"dataplane,omitempty" yaml:"dataplane,omitempty"`
	// Overrides are serve's --set values, secrets as Masked, so a tracer
	// checks the settings serve runs with.
	Overrides map[string]string `json:"overrides,omitempty" yaml:"overrides,omitempty"`
	// DHCPPlanned is how many DHCP servers (one dnsmasq per network) the
	// data plane means to run here after its last plan, DHCPServers how
	// many run: `mdctl lab up` waits until they meet. Both are absent
	// without a data plane, DHCPPlanned also before its first plan.
	DHCPPlanned *int `json:"dhcp_planned,omitempty" yaml:"dhcp_planned,omitempty"`
	DHCPServers *int `json:"dhcp_servers,omitempty" yaml:"dhcp_servers,omitempty"`
	// Node is the node serve registered as (serve --node), so a client
	// that found this endpoint through the store knows it reached that
	// node and not another serve at the same socket path.
	Node string `json:"node,omitempty" yaml:"node,omitempty"`
	// SettingsGeneration is the store generation of the settings serve
	// has in force (read when asked, as a request would): config set
	// waits for it to reach its write's.
	SettingsGeneration uint64 `json:"settings_generation,omitempty" yaml:"settings_generation,omitempty"`
	// StoreError is set when serve cannot read its store (settings
	// generation then absent): the rest of the status still says what
	// runs, which is what an operator needs during the outage.
	StoreError string `json:"store_error,omitempty" yaml:"store_error,omitempty"`
}

// DHCPReady reports whether serve runs every DHCP server it planned; false
// before its first plan, and without a data plane.
func (st Status) DHCPReady() bool {
	return st.DHCPPlanned != nil && st.DHCPServers != nil && *st.DHCPServers >= *st.DHCPPlanned
}

// DHCPCounts are the data plane's DHCP servers for /status: Planned < 0
// before the first plan.
type DHCPCounts struct{ Planned, Running int }

// Masked stands for a secret's value wherever one is shown.
const Masked = "********"

// DataplaneNames are a data plane's namespace names (dataplane.Options).
type DataplaneNames struct {
	SegmentNamespace string `json:"segment_namespace" yaml:"segment_namespace"`
	GuestPrefix      string `json:"guest_prefix" yaml:"guest_prefix"`
	HostNamespace    string `json:"host_namespace,omitempty" yaml:"host_namespace,omitempty"` // "" is serve's own
}

// Options configure the admin Server.
type Options struct {
	Bus *events.Bus
	// Recent answers /recent: each instance's last requests; nil answers
	// none.
	Recent *events.Recent
	// Dataplane is reported on /status as it is.
	Dataplane *DataplaneNames
	// Overrides are reported on /status as they are: the caller masks
	// secrets.
	Overrides map[string]string
	// SocketPath is the unix socket (mode 0660); empty means none.
	SocketPath string
	// TCPAddr is an optional extra address, e.g. 127.0.0.1:8776.
	TCPAddr string
	// Token is the bearer token every request on TCPAddr must carry
	// (auth.go); required with TCPAddr.
	Token string
	// TCPBound, when set, hears the address TCPAddr is bound to (its port
	// resolved), once it listens: serve records it on its node.
	TCPBound func(addr string)
	// Status reports the components; nil reports none.
	Status func(context.Context) []Component
	// DHCP reports the data plane's DHCP servers; nil (no data plane)
	// reports none.
	DHCP func() DHCPCounts
	// Health reads the store with a cheap query for /healthz (store.Ping);
	// nil answers ok.
	Health func(context.Context) error
	// Names fills an event's instance name from its id, off the request
	// path; nil leaves names as the hops set them.
	Names func(ctx context.Context, instanceID string) string
	// Node is reported on /status as it is.
	Node string
	// SettingsGeneration answers /status's settings_generation; nil
	// reports none.
	SettingsGeneration func(context.Context) (uint64, error)
	// TraceKernel answers POST /trace/kernel: the checks of an instance's
	// metadata path that only its hosting node can make (namespace,
	// iptables, proxy), as a JSON-encodable value; nil answers 501.
	TraceKernel func(ctx context.Context, instance string, timeout time.Duration) (any, error)
	Logger      *slog.Logger
}

// Server is the admin endpoint.
type Server struct {
	o       Options
	log     *slog.Logger
	started time.Time
}

// New returns a Server; nothing listens until Run.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Server{o: o, log: o.Logger, started: time.Now()}
}

// Run serves until ctx ends, then removes the socket.
func (s *Server) Run(ctx context.Context) error {
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	ownSocket := false
	if s.o.SocketPath != "" {
		ln, err := listenUnix(s.o.SocketPath)
		switch {
		case errors.Is(err, ErrSocketBusy):
			// Several serves may share a data dir (one per component set);
			// the first one's endpoint stays, this one goes without.
			s.log.Warn("admin endpoint off: another serve holds the socket", "socket", s.o.SocketPath)
		case err != nil:
			return err
		default:
			lns, ownSocket = append(lns, ln), true
		}
	}
	if s.o.TCPAddr != "" {
		if s.o.Token == "" {
			closeAll()
			return fmt.Errorf("admin: %s: a TCP admin endpoint needs a token", s.o.TCPAddr)
		}
		ln, err := net.Listen("tcp", s.o.TCPAddr)
		if err != nil {
			closeAll()
			return fmt.Errorf("admin: listen on %s: %w", s.o.TCPAddr, err)
		}
		lns = append(lns, ln)
		if s.o.TCPBound != nil {
			s.o.TCPBound(ln.Addr().String())
		}
	}
	if len(lns) == 0 {
		if s.o.SocketPath == "" {
			return errors.New("admin: neither a socket path nor a TCP address to listen on")
		}
		<-ctx.Done()
		return nil
	}
	open, guarded := s.Handler(), requireToken(s.o.Token, s.Handler())
	srv := &http.Server{
		// The socket is guarded by its file mode, TCP by the token.
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, unix := r.Context().Value(http.LocalAddrContextKey).(*net.UnixAddr); unix {
				open.ServeHTTP(w, r)
				return
			}
			guarded.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		s.log.Info("admin endpoint listening", "addr", ln.Addr().String())
		go func() { errc <- srv.Serve(ln) }()
	}
	var err error
	select {
	case err = <-errc:
		err = fmt.Errorf("admin: %w", err)
	case <-ctx.Done():
	}
	// Streams never end by themselves, so no graceful wait: close.
	srv.Close()
	if ownSocket {
		os.Remove(s.o.SocketPath)
	}
	return err
}

// ErrSocketBusy says a live serve answers on the admin socket already.
var ErrSocketBusy = errors.New("another mdctl serve answers on the admin socket")

// listenUnix listens on path, replacing a stale socket file but refusing
// to steal one a live serve answers on.
func listenUnix(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("admin: %s: %w", path, ErrSocketBusy)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("admin: remove stale socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin: listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin: chmod %s: %w", path, err)
	}
	return ln, nil
}

// Handler serves /events, /metrics, /healthz and /status.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events", s.events)
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /status", s.status)
	mux.HandleFunc("GET /recent", s.recent)
	mux.HandleFunc("POST /probes", s.markProbe)
	mux.HandleFunc("POST /trace/kernel", s.traceKernel)
	return mux
}

// healthTimeout bounds /healthz's read of the store: a server that does
// not answer is unhealthy, not a hung probe.
const healthTimeout = 2 * time.Second

// healthz answers 200 "ok" when serve can read its store (Options.Health),
// else 503 with the reason, for systemd, load balancers and trace.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.o.Health != nil {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		if err := s.o.Health(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err.Error()) // it names the store: ErrUnavailable
			return
		}
	}
	fmt.Fprintln(w, "ok")
}

// recent answers an instance's last requests (events.Recent), oldest
// first, as a JSON array of events.
func (s *Server) recent(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("instance")
	if id == "" {
		http.Error(w, "instance=<id> is required", http.StatusBadRequest)
		return
	}
	evs := s.o.Recent.Of(id)
	w.Header().Set("Content-Type", "application/json")
	buf := []byte{'['}
	for i := range evs {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = evs[i].AppendJSON(buf)
	}
	_, _ = w.Write(append(buf, ']', '\n'))
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	s.o.Bus.Metrics().Handler().ServeHTTP(w, r)
}

// markProbe marks ?path= as trace's probe for ?ttl= (events.Bus.MarkProbe).
// Only who may use the admin endpoint (root on the socket, the token over
// TCP) reaches it, so a guest cannot mark its own requests.
func (s *Server) markProbe(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Query().Get("path")
	ttl, err := time.ParseDuration(r.URL.Query().Get("ttl"))
	if path == "" || err != nil {
		http.Error(w, "400 bad request: want ?path=<probe path>&ttl=<duration>", http.StatusBadRequest)
		return
	}
	s.o.Bus.MarkProbe(path, ttl)
	w.WriteHeader(http.StatusNoContent)
}

// traceKernel runs the kernel-side checks of ?instance= on this node,
// each bounded by ?timeout= (default: the tracer's), for a trace started on
// another node. Like /probes it is reachable only by who may use the admin
// endpoint.
func (s *Server) traceKernel(w http.ResponseWriter, r *http.Request) {
	if s.o.TraceKernel == nil {
		http.Error(w, "501 not implemented: this serve runs no kernel checks (no proxy component)", http.StatusNotImplemented)
		return
	}
	q := r.URL.Query()
	instance := q.Get("instance")
	var timeout time.Duration
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > MaxTraceTimeout {
			http.Error(w, fmt.Sprintf("400 bad request: timeout=%s: want a duration up to %v", v, MaxTraceTimeout), http.StatusBadRequest)
			return
		}
		timeout = d
	}
	if instance == "" {
		http.Error(w, "400 bad request: want ?instance=<name or id>[&timeout=<duration>]", http.StatusBadRequest)
		return
	}
	s.log.Info("running the kernel checks of a trace from another node", "instance", instance, "timeout", timeout.String())
	out, err := s.o.TraceKernel(r.Context(), instance, timeout)
	if err != nil {
		http.Error(w, "trace "+instance+": "+err.Error(), http.StatusUnprocessableEntity)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// MaxTraceTimeout bounds /trace/kernel's per-check timeout, so a caller
// cannot hold a serve's kernel checks for long.
const MaxTraceTimeout = 30 * time.Second

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st := Status{PID: os.Getpid(), Started: s.started, Components: []Component{}, Dataplane: s.o.Dataplane, Overrides: s.o.Overrides,
		Subscribers: s.o.Bus.Subscribers(), Dropped: s.o.Bus.Metrics().Drops()}
	if s.o.DHCP != nil {
		c := s.o.DHCP()
		st.DHCPServers = &c.Running
		if c.Planned >= 0 {
			st.DHCPPlanned = &c.Planned
		}
	}
	if s.o.Status != nil {
		st.Components = s.o.Status(r.Context())
	}
	st.Node = s.o.Node
	if s.o.SettingsGeneration != nil {
		gen, err := s.o.SettingsGeneration(r.Context())
		if err != nil {
			st.StoreError = err.Error()
		}
		st.SettingsGeneration = gen
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(st)
}

// events streams one JSON event per line, flushing each, until the
// client goes away or serve stops.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := events.Filter{Instance: q.Get("instance"), Hop: q.Get("hop"), Status: q.Get("status")}
	if !events.ValidStatusFilter(f.Status) {
		http.Error(w, fmt.Sprintf("status=%s: want a code (404), a class (5xx) or error", f.Status), http.StatusBadRequest)
		return
	}
	if f.Hop != "" && !validHop(f.Hop) {
		http.Error(w, fmt.Sprintf("hop=%s: want proxy, agent or api", f.Hop), http.StatusBadRequest)
		return
	}
	if s.o.Bus == nil {
		http.Error(w, "no event bus in this serve", http.StatusServiceUnavailable)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	// The filter is applied here, after names are filled, so a filter by
	// instance name matches events whose hop only knew the id.
	sub := s.o.Bus.Subscribe(events.Filter{Hop: f.Hop}, streamBuffer)
	defer sub.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl.Flush() // the client knows it is connected before the first event
	names := newNameCache(s.o.Names)
	// Every FlushEvery the stream takes what queued and sends it in one
	// write. It never waits on the queue itself: a wake-up of this
	// goroutine per event, and a write per event, cost the serving process
	// more than the request the event described. A live view needs nothing
	// faster than a tenth of a second.
	bw := bufio.NewWriterSize(w, 64<<10)
	buf := make([]byte, 0, 1024)
	tick := time.NewTicker(FlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
		names.expire()
	drain:
		for {
			select {
			case e := <-sub.C:
				if e.InstanceName == "" && e.InstanceID != "" {
					e.InstanceName = names.get(r.Context(), e.InstanceID)
				}
				if !f.Match(e) {
					continue
				}
				buf = append(e.AppendJSON(buf[:0]), '\n')
				if _, err := bw.Write(buf); err != nil {
					return
				}
			default:
				break drain
			}
		}
		if bw.Buffered() == 0 {
			continue
		}
		if err := bw.Flush(); err != nil {
			return
		}
		fl.Flush()
	}
}

// streamBuffer holds what a stream's subscriber may queue between two
// sends: a boot storm's events for FlushEvery at tens of thousands of
// requests a second across three hops. Beyond it events are dropped and
// counted, never waited for.
const streamBuffer = 16384

// FlushEvery is how long an event may wait in the stream's buffer before
// it is sent.
const FlushEvery = 100 * time.Millisecond

func validHop(h string) bool {
	for _, x := range events.Hops {
		if x == h {
			return true
		}
	}
	return false
}

// nameCache remembers instance names for one stream for a few seconds,
// so a boot storm costs one store read per instance, not per event.
type nameCache struct {
	lookup func(context.Context, string) string
	names  map[string]string
	reset  time.Time
}

const nameTTL = 5 * time.Second

func newNameCache(lookup func(context.Context, string) string) *nameCache {
	return &nameCache{lookup: lookup, names: map[string]string{}, reset: time.Now().Add(nameTTL)}
}

// expire forgets the names once they are nameTTL old; the stream calls
// it once per batch rather than reading the clock per event.
func (c *nameCache) expire() {
	if now := time.Now(); now.After(c.reset) {
		clear(c.names)
		c.reset = now.Add(nameTTL)
	}
}

func (c *nameCache) get(ctx context.Context, id string) string {
	if c.lookup == nil {
		return ""
	}
	n, ok := c.names[id]
	if !ok {
		n = c.lookup(ctx, id)
		c.names[id] = n
	}
	return n
}
