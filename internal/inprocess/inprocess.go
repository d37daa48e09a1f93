// Package inprocess carries a request to an http.Handler in the same
// process as a RoundTripper: serve's hops between components it runs
// together, and tests of those hops.
package inprocess

import (
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
)

// Transport carries a request to a handler in the same process by
// calling it: the same request, headers, identification and answer as over
// a connection, without a second HTTP parse, a socket and a goroutine
// hand-off per request. serve uses it when it runs both ends of a hop
// (proxy to agent, agent to API); a component in another process still
// talks over the socket or TCP, and every failure that needs two processes
// stays possible there.
type Transport struct{ Handler http.Handler }

func (t Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	// A shallow copy: handlers only read the request (net/http's rule), so
	// URL and context are shared with the caller's.
	in := new(http.Request)
	*in = *req
	in.Header = canonical(req.Header)
	in.RequestURI = req.URL.RequestURI()
	in.RemoteAddr = "127.0.0.1:0" // the caller's own address, as a server would see it
	in.Host = req.URL.Host
	if in.Body == nil {
		in.Body = http.NoBody
	}
	rec := &recorder{header: http.Header{}}
	t.Handler.ServeHTTP(rec, in)
	return rec.response(req), nil
}

// canonical returns h with the canonical header names a server would see
// ("X-Instance-ID" arrives as "X-Instance-Id"): h itself when they are
// already, else a copy.
func canonical(h http.Header) http.Header {
	same := true
	for k := range h {
		if textproto.CanonicalMIMEHeaderKey(k) != k {
			same = false
			break
		}
	}
	if same {
		return h
	}
	out := make(http.Header, len(h))
	for k, vs := range h {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		out[ck] = append(out[ck], vs...)
	}
	return out
}

// recorder is the handler's ResponseWriter for Transport, then the
// answer's body: one allocation holds status, body and the response.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	resp   http.Response
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

// Read, WriteTo and Close make the recorder the response's body; WriteTo
// spares io.Copy its 32 KiB buffer.
func (r *recorder) Read(p []byte) (int, error)         { return r.body.Read(p) }
func (r *recorder) WriteTo(w io.Writer) (int64, error) { return r.body.WriteTo(w) }
func (r *recorder) Close() error                       { return nil }

func (r *recorder) response(req *http.Request) *http.Response {
	r.WriteHeader(http.StatusOK)
	n := int64(r.body.Len())
	if cl, err := strconv.ParseInt(r.header.Get("Content-Length"), 10, 64); err == nil && req.Method == http.MethodHead {
		n = cl // HEAD: the length of the body a GET would have had
	}
	r.resp = http.Response{
		Status:        strconv.Itoa(r.status) + " " + http.StatusText(r.status),
		StatusCode:    r.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        r.header,
		Body:          r,
		ContentLength: n,
		Request:       req,
	}
	return &r.resp
}
