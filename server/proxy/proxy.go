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
	"time"

	"github.com/valyala/fasthttp"

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
	// maxBodyBytes bounds a guest's request body, which the proxy reads
	// whole before forwarding: the only body a guest sends is a password
	// (nova refuses more than 256 bytes).
	maxBodyBytes = 1 << 20
	// maxAnswerBytes bounds an answer the proxy holds before relaying it:
	// far above any metadata document (user data is at most 64 KiB).
	maxAnswerBytes = 64 << 20
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

// mode is the events' word for the listener's mode.
func (id Identity) mode() string {
	if id.RouterID != "" {
		return events.ModeRouter
	}
	return events.ModeDHCP
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
	// ConnsPerSource is the per-source connection cap when Live is nil:
	// 0 takes metadata_proxy_conns_per_source's default, a negative value
	// means no cap (a load generator that is one source).
	ConnsPerSource int
	// RequestTimeout bounds reading a whole request from its first byte
	// (haproxy's timeout http-request; HeaderTimeout when 0): a guest
	// trickling a byte at a time is answered 408 and cut after it.
	RequestTimeout time.Duration
}

// Proxy forwards guests' requests to the agent. One Proxy serves any
// number of listeners; it is safe for concurrent use.
//
// Guests are served by fasthttp rather than net/http's server: the proxy
// hop is measured against haproxy per request, and net/http spends most of
// the hop's user time parsing into maps, in a background read per request
// and in its response writer, where fasthttp parses into reused buffers on
// pooled goroutines. The agent's request is written straight from that
// parse into a pooled unix connection (transport.go).
type Proxy struct {
	opts      Options
	log       *slog.Logger
	transport *agentTransport
	rt        http.RoundTripper // Options.AgentTransport; nil: the socket
	ids       *requestIDs
	now       func() time.Time // the rate limiter's clock; tests move it
	refusals  logGate          // rate-limits the log of refused requests
	defaults  store.Config     // the settings' defaults, in force without Live
}

// New returns a Proxy; nothing runs until Serve.
func New(o Options) *Proxy {
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = HeaderTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Proxy{
		opts:      o,
		log:       o.Logger.With("component", "proxy"),
		now:       time.Now,
		defaults:  store.DefaultConfig(),
		transport: newAgentTransport(o.AgentSocket, maxIdleAgentConns),
		rt:        o.AgentTransport,
		ids:       newRequestIDs(),
	}
}

// Serve serves one listener for id until ctx is done; the listener is
// closed on return. It returns nil after ctx ends.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener, id Identity) error {
	if err := id.valid(); err != nil {
		ln.Close()
		return err
	}
	ll := p.limitListener(ctx, bareLFListener{ln}, id)
	srv := p.server(ctx, id)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ll) }()
	select {
	case err := <-errc:
		ll.Close()
		ll.closeConns()
		if err == nil {
			err = net.ErrClosed // fasthttp's word for a listener closed under it
		}
		return fmt.Errorf("proxy %s on %s: %w", id, ln.Addr(), err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.ShutdownWithContext(shut); err != nil {
		// Requests still in flight are cut, as http.Server.Close did.
		ll.closeConns()
	}
	ll.Close() // in case Serve had not registered it when Shutdown ran
	<-errc
	return nil
}

// server is one listener's fasthttp server with neutron's haproxy limits:
// `timeout http-request` bounds the whole request from its first byte (its
// body is a password at most), `timeout client` the answer's writing,
// `timeout http-keep-alive` the wait for the next request, tune.bufsize
// the request head.
func (p *Proxy) server(ctx context.Context, id Identity) *fasthttp.Server {
	h := p.handler(ctx, id, newLimiter())
	return &fasthttp.Server{
		Handler:               h,
		ErrorHandler:          p.requestError(id, h),
		HeaderReceived:        guestHost,
		ReadTimeout:           p.opts.RequestTimeout,
		WriteTimeout:          ClientTimeout,
		IdleTimeout:           KeepAliveTimeout,
		ReadBufferSize:        maxHeaderBytes,
		MaxRequestBodySize:    maxBodyBytes,
		NoDefaultServerHeader: true,
		// Date stays on: RFC 9110 §6.6.1 wants one on every 2xx-4xx, and
		// an in-process agent's answer has none. fasthttp writes its own
		// (cached per second) in place of any the agent sent.
		NoDefaultDate:                false,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		SecureErrorLogMessage:        true, // a request's bytes may hold a password
		CloseOnShutdown:              true,
		Logger:                       debugLogger{p.log},
	}
}

// debugLogger puts fasthttp's own messages (a guest's broken connection)
// in the debug log, as http.Server's ErrorLog was.
type debugLogger struct{ log *slog.Logger }

func (l debugLogger) Printf(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, args...))
	}
}

