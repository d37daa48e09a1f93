package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"time"
)

// agentTransport is the proxy's client to the agent: HTTP/1.1 over a pool
// of keep-alive unix-socket connections, one request at a time on each.
//
// It replaces http.Transport on the hot path because the proxy hop is
// measured against haproxy per request: http.Transport runs two goroutines
// per connection (a request crosses three of them) and copies headers,
// where this writes the request straight into the connection's buffer and
// reads the answer on the calling goroutine.
type agentTransport struct {
	sock string
	// ResponseHeaderTimeout bounds a whole exchange with the agent (write,
	// answer, body): haproxy's `timeout server`. Tests shorten it.
	ResponseHeaderTimeout time.Duration
	maxIdle               int

	mu   sync.Mutex
	idle []*agentConn
}

// agentConn is one connection to the agent with its buffers.
type agentConn struct {
	c  net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

func newAgentTransport(sock string, maxIdle int) *agentTransport {
	return &agentTransport{sock: sock, ResponseHeaderTimeout: ServerTimeout, maxIdle: maxIdle}
}

// RoundTrip sends req on a pooled connection (or a new one) and returns
// the answer; the connection goes back to the pool once the body is read
// to its end and closed. A request without a body that fails on a reused
// connection before any answer (the agent closed it while idle) is sent
// once more on a fresh one, as http.Transport does.
func (t *agentTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	hasBody := req.Body != nil && req.Body != http.NoBody
	if !hasBody {
		if ac := t.get(); ac != nil {
			resp, err := t.exchange(ac, req, hasBody)
			if err == nil || !retryable(err) {
				return resp, err
			}
		}
	}
	ac, err := t.dial()
	if err != nil {
		return nil, err
	}
	return t.exchange(ac, req, hasBody)
}

// retryable says whether a failure on a reused connection means only that
// the agent had closed it: nothing of an answer arrived.
func retryable(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return true
}

func (t *agentTransport) get() *agentConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.idle)
	if n == 0 {
		return nil
	}
	ac := t.idle[n-1]
	t.idle[n-1] = nil
	t.idle = t.idle[:n-1]
	return ac
}

func (t *agentTransport) put(ac *agentConn) {
	t.mu.Lock()
	if len(t.idle) < t.maxIdle {
		t.idle = append(t.idle, ac)
		ac = nil
	}
	t.mu.Unlock()
	if ac != nil {
		ac.c.Close()
	}
}

func (t *agentTransport) dial() (*agentConn, error) {
	c, err := net.DialTimeout("unix", t.sock, DialTimeout)
	if err != nil {
		return nil, err
	}
	return &agentConn{c: c, br: bufio.NewReaderSize(c, 4096), bw: bufio.NewWriterSize(c, 4096)}, nil
}

// CloseIdleConnections closes every pooled connection.
func (t *agentTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, ac := range idle {
		ac.c.Close()
	}
}

// exchange writes req on ac and reads the answer's head; on failure ac is
// closed.
func (t *agentTransport) exchange(ac *agentConn, req *http.Request, hasBody bool) (*http.Response, error) {
	if err := ac.c.SetDeadline(time.Now().Add(t.ResponseHeaderTimeout)); err != nil {
		ac.c.Close()
		return nil, err
	}
	if err := writeRequest(ac.bw, req, hasBody); err != nil {
		ac.c.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(ac.br, req)
	if err != nil {
		ac.c.Close()
		return nil, err
	}
	resp.Body = &agentBody{rc: resp.Body, ac: ac, t: t, reuse: !resp.Close}
	return resp, nil
}

// writeRequest writes req in HTTP/1.1 wire form. Header names and values
// are the guest's as net/http's server validated them plus the proxy's
// own; any that could split the request are refused, as http.Transport
// refuses them.
func writeRequest(bw *bufio.Writer, req *http.Request, hasBody bool) error {
	uri := req.URL.EscapedPath()
	if uri == "" {
		uri = "/"
	}
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(uri)
	if req.URL.RawQuery != "" {
		bw.WriteByte('?')
		bw.WriteString(req.URL.RawQuery)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vs := range req.Header {
		if !validName(k) {
			return fmt.Errorf("agent request: invalid header name %q", k)
		}
		for _, v := range vs {
			if !validValue(v) {
				return fmt.Errorf("agent request: invalid value for header %q", k)
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if !hasBody {
		if req.Method == http.MethodPost || req.Method == http.MethodPut {
			bw.WriteString("Content-Length: 0\r\n")
		}
		bw.WriteString("\r\n")
		return bw.Flush()
	}
	if req.ContentLength >= 0 {
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(req.ContentLength, 10))
		bw.WriteString("\r\n\r\n")
		if _, err := io.CopyN(bw, req.Body, req.ContentLength); err != nil {
			return fmt.Errorf("agent request body: %w", err)
		}
		return bw.Flush()
	}
	bw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	cw := httputil.NewChunkedWriter(bw)
	if _, err := io.Copy(cw, req.Body); err != nil {
		return fmt.Errorf("agent request body: %w", err)
	}
	if err := cw.Close(); err != nil {
		return err
	}
	bw.WriteString("\r\n")
	return bw.Flush()
}

// validName is RFC 9110's token: what net/http's server accepts.
func validName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || c == ':' || c == '(' || c == ')' || c == ',' || c == '/' ||
			c == ';' || c == '<' || c == '=' || c == '>' || c == '?' || c == '@' || c == '[' ||
			c == '\\' || c == ']' || c == '{' || c == '}' || c == '"' {
			return false
		}
	}
	return true
}

// validValue refuses what would end the header line early.
func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}

// agentBody returns its connection to the pool once read to the end.
type agentBody struct {
	rc    io.ReadCloser
	ac    *agentConn
	t     *agentTransport
	reuse bool
	eof   bool
	done  bool
}

func (b *agentBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// Close gives the connection back when the whole body was read and the
// agent keeps it alive; otherwise the connection is closed, never reused
// mid-answer.
func (b *agentBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	b.rc.Close()
	if b.eof && b.reuse {
		b.t.put(b.ac)
		return nil
	}
	return b.ac.c.Close()
}
