package agent

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/server/metadata"
	"github.com/mdctl/mdctl/store"
)

// Headers the proxy sets and the agent trusts.
const (
	hdrXFF       = "X-Forwarded-For"
	hdrRouterID  = "X-Neutron-Router-ID"
	hdrNetworkID = "X-Neutron-Network-ID"
	hdrRequestID = "X-Request-ID"
)

// Messages neutron answers with.
const (
	msgUnavailable = "The remote metadata server is temporarily unavailable. Please try again later."
	msgUnknown     = "An unknown error has occurred. Please try your request again."
	msgUnexpected  = "Unexpected response code"
)

// SignInstanceID is neutron's sign_instance_id: lowercase hex
// HMAC-SHA256 of the instance id keyed with the shared secret.
func SignInstanceID(secret, instanceID string) string {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(instanceID))
	return hex.EncodeToString(h.Sum(nil))
}

// RequestID returns the request's X-Request-ID, or a fresh one in
// OpenStack's req-<uuid> form.
func RequestID(r *http.Request) string {
	if id := r.Header.Get(hdrRequestID); id != "" && len(id) <= 128 {
		return id
	}
	return "req-" + uuid.NewString()
}

func (a *Agent) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rid := RequestID(r)
	// The request's logger is built only when something is logged: the
	// common, successful request logs at debug, which is usually off.
	rl := &reqLog{base: a.log, rid: rid}
	w.Header().Set(hdrRequestID, rid)
	var (
		sc     scope
		src    source
		msg    string
		m      match
		cached bool
	)
	if a.opts.Events != nil {
		rec := &eventRecorder{ResponseWriter: w}
		w = rec
		defer func() { a.emit(r, rid, start, rec, sc, src, m, cached) }()
	}

	sc, src, msg = identify(r)
	if msg != "" {
		rl.get().Warn("bad proxy request", "reason", msg)
		plain(w, http.StatusBadRequest, msg)
		return
	}
	rl.sc, rl.src = &sc, &src

	body, status := readBody(w, r)
	if status != 0 {
		rl.get().Warn("request body too large", "limit", MaxBodyBytes)
		plain(w, status, "Request is too large.")
		return
	}

	snap, err := a.live.Snapshot(r.Context())
	if err != nil {
		rl.get().Log(r.Context(), store.LogLevel(err), "read settings", "err", err)
		plain(w, http.StatusInternalServerError, msgUnknown)
		return
	}
	m, cached, err = a.lookup.resolve(r.Context(), snap.Generation, sc, src)
	if err != nil {
		rl.get().Log(r.Context(), store.LogLevel(err), "port lookup", "err", err)
		plain(w, http.StatusInternalServerError, msgUnknown)
		return
	}
	if !m.Found() {
		if m.Ports == 0 {
			a.m.noPort.Inc()
			rl.get().Warn(fmt.Sprintf("No port found in network %s with IP address %s", sc.ID, src.IP))
		} else {
			a.m.severalPorts.Inc()
			rl.get().Warn("several ports hold the address", "ports", m.Ports)
		}
		plain(w, http.StatusNotFound, fmt.Sprintf("Instance was not found on %s %s.", sc.Kind, sc.ID))
		return
	}
	rl.m, rl.cached = &m, cached

	code := a.forward(w, r, rl, a.apiURLs(snap), answerWait(snap.Config), body, fwdHeaders{
		xff:       src.IP.String(),
		instance:  m.InstanceID,
		project:   m.ProjectID,
		signature: a.sign(snap.Config.SharedSecret, m.InstanceID),
		requestID: rid,
	})
	if a.log.Enabled(r.Context(), slog.LevelDebug) {
		a.opts.Events.ProbeLog(rl.get(), r.URL.Path).Debug("metadata request", "method", r.Method, "path", r.URL.Path, "status", code, "duration", time.Since(start))
	}
}

// apiPath is the path and query the API is asked for. A target without
// a leading slash (OPTIONS's asterisk form, which the proxy forwards as
// haproxy does) gets one, as neutron's urlunsplit gives it: nova is asked
// for /* and answers 404.
func apiPath(u *url.URL) string {
	p := u.RequestURI()
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}

// reqLog is one request's logger, with what is known of the request so
// far (scope and source, then the instance), built on first use.
type reqLog struct {
	base   *slog.Logger
	rid    string
	sc     *scope
	src    *source
	m      *match
	cached bool
	l      *slog.Logger
}