// requestError answers a request fasthttp could not read as haproxy does:
// 400 for anything malformed, a head over tune.bufsize included, 408 when
// the request does not arrive in time, 413 past the body limit. The
// asterisk form with a method other than OPTIONS (GET *), which fasthttp
// refuses (RFC 9112 §3.2.4 allows it for OPTIONS only) and haproxy
// forwards, goes to h as haproxy would send it on (nova answers 404 for
// /*); its headers were never read, so it carries only the proxy's own.
func (p *Proxy) requestError(id Identity, h fasthttp.RequestHandler) func(*fasthttp.RequestCtx, error) {
	return func(ctx *fasthttp.RequestCtx, err error) {
		if asteriskForm(err) {
			method := string(ctx.Request.Header.Method())
			ctx.Request.Reset()
			ctx.Request.Header.SetMethod(method)
			ctx.Request.SetRequestURI("*")
			h(ctx)
			return
		}
		code := http.StatusBadRequest
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			code = http.StatusRequestTimeout
		case errors.Is(err, fasthttp.ErrBodyTooLarge):
			code = http.StatusRequestEntityTooLarge
		}
		p.refused(ctx, id, code, err)
		haproxyError(ctx, code)
	}
}

// listenerID is what a listener states about itself on every request.
type listenerID struct {
	id   Identity
	key  string   // X-Neutron-Router-ID or X-Neutron-Network-ID
	hkey string   // key in http.Header's canonical form
	val  []string // its value, shared by every request and only read
	line []byte   // "key: value\r\n" for the socket path
}

func newListenerID(id Identity) *listenerID {
	l := &listenerID{id: id, key: "X-Neutron-Router-ID", val: []string{id.RouterID}}
	if id.RouterID == "" {
		l.key, l.val = "X-Neutron-Network-ID", []string{id.NetworkID}
	}
	l.hkey = http.CanonicalHeaderKey(l.key)
	l.line = []byte(l.key + ": " + l.val[0] + "\r\n")
	return l
}

// handler is one listener's request handler; base is Serve's context,
// which the agent's requests and settings reads run under.
func (p *Proxy) handler(base context.Context, id Identity, lim *limiter) fasthttp.RequestHandler {
	lid := newListenerID(id)
	limitedLog := newRefusalKind(p.log, p.opts.Events, "rate limited (429)", events.RateLimited, id, func() time.Time { return p.now() })
	return func(ctx *fasthttp.RequestCtx) {
		start := time.Now()
		peer, err := remoteIP(ctx.RemoteAddr())
		if err != nil {
			p.log.Error("peer address", "remote", ctx.RemoteAddr().String(), "err", err)
			haproxyError(ctx, http.StatusBadRequest)
			return
		}
		if !haproxyTarget(ctx.Request.Header.RequestURI()) {
			p.refused(ctx, id, http.StatusBadRequest, errors.New("request target holds '#' or a byte above 0x7e"))
			haproxyError(ctx, http.StatusBadRequest)
			return
		}
		rid := p.ids.next()
		snap := p.settings(base)
		if p.limited(snap, lim, peer) {
			limitedLog.add(peer, "request_id", rid, "method", string(ctx.Method()), "path", string(ctx.Path()))
			haproxyError(ctx, http.StatusTooManyRequests)
			p.emit(id, ctx, rid, peer, start, http.StatusTooManyRequests, 0)
			return
		}
		tokenPut := isTokenPut(ctx)
		if tokenPut && p.forwardedPut(ctx, id) {
			return
		}
		var status int
		var n int64
		if p.rt != nil {
			status, n = p.roundTrip(p.withSnapshot(base, snap), ctx, peer, lid, rid)
		} else {
			status, n = p.forward(ctx, peer, lid, rid)
		}
		if tokenPut && status == http.StatusOK {
			p.tokenHops(ctx, snap)
		}
		if p.log.Enabled(base, slog.LevelDebug) {
			p.opts.Events.ProbeLog(p.log, string(ctx.Path())).Debug("metadata request", "request_id", rid, "listener", id.String(), "src", peer.String(),
				"method", string(ctx.Method()), "path", string(ctx.Path()), "status", status, "duration", time.Since(start))
		}
		p.emit(id, ctx, rid, peer, start, status, n)
	}
}

