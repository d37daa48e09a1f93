// Package proxy is mdctl's namespace metadata proxy, haproxy's job in
// neutron: one process serves every router and DHCP namespace through
// listeners the caller opens inside them. Per request it strips every
// identity header a guest could forge, states the guest's address and the
// router or network the listener belongs to, rate-limits per source and
// forwards to the agent's unix socket.
//
// It owns listeners, header hygiene, connection caps and rate limits. It
// must never resolve instances or sign anything: that is the agent's job.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/store"
)

// Timeouts from neutron's haproxy config (timeout http-request 30s,
// client 32s, server 32s, http-keep-alive 30s).
const (
	HeaderTimeout    = 30 * time.Second
	ClientTimeout    = 32 * time.Second
	ServerTimeout    = 32 * time.Second
	KeepAliveTimeout = 30 * time.Second
	// DialTimeout bounds connecting to the agent's socket; a missing or
	// refused socket fails at once, this only caps a full backlog.
	DialTimeout = 5 * time.Second
	// DefaultMaxConns is haproxy's maxconn in neutron's config.
	DefaultMaxConns = 1024
	// maxHeaderBytes is haproxy's default tune.bufsize.
	maxHeaderBytes = 16 << 10
	// maxIdleAgentConns keeps a keep-alive connection to the agent for
	// every guest connection a busy listener serves at once, so a load of
	// many guests reuses connections instead of dialing per request.
	maxIdleAgentConns = 256
)

// Identity says whose listener this is; exactly one of RouterID and
// NetworkID is set, and that one decides the mode (router or dhcp).
type Identity struct {
	RouterID, NetworkID string
	// Namespace is the network namespace the listener lives in, for the
	// live view's events only; it plays no part in forwarding.
	Namespace string
}

func (id Identity) valid() error {
	if (id.RouterID == "") == (id.NetworkID == "") {
		return fmt.Errorf("proxy identity %+v: exactly one of router and network must be set", id)
	}
	return nil
}

func (id Identity) String() string {
	if id.RouterID != "" {
		return "router:" + id.RouterID
	}
	return "network:" + id.NetworkID
}

// Options configure a Proxy.
type Options struct {
	// AgentSocket is the agent's unix socket.
	AgentSocket string
	// Live gives the rate-limit settings per request; nil disables limits.
	Live *store.Live
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
	// MaxConns caps concurrent connections per listener (DefaultMaxConns
	// when 0); past it new connections wait in the kernel's backlog.
	MaxConns int
	// Events receives one event per request; nil means none.
	Events *events.Bus
	// AgentTransport, when set, carries requests to the agent instead of
	// AgentSocket (serve sets it when the agent runs in the same process).
	AgentTransport http.RoundTripper
}

// Proxy forwards guests' requests to the agent. One Proxy serves any
// number of listeners; it is safe for concurrent use.
type Proxy struct {
	opts      Options
	log       *slog.Logger
	transport *agentTransport
	rt        http.RoundTripper // transport, unless a test captures requests
	ids       *requestIDs
	now       func() time.Time // the rate limiter's clock; tests move it
}

// agentURL is where requests go; the transport dials the socket whatever
// the host says.
var agentURL = &url.URL{Scheme: "http", Host: "metadata-agent"}

// New returns a Proxy; nothing runs until Serve.
func New(o Options) *Proxy {
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	sock := o.AgentSocket
	p := &Proxy{
		opts:      o,
		log:       o.Logger.With("component", "proxy"),
		now:       time.Now,
		transport: newAgentTransport(sock, maxIdleAgentConns),
		ids:       newRequestIDs(),
	}
	p.rt = p.transport
	if o.AgentTransport != nil {
		p.rt = o.AgentTransport
	}
	return p
}