func (r *reqLog) get() *slog.Logger {
	if r.l != nil {
		return r.l
	}
	attrs := []any{"request_id", r.rid}
	if r.sc != nil {
		attrs = append(attrs, r.sc.Kind, r.sc.ID, "ip", r.src.IP.String())
	}
	if r.m != nil {
		attrs = append(attrs, "instance", r.m.InstanceID, "project", r.m.ProjectID, "cached", r.cached)
	}
	r.l = r.base.With(attrs...)
	return r.l
}

// identify reads the proxy's headers: the scope and the guest's address.
// A non-empty message is a 400 answer.
func identify(r *http.Request) (scope, source, string) {
	netID, routerID := r.Header.Get(hdrNetworkID), r.Header.Get(hdrRouterID)
	var sc scope
	switch {
	case netID != "" && routerID != "":
		return sc, source{}, fmt.Sprintf("Both network %s and router %s defined.", netID, routerID)
	case netID != "":
		sc = scope{Kind: "network", ID: netID}
	case routerID != "":
		sc = scope{Kind: "router", ID: routerID}
	default:
		return sc, source{}, "Neither network nor router defined."
	}
	// Several X-Forwarded-For lines are joined as webob joins them, so a
	// guest-sent value beside the proxy's fails to parse, as in neutron.
	src, err := parseXFF(strings.Join(r.Header.Values(hdrXFF), ", "))
	if err != nil {
		return sc, source{}, err.Error()
	}
	return sc, src, ""
}

// readBody reads a bounded body; a non-zero status is 413.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, int) {
	if r.ContentLength > MaxBodyBytes {
		return nil, http.StatusRequestEntityTooLarge
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, http.StatusRequestEntityTooLarge
	}
	return b, 0 // a short read is forwarded as neutron forwards what it got
}

// fwdHeaders are the only headers the API receives.
type fwdHeaders struct {
	xff, instance, project, signature, requestID string
}

// forward sends the request to the first of the APIs that answers and
// relays the answer per neutron's table. It returns the status written.
// A replica that gives no answer is left for the next at once (failover.go
// says why resending is safe); wait bounds a replica's silence when
// another follows it.
func (a *Agent) forward(w http.ResponseWriter, r *http.Request, rl *reqLog, bases []string, wait time.Duration, body []byte, h fwdHeaders) int {
	ctx, cancel := context.WithTimeout(r.Context(), APITimeout)
	defer cancel()
	if len(bases) == 0 {
		rl.get().Error("no metadata API listed: nova_metadata_host is empty")
		return plain(w, http.StatusServiceUnavailable, msgUnavailable)
	}
	hdr := apiHeaders(h, r.Header)
	path, first, dead := apiPath(r.URL), a.apis.start(bases), ""
	for k := range bases {
		base := strings.TrimRight(bases[(first+k)%len(bases)], "/")
		last := k == len(bases)-1
		actx := ctx
		var silent *time.Timer
		if !last {
			// A replica silent for wait is given up so that the next can
			// answer; an answer in time keeps actx for its body.
			var acancel context.CancelFunc
			actx, acancel = context.WithCancel(ctx)
			defer acancel()
			silent = time.AfterFunc(wait, acancel)
		}
		resp, err := a.try(actx, r.Method, base+path, hdr, body)
		if silent != nil && !silent.Stop() {
			if err == nil { // the answer began as wait ran out: its body is cut off
				resp.Body.Close()
			}
			err = fmt.Errorf("metadata API %s: no answer within %s", base, wait)
		}
		if err == nil {
			defer resp.Body.Close()
			if dead != "" {
				a.apis.answered(dead, base)
			}
			return a.answer(w, resp, rl)
		}
		if last || ctx.Err() != nil {
			return a.forwardError(w, rl.get(), base+path, err)
		}
		a.m.failovers.Inc()
		rl.get().Debug("metadata API gave no answer; asking the next listed", "url", base+path, "err", err)
		if dead == "" {
			dead = base
		}
	}
	panic("unreachable: the last base returns")
}

// apiHeaders are the only headers the API receives: a fresh map, so that
// nothing the guest or proxy sent goes on but the session-token headers.
// Names are in Go's canonical case (HTTP names are case-insensitive),
// which an API in this process then reads without a copy. The values
// share one array: one allocation instead of six.
func apiHeaders(h fwdHeaders, from http.Header) http.Header {
	v := &[6]string{h.xff, h.instance, h.project, h.signature, h.requestID, "mdctl-agent"}
	hdr := http.Header{
		"X-Forwarded-For":         v[0:1:1],
		"X-Instance-Id":           v[1:2:2],
		"X-Tenant-Id":             v[2:3:3],
		"X-Instance-Id-Signature": v[3:4:4],
		"X-Request-Id":            v[4:5:5],
		"User-Agent":              v[5:6:6],
	}
	passTokenHeaders(hdr, from)
	return hdr
}

