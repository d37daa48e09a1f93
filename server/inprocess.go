package server

import (
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
)

// handlerTransport carries the agent's requests to an API in the same
// process by calling its handler: the same request, headers, identification
// and answer as over TCP, without a loopback connection, a second HTTP
// parse and a goroutine hand-off per request. Only serve uses it, when it
// runs both components; an agent on another node (or another serve) still
// talks HTTP, and every failure that needs two processes stays possible
// there.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	in := req.Clone(req.Context())
	// A server sees header names canonical whatever the client wrote
	// ("X-Instance-ID" arrives as "X-Instance-Id"); so must the handler.
	in.Header = make(http.Header, len(req.Header))
	for k, vs := range req.Header {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		in.Header[ck] = append(in.Header[ck], vs...)
	}
	in.RequestURI = req.URL.RequestURI()
	in.RemoteAddr = "127.0.0.1:0" // the agent's own address, as the API would see it
	in.Host = req.URL.Host
	if in.Body == nil {
		in.Body = http.NoBody
	}
	rec := &recorder{header: http.Header{}}
	t.h.ServeHTTP(rec, in)
	return rec.response(req), nil
}

// recorder is the API's ResponseWriter for handlerTransport.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
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

func (r *recorder) response(req *http.Request) *http.Response {
	r.WriteHeader(http.StatusOK)
	n := int64(r.body.Len())
	if cl, err := strconv.ParseInt(r.header.Get("Content-Length"), 10, 64); err == nil && req.Method == http.MethodHead {
		n = cl // HEAD: the length of the body a GET would have had
	}
	return &http.Response{
		Status:        strconv.Itoa(r.status) + " " + http.StatusText(r.status),
		StatusCode:    r.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        r.header,
		Body:          io.NopCloser(&r.body),
		ContentLength: n,
		Request:       req,
	}
}
