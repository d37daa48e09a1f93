// Package agent is mdctl's neutron-metadata-agent: it listens on a unix
// socket for the namespace proxies, resolves (router|network, source ip) to
// the one port holding that address, signs the port's instance id with the
// shared secret and forwards the request to the metadata API.
//
// It owns the socket, the lookup cache and the hop to the API. It must never
// be reachable from a guest (it trusts X-Forwarded-For and X-Neutron-*-ID,
// which only the proxy may set) and must never pass a guest's own headers on.
package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/mdctl/mdctl/internal/sockopt"
	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/store"
)

// Timeouts and limits of the agent's two hops.
const (
	// APITimeout bounds a whole request to the API, as neutron's
	// requests.request(timeout=60).
	APITimeout = 60 * time.Second
	// DialTimeout bounds connecting to one API, so an API that is down
	// costs a guest little (the next listed replica is asked, or the guest
	// gets 503) instead of APITimeout: the kernel resends a lost SYN after
	// 1 s, so 2 s allows one loss and a second is a dead host.
	DialTimeout = 2 * time.Second
	// MaxBodyBytes bounds a request body. neutron reads one recv(4096) of
	// the whole request; the largest legitimate body is the 1020-byte
	// password POST, so 4096 bytes of body alone is comfortably above it.
	MaxBodyBytes = 4096
	// maxHeaderBytes bounds the request head from the proxy.
	maxHeaderBytes = 16 << 10
	// idleConnsPerHost sizes the keep-alive pool to the API for a boot
	// storm: many guests asking at once all go to one host.
	idleConnsPerHost = 256
)

// Options configure an Agent.
type Options struct {
	// Store is read for ports; Live is built from it when nil.
	Store store.Reader
	// Live gives the settings in force (shared secret, API address) and
	// the store generation, per request.
	Live *store.Live
	// SocketPath is the unix socket the proxies connect to.
	SocketPath string
	// SocketMode is the socket file's mode; 0 means 0660.
	SocketMode os.FileMode
	// SocketOwner and SocketGroup chown the socket; -1 leaves them.
	SocketOwner, SocketGroup int
	// Listener, when set, is the socket already listening (systemd's, by
	// socket activation: mode and owner are its .socket unit's); Run
	// serves on it and neither makes nor removes a socket file.
	Listener net.Listener
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
	// APIURLs overrides the APIs' base URLs (no trailing slash), in order
	// of preference; by default DefaultAPIURLs: one
	// nova_metadata_protocol://host:nova_metadata_port per host of
	// nova_metadata_host.
	APIURLs func(store.Config) []string
	// APITransport, when set, carries requests to the API instead of the
	// network (serve sets it when the API runs in the same process).
	APITransport http.RoundTripper
	// Events receives one event per request; nil means none.
	Events *events.Bus
}

// Agent is the metadata agent. It is safe for concurrent use.
type Agent struct {
	opts   Options
	log    *slog.Logger
	live   *store.Live
	lookup *resolver
	// api carries requests to the API. It is a RoundTripper, not an
	// http.Client: the client's redirect and timeout machinery cost a
	// third of the in-process hop, and a redirect is never followed anyway
	// (it is an answer to relay per neutron's table, as an unexpected
	// code); the request's context bounds the exchange.
	api     http.RoundTripper
	apis    *replicas
	urls    atomic.Pointer[generationURLs]
	handler http.Handler
	m       agentMetrics
	sigs    signer
}

// generationURLs are the API URLs worked out for one store generation.
type generationURLs struct {
	generation uint64
	urls       []string
}

// apiURLs is Options.APIURLs for snap, worked out once per store
// generation rather than per request (the list is built from settings).
func (a *Agent) apiURLs(snap store.Snapshot) []string {
	if c := a.urls.Load(); c != nil && c.generation == snap.Generation {
		return c.urls
	}
	urls := a.opts.APIURLs(snap.Config)
	a.urls.Store(&generationURLs{generation: snap.Generation, urls: urls})
	return urls
}

// New returns an Agent; it does nothing until Run or Handler is used.
func New(o Options) *Agent {
	if o.SocketMode == 0 {
		o.SocketMode = 0o660
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.APIURLs == nil {
		o.APIURLs = DefaultAPIURLs
	}
	live := o.Live
	if live == nil {
		live = store.NewLive(o.Store, nil)
	}
	a := &Agent{
		opts:   o,
		log:    o.Logger.With("component", "agent"),
		live:   live,
		lookup: newResolver(o.Store),
		api:    cmp.Or[http.RoundTripper](o.APITransport, newTransport()),
	}
	a.apis = &replicas{log: a.log, healthy: a.healthcheck, now: time.Now}
	a.handler = http.HandlerFunc(a.serve)
	a.m = newAgentMetrics(o.Events.Metrics())
	return a
}

// apiDialer connects to an API: within DialTimeout, with TCP_USER_TIMEOUT.
func apiDialer() *net.Dialer {
	return &net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second, Control: sockopt.UserTimeout(UserTimeout)}
}

func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:       nil, // never an environment proxy between agent and API
		DialContext: apiDialer().DialContext,
		// The API's bytes (gzip user data included) are relayed untouched.
		DisableCompression:    true,
		MaxIdleConns:          4 * idleConnsPerHost,
		MaxIdleConnsPerHost:   idleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   DialTimeout,
		ExpectContinueTimeout: time.Second,
	}
}

// Handler serves the agent's protocol; Run serves it on the socket.
func (a *Agent) Handler() http.Handler { return a.handler }

// Run listens on the unix socket (replacing a stale socket file), serves
// until ctx is cancelled, then removes the socket.
func (a *Agent) Run(ctx context.Context) error {
	ln := a.opts.Listener
	if ln == nil {
		var err error
		if ln, err = a.listen(); err != nil {
			return err
		}
		defer os.Remove(a.opts.SocketPath)
	} else if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false) // systemd's socket, kept for the next start
	}
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 30 * time.Second,
		ReadTimeout:       APITimeout,
		WriteTimeout:      APITimeout + 10*time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if a.opts.Listener != nil {
		a.log.Info("agent listening on systemd's socket", "socket", ln.Addr().String())
	} else {
		a.log.Info("agent listening", "socket", a.opts.SocketPath, "mode", fmt.Sprintf("%#o", a.opts.SocketMode))
	}
	select {
	case err := <-errc:
		return fmt.Errorf("agent: serve %s: %w", a.opts.SocketPath, err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		srv.Close()
	}
	if t, ok := a.api.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
	return nil
}

// listen opens the socket. A leftover socket file from a previous run is
// removed first, as neutron's agent unlinks it at start; anything else at
// that path is an error, so a typo cannot delete a real file.
func (a *Agent) listen() (net.Listener, error) {
	p := a.opts.SocketPath
	if p == "" {
		return nil, errors.New("agent: no socket path")
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("agent: socket directory: %w", err)
	}
	if fi, err := os.Lstat(p); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("agent: %s exists and is not a socket; remove it or choose another path", p)
		}
		if err := os.Remove(p); err != nil {
			return nil, fmt.Errorf("agent: remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", p)
	if err != nil {
		return nil, fmt.Errorf("agent: listen on %s: %w", p, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(p, a.opts.SocketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("agent: chmod %s: %w", p, err)
	}
	if a.opts.SocketOwner >= 0 || a.opts.SocketGroup >= 0 {
		if err := os.Lchown(p, a.opts.SocketOwner, a.opts.SocketGroup); err != nil {
			ln.Close()
			return nil, fmt.Errorf("agent: chown %s: %w", p, err)
		}
	}
	return ln, nil
}
