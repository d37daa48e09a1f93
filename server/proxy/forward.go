package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// agentHost is the Host the agent is sent; the transport dials the socket
// whatever it says.
const agentHost = "metadata-agent"

// hopHeaders are the hop-by-hop headers (RFC 9110 §7.6.1) a proxy must not
// pass on, in either direction; httputil.ReverseProxy's list.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func isHopHeader(k []byte) bool { return inNames(k, hopHeaders) }

// framing are the guest's headers the proxy states itself on the agent's
// hop (its own Host and body framing) or has acted on already: the body is
// read whole, so Expect: 100-continue was the guest's hop's business.
var framing = []string{"Host", "Content-Length", "Expect"}

func isFraming(k []byte) bool { return inNames(k, framing) }

// inNames says whether header name k is one of names, in any case.
func inNames(k []byte, names []string) bool {
	for _, n := range names {
		if len(k) == len(n) && bytes.EqualFold(k, []byte(n)) {
			return true
		}
	}
	return false
}

// errBadHeader is a guest header that cannot be sent on: the guest gets 400.
var errBadHeader = errors.New("invalid header")

// guestHeaders calls emit for every guest header that may reach the agent:
// not hop-by-hop, not named by a Connection header, not framing, not an
// identity header in any spelling (isIdentity). It reports whether the
// guest's TE named trailers, the one hop-by-hop value a proxy keeps
// (ReverseProxy does). Names and values fasthttp let through are checked
// again so that nothing written on could split the agent's request.
func guestHeaders(h *fasthttp.RequestHeader, emit func(k, v []byte)) (trailers bool, err error) {
	var connBuf [2][]byte
	conns := connBuf[:0] // Connection values, usually none
	for k, v := range h.All() {
		switch {
		case bytes.EqualFold(k, []byte("Connection")):
			conns = append(conns, v)
		case bytes.EqualFold(k, []byte("Te")):
			trailers = trailers || hasToken(v, "trailers")
		}
	}
	for k, v := range h.All() {
		if isHopHeader(k) || isFraming(k) || isIdentity(k) || named(conns, k) {
			continue
		}
		if !validName(k) || !validValue(v) {
			return false, fmt.Errorf("guest header %q: %w", k, errBadHeader)
		}
		emit(k, v)
	}
	return trailers, nil
}

// named says whether a Connection header names k.
func named(conns [][]byte, k []byte) bool {
	for _, v := range conns {
		if hasToken(v, string(k)) {
			return true
		}
	}
	return false
}

// hasToken says whether the comma-separated list v holds tok, in any case.
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		item := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		if bytes.EqualFold(bytes.TrimSpace(item), []byte(tok)) {
			return true
		}
	}
	return false
}

// writeAgentRequest writes the agent's request for the guest's req in
// HTTP/1.1 wire form: its method, path and query as the guest sent them,
// the headers guestHeaders keeps, then the peer, the listener's router or
// network and the request id, then the body (already read whole), chunked
// when the guest chunked it.
func writeAgentRequest(bw *bufio.Writer, req *fasthttp.Request, peer netip.Addr, lid *listenerID, rid string) error {
	target := agentURI(req)
	// The agent parses the target as net/http does; one it cannot parse
	// (a bad %-escape) is refused here, as the in-process path does.
	if _, err := url.ParseRequestURI(string(target)); err != nil {
		return fmt.Errorf("guest request uri: %w", errBadHeader)
	}
	bw.Write(req.Header.Method())
	bw.WriteByte(' ')
	bw.Write(target)
	bw.WriteString(" HTTP/1.1\r\nHost: " + agentHost + "\r\n")
	trailers, err := guestHeaders(&req.Header, func(k, v []byte) {
		bw.Write(k)
		bw.WriteString(": ")
		bw.Write(v)
		bw.WriteString("\r\n")
	})
	if err != nil {
		return err
	}
	if trailers {
		bw.WriteString("Te: trailers\r\n")
	}
	var num [64]byte
	bw.WriteString("X-Forwarded-For: ")
	bw.Write(peer.AppendTo(num[:0]))
	bw.WriteString("\r\n")
	bw.Write(lid.line)
	bw.WriteString("X-Request-Id: ")
	bw.WriteString(rid)
	bw.WriteString("\r\n")
	body := req.Body()
	switch {
	case req.Header.ContentLength() == -1:
		bw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		if len(body) > 0 {
			bw.Write(strconv.AppendInt(num[:0], int64(len(body)), 16))
			bw.WriteString("\r\n")
			bw.Write(body)
			bw.WriteString("\r\n")
		}
		bw.WriteString("0\r\n\r\n")
	case len(body) > 0 || req.Header.IsPost() || req.Header.IsPut():
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(num[:0], int64(len(body)), 10))
		bw.WriteString("\r\n\r\n")
		bw.Write(body)
	default:
		bw.WriteString("\r\n")
	}
	return nil
}