// Serve serves one listener for id until ctx is done; the listener is
// closed on return. It returns nil after ctx ends.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener, id Identity) error {
	if err := id.valid(); err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{
		Handler:           p.handler(id, newLimiter()),
		ReadHeaderTimeout: HeaderTimeout,
		ReadTimeout:       ClientTimeout,
		WriteTimeout:      ServerTimeout + ClientTimeout,
		IdleTimeout:       KeepAliveTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(limitListener(ln, p.opts.MaxConns)) }()
	select {
	case err := <-errc:
		return fmt.Errorf("proxy %s on %s: %w", id, ln.Addr(), err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil {
		srv.Close()
	}
	return nil
}

// Handler returns the per-request handler for id, as Serve uses it (with
// a rate limiter of its own); for tests and benchmarks.
func (p *Proxy) Handler(id Identity) http.Handler { return p.handler(id, newLimiter()) }

func (p *Proxy) handler(id Identity, lim *limiter) http.Handler {
	// The identity headers are the same on every request of a listener.
	idName, idValue := []string{"X-Neutron-Router-ID"}, []string{id.RouterID}
	if id.RouterID == "" {
		idName, idValue = []string{"X-Neutron-Network-ID"}, []string{id.NetworkID}
	}
	key := http.CanonicalHeaderKey(idName[0])
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		peer, err := peerIP(r.RemoteAddr)
		if err != nil {
			p.log.Error("peer address", "remote", r.RemoteAddr, "err", err)
			haproxyError(w, http.StatusBadRequest)
			return
		}
		rid := p.ids.next()
		ctx, snap := p.snapshot(r.Context())
		if p.limited(snap, lim, peer) {
			p.log.Warn("rate limited", "request_id", rid, "listener", id.String(), "src", peer.String(),
				"method", r.Method, "path", r.URL.Path)
			haproxyError(w, http.StatusTooManyRequests)
			p.opts.Events.Metrics().Counter(events.RateLimited, "Requests the proxy refused with 429.").Inc()
			p.emit(id, r, rid, peer, start, http.StatusTooManyRequests, 0)
			return
		}
		out := outRequest(ctx, r, peer, key, idValue, rid)
		status, n := p.forward(w, r, out)
		if p.log.Enabled(r.Context(), slog.LevelDebug) {
			p.log.Debug("metadata request", "request_id", rid, "listener", id.String(), "src", peer.String(),
				"method", r.Method, "path", r.URL.Path, "status", status, "duration", time.Since(start))
		}
		p.emit(id, r, rid, peer, start, status, n)
	})
}

// snapshot reads the settings in force and returns ctx carrying them, so
// an agent and API in this process answer the request with the same ones
// without reading them again; snap is nil without settings.
func (p *Proxy) snapshot(ctx context.Context) (context.Context, *store.Snapshot) {
	if p.opts.Live == nil {
		return ctx, nil
	}
	snap, err := p.opts.Live.Snapshot(ctx)
	if err != nil {
		p.log.Warn("settings unreadable; not rate limiting", "err", err)
		return ctx, nil
	}
	return p.opts.Live.WithSnapshot(ctx, snap), &snap
}

// emit publishes the proxy hop's event; without a bus it costs a nil check.
func (p *Proxy) emit(id Identity, r *http.Request, rid string, peer netip.Addr, start time.Time, status int, bytes int64) {
	bus := p.opts.Events
	if bus == nil {
		return
	}
	mode := events.ModeRouter
	if id.NetworkID != "" {
		mode = events.ModeDHCP
	}
	bus.Publish(events.Event{
		Time: start, RequestID: rid, Hop: events.HopProxy, Namespace: id.Namespace, Mode: mode, SourceIP: peer.String(),
		Method: r.Method, Path: r.URL.Path, Status: status, Bytes: bytes, Duration: time.Since(start),
	})
}

// peerIP is the guest's address, unmapped (a dual-stack listener sees
// IPv4 guests as ::ffff:a.b.c.d).
func peerIP(remote string) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("peer %q: %w", remote, err)
	}
	return ap.Addr().Unmap().WithZone(""), nil
}

// agentError answers as haproxy does when its server fails: 503 when the
// agent cannot be reached, 504 when it does not answer in time, 502 for a
// broken answer.
func (p *Proxy) agentError(w http.ResponseWriter, r *http.Request, err error) int {
	code := http.StatusBadGateway
	var op *net.OpError
	var ne net.Error
	switch {
	case errors.As(err, &op) && op.Op == "dial":
		code = http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		code = http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		return 0 // the guest went away; nobody to answer
	}
	p.log.Warn("agent hop failed", "socket", p.opts.AgentSocket, "status", code, "err", err)
	haproxyError(w, code)
	return code
}

// haproxy's built-in error pages, so a guest sees what it would see in
// front of neutron's haproxy.
var haproxyPages = map[int]string{
	http.StatusBadRequest:         "<html><body><h1>400 Bad request</h1>\nYour browser sent an invalid request.\n</body></html>\n",
	http.StatusTooManyRequests:    "<html><body><h1>429 Too Many Requests</h1>\nYou have sent too many requests in a given amount of time.\n</body></html>\n",
	http.StatusBadGateway:         "<html><body><h1>502 Bad Gateway</h1>\nThe server returned an invalid or incomplete response.\n</body></html>\n",
	http.StatusServiceUnavailable: "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n",
	http.StatusGatewayTimeout:     "<html><body><h1>504 Gateway Time-out</h1>\nThe server didn't respond in time.\n</body></html>\n",
}

func haproxyError(w http.ResponseWriter, code int) {
	h := w.Header()
	h.Set("Content-Type", "text/html")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "close")
	w.WriteHeader(code)
	fmt.Fprint(w, haproxyPages[code])
}
