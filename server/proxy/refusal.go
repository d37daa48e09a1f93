package proxy

import (
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/mdctl/mdctl/server/events"
)

// asteriskForm reports fasthttp's refusal of a request-target "*" (with a
// method other than OPTIONS, which it accepts); fasthttp quotes the
// target, so no other target reads the same.
func asteriskForm(err error) bool {
	return err != nil && strings.Contains(err.Error(), `: invalid request uri "*"`)
}

// A request refused before it is forwarded (malformed, a bad version,
// too large, too slow) is logged at warning level and published as the
// proxy hop's event, with the guest's address: a guest refused like this
// must leave a trace. The log is rate-limited so a flood of broken
// requests cannot fill a disk; the events and their metrics count all.
const (
	refusalLogBurst  = 10          // lines per window
	refusalLogWindow = time.Minute // after which the count starts again
	// maxTraceBytes bounds the method and target a refusal reports: a
	// refused head may be 16 KiB of anything.
	maxTraceBytes = 256
)

// logGate lets through at most burst calls per window and counts the
// rest, reported with the next call let through.
type logGate struct {
	mu         sync.Mutex
	start      time.Time
	n          int
	suppressed int
}

// allow says whether a line may be logged at now, and how many were
// suppressed since the last one logged.
func (g *logGate) allow(now time.Time) (ok bool, suppressed int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Sub(g.start) >= refusalLogWindow || now.Before(g.start) {
		g.start, g.n = now, 0
	}
	if g.n >= refusalLogBurst {
		g.suppressed++
		return false, 0
	}
	g.n++
	suppressed, g.suppressed = g.suppressed, 0
	return true, suppressed
}

// refused records a request the proxy answered with code before
// forwarding it: one warning (rate-limited) and one event. The caller
// writes the answer.
func (p *Proxy) refused(ctx *fasthttp.RequestCtx, id Identity, code int, why error) {
	start := p.now()
	rid := p.ids.next()
	peer := p.logRefusal(ctx, id, rid, code, why)
	method, target := requestLine(ctx, why)
	p.opts.Events.Publish(events.Event{
		Time: start, RequestID: rid, Hop: events.HopProxy, Namespace: id.Namespace, Mode: id.mode(), SourceIP: peer,
		Method: method, Path: target, Status: code, Duration: time.Since(start), Error: why.Error(),
	})
}

// requestLine is the refused request's method and target, clipped; both
// empty when the head itself could not be read: fasthttp then resets the
// header, whose accessors would say "GET /" whatever the guest sent.
func requestLine(ctx *fasthttp.RequestCtx, why error) (method, target string) {
	if strings.HasPrefix(why.Error(), "error when reading request headers") {
		return "", ""
	}
	return clip(ctx.Request.Header.Method()), clip(ctx.Request.Header.RequestURI())
}

// logRefusal logs a refused request at warning level unless the log's
// gate is shut, and returns the guest's address as logged.
func (p *Proxy) logRefusal(ctx *fasthttp.RequestCtx, id Identity, rid string, code int, why error) (peer string) {
	peer = ctx.RemoteAddr().String()
	if ip, err := remoteIP(ctx.RemoteAddr()); err == nil {
		peer = ip.String()
	}
	ok, suppressed := p.refusals.allow(p.now())
	if !ok {
		return peer
	}
	method, target := requestLine(ctx, why)
	args := []any{"request_id", rid, "listener", id.String(), "src", peer, "status", code,
		"method", method, "target", target, "err", why}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	p.log.Warn("request refused", args...)
	return peer
}

// clip is b as a string, at most maxTraceBytes of it.
func clip(b []byte) string {
	if len(b) > maxTraceBytes {
		b = b[:maxTraceBytes]
	}
	return string(b)
}
