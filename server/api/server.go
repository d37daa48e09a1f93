// Package api is mdctl's nova-compatible metadata API (nova's
// MetadataRequestHandler, port 8775): it identifies the instance behind a
// request (a signed X-Instance-ID from the agent, or the peer address),
// serves the documents server/metadata builds, the password endpoint, and
// caches built metadata. It answers byte for byte as nova and webob do,
// status codes and error pages included. It must never trust an unsigned
// instance id, and never build documents itself.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/server/metadata"
	"github.com/mdctl/mdctl/server/vendordata"
	"github.com/mdctl/mdctl/store"
)

// DefaultCacheEntries bounds each of the caches (by instance id, by peer
// address) when Options.CacheEntries is 0.
const DefaultCacheEntries = 65536

// Options are what a Server needs.
type Options struct {
	Store store.Store
	// Live gives the generation and settings in force; nil means
	// store.NewLive(Store, nil) (no process overrides).
	Live       *store.Live
	Logger     *slog.Logger
	Now        func() time.Time
	HTTPClient *http.Client // for dynamic vendordata; nil gives one with nova's timeouts
	// CacheEntries bounds the metadata cache; 0 means DefaultCacheEntries.
	CacheEntries int
	// Events receives one event per request; nil means none.
	Events *events.Bus
	// HealthcheckDisableFile is oslo's disable_by_file_path for
	// /healthcheck: while it exists, /healthcheck answers 503 (to drain an
	// API from a load balancer). "" means none.
	HealthcheckDisableFile string
}

// Server is the metadata API. It is safe for concurrent use.
type Server struct {
	store  store.Store
	live   *store.Live
	log    *slog.Logger
	now    func() time.Time
	vendor vendordata.Fetcher
	events *events.Bus

	byID, byIP    *cache
	signers       signers
	ids           requestIDs
	healthDisable string
	// badSignatures counts the 403s for a signature that did not match.
	badSignatures *events.Counter
}

// New returns a Server; it does no I/O.
func New(o Options) *Server {
	s := &Server{
		store:  o.Store,
		live:   o.Live,
		log:    o.Logger,
		now:    o.Now,
		vendor: vendordata.Fetcher{Client: o.HTTPClient},
		events: o.Events,
		ids:    newRequestIDs(),

		badSignatures: o.Events.Metrics().Counter(events.SignatureMismatches),

		healthDisable: o.HealthcheckDisableFile,
	}
	if s.live == nil {
		s.live = store.NewLive(o.Store, nil)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	n := o.CacheEntries
	if n <= 0 {
		n = DefaultCacheEntries
	}
	s.byID, s.byIP = newCache(n), newCache(n)
	return s
}

// Handler returns the HTTP handler: the metadata tree behind nova's
// pipeline (with /healthcheck), plus mdctl's /healthz.
func (s *Server) Handler() http.Handler { return s }

// Run serves on ln until ctx is cancelled, then shuts down gracefully,
// letting requests in flight finish for up to 10 seconds.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       90 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("metadata API listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("metadata API on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("metadata API shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metadata API on %s: %w", ln.Addr(), err)
	}
	return nil
}

// ServeHTTP answers one request as a deployed nova-api-metadata: nova's
// paste pipeline (pipeline.go), then MetadataRequestHandler.__call__.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rid := s.ids.echo(w, r)
	var e *entry // the instance identified, for the event
	if s.events != nil {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		defer func() { s.emit(r, rid, start, rec, e) }()
		w = rec
	}
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		// The access log costs allocations, so only when asked for.
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		defer func() {
			s.events.ProbeLog(s.log, r.URL.Path).Debug("request", "request_id", rid, "method", r.Method, "path", r.URL.Path,
				"remote", r.RemoteAddr, "status", rec.status, "bytes", rec.bytes, "duration", time.Since(start))
		}()
		w = rec
	}
	if writeEventletRefusal(w, r) {
		return
	}
	if r.URL.Path == HealthPath && !viaChain(r) {
		s.health(w, r)
		return
	}
	path, ok := pipelinePath(r)
	switch {
	case !ok:
		writeBare500(w)
		return
	case path == HealthcheckPath:
		s.healthcheck(w, r)
		return
	}
	now := s.now()
	if metadata.IsRoot(path) {
		resp := metadata.RootListing(now)
		writeOK(w, r, resp)
		return
	}
	snap, err := s.live.Snapshot(r.Context())
	if err != nil {
		s.logger(rid).Log(r.Context(), store.LogLevel(err), "Failed to read settings", "error", err)
		writeError(w, r, errorPage{http.StatusInternalServerError, explainUnknown})
		return
	}
	if snap.Config.ServiceMetadataProxy {
		e = s.identifyByHeaders(w, r, rid, snap, now)
	} else {
		if r.Header.Get("X-Instance-Id") != "" {
			s.logger(rid).Warn("X-Instance-ID present in request headers. The " +
				"'service_metadata_proxy' option must be enabled to process this header.")
		}
		e = s.identifyByPeer(w, r, rid, snap, now)
	}
	if e == nil {
		return // identification answered already
	}
	if s.sessionToken(w, r, path, snap.Config, e, now) {
		return
	}
	s.serve(w, r, rid, path, snap.Config, e)
}