// try sends one attempt to one API.
func (a *Agent) try(ctx context.Context, method, url string, hdr http.Header, body []byte) (*http.Response, error) {
	var rd io.Reader = http.NoBody
	if len(body) > 0 {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, fmt.Errorf("build API request: %w", err)
	}
	req.Header = hdr
	return a.api.RoundTrip(req)
}

// answer relays the API's answer per neutron's table and returns the
// status written.
func (a *Agent) answer(w http.ResponseWriter, resp *http.Response, rl *reqLog) int {
	switch c := resp.StatusCode; c {
	case http.StatusOK:
	case http.StatusForbidden:
		rl.get().Warn("The remote metadata server responded with Forbidden. This response usually occurs when shared secrets do not match.")
	case http.StatusInternalServerError:
		rl.get().Warn("Remote metadata server experienced an internal server error.")
	case http.StatusBadRequest, http.StatusNotFound, http.StatusConflict,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout,
		// Session tokens' answers (beyond neutron): a missing, invalid or
		// expired token, another method than PUT on the token path.
		http.StatusUnauthorized, http.StatusMethodNotAllowed:
	default:
		rl.get().Warn(msgUnexpected, "code", c)
		return plain(w, http.StatusInternalServerError, msgUnexpected+": "+strconv.Itoa(c))
	}
	return relay(w, resp, rl)
}

// passTokenHeaders carries the session-token headers (AWS IMDSv2, beyond
// neutron, whose agent passes nothing else) between guest and API: the
// token and the TTL asked for to the API, which mints and checks tokens,
// and the TTL granted back.
func passTokenHeaders(to, from http.Header) {
	for _, k := range [...]string{metadata.TokenHeader, metadata.TokenTTLHeader} {
		if v, ok := from[k]; ok {
			to[k] = v
		}
	}
}

// forwardError answers a failed hop: 503 when the API cannot be reached
// (neutron's requests.ConnectionError), 500 otherwise (a read timeout is
// not a ConnectionError in requests, so neutron answers its generic 500).
func (a *Agent) forwardError(w http.ResponseWriter, log *slog.Logger, url string, err error) int {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		a.m.unreachable.Inc()
		log.Warn("metadata API unreachable", "url", url, "err", err)
		return plain(w, http.StatusServiceUnavailable, msgUnavailable)
	}
	if ne := net.Error(nil); errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		a.m.timeouts.Inc()
	} else {
		a.m.apiErrors.Inc()
	}
	log.Error("metadata API request failed", "url", url, "err", err)
	return plain(w, http.StatusInternalServerError, msgUnknown)
}

// relay writes the API's status, Content-Type and body bytes unchanged.
func relay(w http.ResponseWriter, resp *http.Response, rl *reqLog) int {
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	passTokenHeaders(w.Header(), resp.Header) // the TTL a token was granted
	if resp.ContentLength >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, resp.Body); err != nil {
		rl.get().Warn("relay API answer", "err", err)
	}
	return resp.StatusCode
}

// plain writes a text answer and returns its status.
func plain(w http.ResponseWriter, code int, msg string) int {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
	return code
}

// emit publishes the agent hop's event from what serve learnt.
func (a *Agent) emit(r *http.Request, rid string, start time.Time, rec *eventRecorder, sc scope, src source, m match, cached bool) {
	bus := a.opts.Events
	e := events.Event{
		Time: start, RequestID: rid, Hop: events.HopAgent, Method: r.Method, Path: r.URL.Path,
		Status: rec.status(), Bytes: rec.bytes, InstanceID: m.InstanceID, ProjectID: m.ProjectID,
		Probe: bus.IsProbeQuery(r.URL.Path, r.URL.RawQuery),
	}
	switch sc.Kind {
	case "router":
		e.Mode = events.ModeRouter
	case "network":
		e.Mode = events.ModeDHCP
	}
	if src.IP.IsValid() {
		e.SourceIP = src.IP.String()
	}
	if m.Found() {
		if cached {
			a.m.hits.Inc()
		} else {
			a.m.misses.Inc()
		}
	}
	e.Duration = time.Since(start)
	bus.Publish(e)
}

// eventRecorder remembers the status and size for the event.
type eventRecorder struct {
	http.ResponseWriter
	code  int
	bytes int64
}

func (r *eventRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *eventRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *eventRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *eventRecorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}
