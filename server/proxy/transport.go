package proxy

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"time"
)

// agentTransport is the proxy's client to the agent's socket: a pool of
// keep-alive unix connections, one request at a time on each.
//
// It is written by hand rather than http.Transport or fasthttp's client
// because the proxy hop is measured against haproxy per request: the
// request is written straight from fasthttp's parse of the guest's into
// the connection's buffer (writeAgentRequest) and the answer read on the
// calling goroutine into the guest's response, with no copy between.
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

// send writes a request with write on a pooled connection (or a new one)
// and waits for the first byte of the answer; the caller reads the rest
// and puts the connection back or closes it. A replayable request that
// fails on a reused connection before any answer (the agent closed it
// while idle) is written once more on a fresh one, as http.Transport does.
func (t *agentTransport) send(replayable bool, write func(*bufio.Writer) error) (*agentConn, error) {
	if replayable {
		if ac := t.get(); ac != nil {
			err := t.start(ac, write)
			if err == nil {
				return ac, nil
			}
			if !retryable(err) {
				return nil, err
			}
		}
	}
	ac, err := t.dial()
	if err != nil {
		return nil, err
	}
	if err := t.start(ac, write); err != nil {
		return nil, err
	}
	return ac, nil
}

// start writes the request and waits for the answer's first byte under
// the exchange's deadline; on failure ac is closed.
func (t *agentTransport) start(ac *agentConn, write func(*bufio.Writer) error) error {
	err := ac.c.SetDeadline(time.Now().Add(t.ResponseHeaderTimeout))
	if err == nil {
		err = write(ac.bw)
	}
	if err == nil {
		err = ac.bw.Flush()
	}
	if err == nil {
		_, err = ac.br.Peek(1)
	}
	if err != nil {
		ac.c.Close()
		return err
	}
	return nil
}

// retryable says whether a failure on a reused connection means only that
// the agent had closed it: no timeout, and no request of the guest's
// refused before it reached the connection.
func retryable(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errBadHeader) {
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

// validName is RFC 9110's token: what a header name may be.
func validName(k []byte) bool {
	if len(k) == 0 {
		return false
	}
	for _, c := range k {
		if c <= ' ' || c >= 0x7f || c == ':' || c == '(' || c == ')' || c == ',' || c == '/' ||
			c == ';' || c == '<' || c == '=' || c == '>' || c == '?' || c == '@' || c == '[' ||
			c == '\\' || c == ']' || c == '{' || c == '}' || c == '"' {
			return false
		}
	}
	return true
}

// validValue refuses what would end the header line early.
func validValue(v []byte) bool {
	for _, c := range v {
		if c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}