// agentURI is the guest's path and query as it sent them (an absolute
// form's scheme and host dropped).
func agentURI(req *fasthttp.Request) []byte {
	u := req.URI()
	path := u.PathOriginal()
	if len(path) == 0 {
		path = []byte("/")
	}
	q := u.QueryString()
	if len(q) == 0 {
		return path
	}
	b := make([]byte, 0, len(path)+1+len(q))
	return append(append(append(b, path...), '?'), q...)
}

// forward sends the guest's request to the agent's socket and relays its
// answer, returning the status and body bytes the guest got.
func (p *Proxy) forward(ctx *fasthttp.RequestCtx, peer netip.Addr, lid *listenerID, rid string) (int, int64) {
	req := &ctx.Request
	replayable := len(req.Body()) == 0 && req.Header.ContentLength() != -1
	ac, err := p.transport.send(replayable, func(bw *bufio.Writer) error {
		return writeAgentRequest(bw, req, peer, lid, rid)
	})
	if errors.Is(err, errBadHeader) {
		p.logRefusal(ctx, lid.id, rid, http.StatusBadRequest, err)
		haproxyError(ctx, http.StatusBadRequest)
		return http.StatusBadRequest, 0
	}
	if err != nil {
		return p.agentError(ctx, err), 0
	}
	resp := &ctx.Response
	reuse, headOK, err := readAnswer(resp, ac.br, ctx.IsHead())
	if err != nil {
		ac.c.Close()
		if headOK {
			// A cut answer must not pass for a whole one.
			p.log.Warn("agent answer cut short", "socket", p.opts.AgentSocket, "err", err)
			abort(ctx)
			return http.StatusBadGateway, 0
		}
		return p.agentError(ctx, err), 0
	}
	if reuse {
		p.transport.put(ac)
	} else {
		ac.c.Close()
	}
	cleanAnswer(&resp.Header)
	return resp.StatusCode(), int64(len(resp.Body()))
}

// maxInterim bounds the 1xx answers skipped before the final one.
const maxInterim = 8

// readAnswer reads the agent's answer into resp, whole: headOK says its
// head had arrived (a failure past it is a cut answer), reuse that the
// connection can carry another request.
func readAnswer(resp *fasthttp.Response, br *bufio.Reader, head bool) (reuse, headOK bool, err error) {
	if err := resp.Header.Read(br); err != nil {
		return false, false, err
	}
	for n := 0; resp.StatusCode() < 200; n++ {
		if n == maxInterim {
			return false, false, errors.New("agent answer: too many interim answers")
		}
		if err := resp.Header.Read(br); err != nil {
			return false, false, err
		}
	}
	code := resp.StatusCode()
	reuse = !resp.Header.ConnectionClose() && resp.Header.ContentLength() != -2
	if head || code == http.StatusNoContent || code == http.StatusNotModified {
		return reuse, true, nil
	}
	if err := resp.ReadBody(br, maxAnswerBytes); err != nil {
		return false, true, fmt.Errorf("agent answer body: %w", err)
	}
	if resp.Header.ContentLength() == -1 {
		if err := resp.Header.ReadTrailer(br); err != nil {
			return false, true, fmt.Errorf("agent answer trailer: %w", err)
		}
	}
	return reuse, true, nil
}

