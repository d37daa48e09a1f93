package proxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
)

// hopHeaders are the hop-by-hop headers (RFC 9110 §7.6.1) a proxy must not
// pass on, in either direction; httputil.ReverseProxy's list.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopByHop deletes the hop-by-hop headers and every header the
// Connection header names, keeping only "Te: trailers" as ReverseProxy
// does.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	trailers := false
	for _, v := range h["Te"] {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "trailers") {
				trailers = true
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
	if trailers {
		h["Te"] = []string{"trailers"}
	}
}

// outRequest turns the guest's request into the agent's. The handler owns
// r, so its header map is rewritten in place rather than cloned: hop-by-hop
// headers go, then every identity header the guest sent, then the proxy
// states the peer, the listener's router or network and the request id.
// idValue is shared by every request of a listener and only read.
func outRequest(ctx context.Context, r *http.Request, peer netip.Addr, idKey string, idValue []string, rid string) *http.Request {
	h := r.Header
	if h == nil {
		h = http.Header{}
	}
	removeHopByHop(h)
	scrub(h)
	h["X-Forwarded-For"] = []string{peer.String()}
	h[idKey] = idValue
	h["X-Request-Id"] = []string{rid}
	body := r.Body
	if r.ContentLength == 0 {
		body = nil
	}
	out := &http.Request{
		Method:        r.Method,
		URL:           &url.URL{Scheme: agentURL.Scheme, Host: agentURL.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          body,
		ContentLength: r.ContentLength,
		Host:          agentURL.Host,
	}
	// An in-process agent (and the API behind it) sees the guest's
	// context, so a guest that goes away cancels the whole chain, and the
	// settings snapshot it carries.
	return out.WithContext(ctx)
}

// copyBufs are the buffers answers are relayed through: metadata answers
// are small, so one 8 KiB buffer per request in flight, reused.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}

// forward sends out to the agent and relays its answer byte for byte,
// returning the status and body bytes the guest got (0, 0 when the guest
// went away first).
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, out *http.Request) (int, int64) {
	resp, err := p.rt.RoundTrip(out)
	if err != nil {
		return p.agentError(w, r, err), 0
	}
	defer resp.Body.Close()
	removeHopByHop(resp.Header)
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	n, err := io.CopyBuffer(writerOnly{w}, resp.Body, *buf)
	if err != nil {
		// The head is out: abort the guest's connection so a cut answer
		// cannot pass for a whole one (ReverseProxy does the same).
		p.log.Warn("agent answer cut short", "socket", p.opts.AgentSocket, "err", err)
		panic(http.ErrAbortHandler)
	}
	return resp.StatusCode, n
}

// writerOnly hides the ResponseWriter's ReadFrom, whose content sniffing
// and extra copy the relay does not need.
type writerOnly struct{ io.Writer }

// requestIDs makes the proxy's request ids: "req-" and a UUID-shaped
// value, unique within the process (a random base xor a counter), without
// reading the kernel's random source per request.
type requestIDs struct {
	base [16]byte
	n    atomic.Uint64
}

func newRequestIDs() *requestIDs {
	g := &requestIDs{}
	_, _ = rand.Read(g.base[:]) // never fails on Linux (crypto/rand docs)
	return g
}

func (g *requestIDs) next() string {
	u := g.base
	binary.BigEndian.PutUint64(u[8:], binary.BigEndian.Uint64(u[8:])^g.n.Add(1))
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	var s [4 + 36]byte
	copy(s[:], "req-")
	hex.Encode(s[4:12], u[0:4])
	s[12] = '-'
	hex.Encode(s[13:17], u[4:6])
	s[17] = '-'
	hex.Encode(s[18:22], u[6:8])
	s[22] = '-'
	hex.Encode(s[23:27], u[8:10])
	s[27] = '-'
	hex.Encode(s[28:40], u[10:16])
	return string(s[:])
}