// settings reads the settings in force; nil without settings.
func (p *Proxy) settings(ctx context.Context) *store.Snapshot {
	if p.opts.Live == nil {
		return nil
	}
	snap, err := p.opts.Live.Snapshot(ctx)
	if err != nil {
		// An outage is logged once where it is noticed (store.LogLevel).
		p.log.Log(ctx, min(store.LogLevel(err), slog.LevelWarn), "settings unreadable; not rate limiting", "err", err)
		return nil
	}
	return &snap
}

// withSnapshot returns ctx carrying snap, so an agent and API in this
// process answer the request with the settings the proxy used, without
// reading them again.
func (p *Proxy) withSnapshot(ctx context.Context, snap *store.Snapshot) context.Context {
	if snap == nil {
		return ctx
	}
	return p.opts.Live.WithSnapshot(ctx, *snap)
}

// emit publishes the proxy hop's event; without a bus it costs a nil check.
func (p *Proxy) emit(id Identity, ctx *fasthttp.RequestCtx, rid string, peer netip.Addr, start time.Time, status int, bytes int64) {
	bus := p.opts.Events
	if bus == nil {
		return
	}
	path := string(ctx.Path())
	probe := false
	if q := ctx.URI().QueryString(); len(q) > 0 {
		probe = bus.IsProbeQuery(path, string(q))
	}
	bus.Publish(events.Event{
		Time: start, RequestID: rid, Hop: events.HopProxy, Namespace: id.Namespace, Mode: id.mode(), SourceIP: peer.String(),
		Method: string(ctx.Method()), Path: path, Status: status, Bytes: bytes, Duration: time.Since(start), Probe: probe,
	})
}

// remoteIP is the guest's address, unmapped (a dual-stack listener sees
// IPv4 guests as ::ffff:a.b.c.d), without formatting and parsing it.
func remoteIP(a net.Addr) (netip.Addr, error) {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap(), nil
		}
	}
	return peerIP(a.String())
}

// peerIP is the guest's address from its string form, unmapped and
// without a zone.
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
func (p *Proxy) agentError(ctx *fasthttp.RequestCtx, err error) int {
	code := http.StatusBadGateway
	var op *net.OpError
	var ne net.Error
	switch {
	case errors.As(err, &op) && op.Op == "dial":
		code = http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		code = http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		abort(ctx) // the guest went away; nobody to answer
		return 0
	}
	p.log.Warn("agent hop failed", "socket", p.opts.AgentSocket, "status", code, "err", err)
	haproxyError(ctx, code)
	return code
}

// abort closes the guest's connection without an answer: what a guest
// sees when an answer was cut, so it cannot pass for a whole one.
func abort(ctx *fasthttp.RequestCtx) {
	ctx.Response.ResetBody()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(net.Conn) {}) // fasthttp closes the connection after it
}

// haproxy's built-in error pages, so a guest sees what it would see in
// front of neutron's haproxy.
var haproxyPages = map[int]string{
	http.StatusBadRequest:            "<html><body><h1>400 Bad request</h1>\nYour browser sent an invalid request.\n</body></html>\n",
	http.StatusForbidden:             "<html><body><h1>403 Forbidden</h1>\nRequest forbidden by administrative rules.\n</body></html>\n",
	http.StatusRequestTimeout:        "<html><body><h1>408 Request Time-out</h1>\nYour browser didn't send a complete request in time.\n</body></html>\n",
	http.StatusRequestEntityTooLarge: "<html><body><h1>413 Payload Too Large</h1>\nThe request entity exceeds the maximum allowed.\n</body></html>\n",
	http.StatusTooManyRequests:       "<html><body><h1>429 Too Many Requests</h1>\nYou have sent too many requests in a given amount of time.\n</body></html>\n",
	http.StatusInternalServerError:   "<html><body><h1>500 Internal Server Error</h1>\nAn internal server error occurred.\n</body></html>\n",
	http.StatusBadGateway:            "<html><body><h1>502 Bad Gateway</h1>\nThe server returned an invalid or incomplete response.\n</body></html>\n",
	http.StatusServiceUnavailable:    "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n",
	http.StatusGatewayTimeout:        "<html><body><h1>504 Gateway Time-out</h1>\nThe server didn't respond in time.\n</body></html>\n",
}

// haproxyError answers with haproxy's page for code and closes the
// connection after it, as haproxy does. It is only called before any of
// the agent's answer was kept (a failed head read leaves none).
func haproxyError(ctx *fasthttp.RequestCtx, code int) {
	r := &ctx.Response
	r.ResetBody()
	r.SetStatusCode(code)
	r.Header.SetContentType("text/html")
	r.Header.Set("Cache-Control", "no-cache")
	r.SetConnectionClose()
	r.SetBodyString(haproxyPages[code])
}