// cleanAnswer drops the agent's hop-by-hop headers and those its
// Connection header names; fasthttp frames the guest's answer itself.
func cleanAnswer(h *fasthttp.ResponseHeader) {
	hop := false
	var conns []string
	for k, v := range h.All() {
		if isHopHeader(k) {
			hop = true
			if bytes.EqualFold(k, []byte("Connection")) {
				conns = append(conns, string(v))
			}
		}
	}
	if !hop {
		return
	}
	for _, v := range conns {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		if k != "Transfer-Encoding" {
			h.Del(k)
		}
	}
	h.ResetConnectionClose()
}

// removeHopByHop deletes the hop-by-hop headers and every header the
// Connection header names from an in-process agent's answer.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// outRequest is the agent's request for an in-process agent: the same
// headers, path and body writeAgentRequest puts on the socket, under ctx
// (Serve's, with the settings snapshot and the guest's hang-up).
func outRequest(ctx context.Context, req *fasthttp.Request, peer netip.Addr, lid *listenerID, rid string) (*http.Request, error) {
	h := make(http.Header, 8)
	trailers, err := guestHeaders(&req.Header, func(k, v []byte) {
		key := string(k)
		h[key] = append(h[key], string(v))
	})
	if err != nil {
		return nil, err
	}
	if trailers {
		h["Te"] = []string{"trailers"}
	}
	h["X-Forwarded-For"] = []string{peer.String()}
	h[lid.hkey] = lid.val
	h["X-Request-Id"] = []string{rid}
	u, err := url.ParseRequestURI(string(agentURI(req)))
	if err != nil {
		return nil, fmt.Errorf("guest request uri: %w", errBadHeader)
	}
	u.Scheme, u.Host = "http", agentHost
	out := &http.Request{
		Method:     string(req.Header.Method()),
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Host:       agentHost,
	}
	if body := req.Body(); len(body) > 0 || req.Header.ContentLength() == -1 {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		if req.Header.ContentLength() == -1 {
			out.ContentLength = -1
		}
	}
	return out.WithContext(ctx), nil
}

// roundTrip carries the guest's request to the in-process agent and
// relays its answer, returning the status and body bytes the guest got.
func (p *Proxy) roundTrip(rctx context.Context, ctx *fasthttp.RequestCtx, peer netip.Addr, lid *listenerID, rid string) (status int, n int64) {
	rctx, stop := watchGuest(rctx, ctx.Conn())
	defer stop()
	out, err := outRequest(rctx, &ctx.Request, peer, lid, rid)
	if err != nil {
		p.logRefusal(ctx, lid.id, rid, http.StatusBadRequest, err)
		haproxyError(ctx, http.StatusBadRequest)
		return http.StatusBadRequest, 0
	}
	defer func() {
		// fasthttp recovers no panic: an agent handler's would end serve.
		if v := recover(); v != nil {
			p.log.Error("agent handler panicked", "request_id", rid, "panic", v, "stack", string(debug.Stack()))
			haproxyError(ctx, http.StatusBadGateway)
			status, n = http.StatusBadGateway, 0
		}
	}()
	resp, err := p.rt.RoundTrip(out)
	if err != nil {
		return p.agentError(ctx, err), 0
	}
	defer resp.Body.Close()
	removeHopByHop(resp.Header)
	rh := &ctx.Response.Header
	for k, vs := range resp.Header {
		if k == "Content-Length" {
			continue // fasthttp states the length of the body it sends
		}
		for _, v := range vs {
			rh.Add(k, v)
		}
	}
	ctx.SetStatusCode(resp.StatusCode)
	if ctx.IsHead() {
		if resp.ContentLength >= 0 {
			rh.SetContentLength(int(resp.ContentLength))
		}
		return resp.StatusCode, 0
	}
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	n, err = io.CopyBuffer(ctx.Response.BodyWriter(), resp.Body, *buf)
	if err != nil {
		p.log.Warn("agent answer cut short", "err", err)
		abort(ctx)
		return http.StatusBadGateway, 0
	}
	return resp.StatusCode, n
}

// copyBufs are the buffers in-process answers are copied through: metadata
// answers are small, so one 8 KiB buffer per request in flight, reused.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}

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