// serve answers a path for an identified instance.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, rid, path string, cfg store.Config, e *entry) {
	resp, err := e.md.Lookup(path)
	switch {
	case err == nil:
		writeOK(w, r, resp)
	case errors.Is(err, metadata.ErrPassword):
		s.password(w, r, rid, e.instanceID)
	case errors.Is(err, metadata.ErrVendorData2):
		s.vendorData2(w, r, rid, cfg, e)
	case errors.Is(err, metadata.ErrNotFound):
		writeError(w, r, errorPage{http.StatusNotFound, explainNotFound})
	default:
		// ErrLeafChild is nova's TypeError: an unhandled exception, so
		// eventlet's bare 500. Anything else unexpected answers the same.
		if !errors.Is(err, metadata.ErrLeafChild) {
			s.logger(rid).Error("metadata lookup failed", "path", path, "instance", e.instanceID, "error", err)
		}
		writeBare500(w)
	}
}

// vendorData2 serves vendor_data2.json as nova's _vendor_data2 does: the
// DynamicJSON targets asked now, for this request. With
// vendordata_dynamic_failure_fatal a failing target's error escapes
// (vendordata_dynamic.py _do_request re-raises it): eventlet's bare 500,
// for this document only.
func (s *Server) vendorData2(w http.ResponseWriter, r *http.Request, rid string, cfg store.Config, e *entry) {
	log := s.logger(rid).With("instance", e.instanceID)
	answers, err := s.vendor.Dynamic(r.Context(), log, cfg, e.inst)
	if err != nil {
		log.Error("vendor_data2.json", "error", err)
		writeBare500(w)
		return
	}
	resp, warnings := e.md.VendorData2(answers)
	for _, msg := range warnings {
		log.Warn(msg)
	}
	writeOK(w, r, resp)
}

// writeOK sends a document as webob does: the content type with webob's
// charset rule, the exact length, and no body for HEAD.
func writeOK(w http.ResponseWriter, r *http.Request, resp metadata.Response) {
	h := w.Header()
	h["Content-Type"] = webobContentType(resp.ContentType)
	h["Content-Length"] = []string{strconv.Itoa(len(resp.Body))}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(resp.Body)
	}
}

// webobContentType applies webob's Response.content_type setter to a bare
// type: text types inherit the default response's "; charset=UTF-8".
func webobContentType(ct string) []string {
	switch ct {
	case "", "text/plain":
		return ctypePlain // nova's default MIME type is text/plain
	case "application/json":
		return ctypeJSON
	case "text/html":
		return ctypeHTML
	}
	if len(ct) > 5 && ct[:5] == "text/" && !containsByte(ct, ';') {
		return []string{ct + "; charset=UTF-8"}
	}
	return []string{ct}
}

func containsByte(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}

// health answers HealthPath, mdctl's own check: 200 "ok" when the store
// answers, 503 naming the fault when not. Unlike /healthcheck (which says
// only that the process is up, as oslo's does) it proves the API can
// build metadata. A request that came through the agent (it always sets
// X-Forwarded-For) is a guest's, and gets nova's answer instead: nova has
// no /healthz.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if _, err := s.store.Generation(r.Context()); err != nil {
		http.Error(w, "store: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header()["Content-Type"] = ctypePlain
	_, _ = w.Write([]byte("ok"))
}

// viaChain reports a request the agent forwarded for a guest.
func viaChain(r *http.Request) bool {
	_, ok := r.Header["X-Forwarded-For"]
	return ok
}

func (s *Server) logger(rid string) *slog.Logger {
	return s.log.With("request_id", rid)
}

// statusRecorder remembers the status and size for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status, bytes int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}
