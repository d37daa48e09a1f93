package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/mdctl/mdctl/server/events"
)

// ErrNotRunning says no serve answers at the address.
var ErrNotRunning = errors.New("no mdctl serve is answering")

// Client reads one serve's admin endpoint.
type Client struct {
	addr string // as given: a socket path or http://host:port
	base string // http://… the requests go to
	hc   *http.Client
	// token is sent as a bearer token to an http:// address: the URL's
	// password (http://:TOKEN@host:port) or $MDCTL_ADMIN_TOKEN.
	token string
}

// NewClient returns a client for addr: a unix socket path, or an
// http://host:port URL.
func NewClient(addr string) (*Client, error) { return NewClientToken(addr, "") }

// NewClientToken is NewClient with the bearer token for an http://
// address given (a token in the URL still wins; "" falls back to
// $MDCTL_ADMIN_TOKEN).
func NewClientToken(addr, token string) (*Client, error) {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		u, err := url.Parse(addr)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("admin address %q: want a socket path or http://host:port", addr)
		}
		tok := token
		if tok == "" {
			tok = os.Getenv(TokenEnv)
		}
		if p, ok := u.User.Password(); ok {
			tok = p
		}
		addr = u.Redacted() // a token in the URL stays out of messages
		u.User = nil
		return &Client{addr: addr, base: strings.TrimRight(u.String(), "/"), token: tok, hc: &http.Client{
			Transport: &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 3 * time.Second}).DialContext},
		}}, nil
	}
	if addr == "" {
		return nil, errors.New("admin address is empty")
	}
	path := addr
	return &Client{addr: addr, base: "http://admin", hc: &http.Client{Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, "unix", path)
		},
	}}}, nil
}

// Addr is the address as given.
func (c *Client) Addr() string { return c.addr }

func (c *Client) get(ctx context.Context, path string) (*http.Response, error) {
	return c.do(ctx, http.MethodGet, path)
}

// MarkProbe asks serve to mark the requests for path as trace's own probe
// for ttl (POST /probes): their events carry probe and metrics count them
// apart from guest requests.
func (c *Client) MarkProbe(ctx context.Context, path string, ttl time.Duration) error {
	resp, err := c.do(ctx, http.MethodPost, "/probes?"+url.Values{"path": {path}, "ttl": {ttl.String()}}.Encode())
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

func (c *Client) do(ctx context.Context, method, path string) (*http.Response, error) {
	resp, err := c.send(ctx, method, path)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("%s%s: %s: %s", c.addr, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return resp, nil
}

// Health reads /healthz: unhealthy is "" when serve is healthy, else the
// reason it gave (its store cannot be read); err is set when serve did
// not answer.
func (c *Client) Health(ctx context.Context) (unhealthy string, err error) {
	resp, err := c.send(ctx, http.MethodGet, "/healthz")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", fmt.Errorf("%s/healthz: %w", c.addr, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return "", nil
	case http.StatusServiceUnavailable:
		return strings.TrimSpace(string(b)), nil
	}
	return "", fmt.Errorf("%s/healthz: %s: %s", c.addr, resp.Status, strings.TrimSpace(string(b)))
}

// send sends one request, whatever its answer's status.
func (c *Client) send(ctx context.Context, method, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, fmt.Errorf("%s: %w", c.addr, ErrNotRunning)
		}
		return nil, fmt.Errorf("%s: %w", c.addr, err)
	}
	return resp, nil
}

// TraceKernel asks the node to run an instance's kernel-side trace checks
// (POST /trace/kernel), each bounded by timeout, and decodes its answer
// into out.
func (c *Client) TraceKernel(ctx context.Context, instance string, timeout time.Duration, out any) error {
	q := url.Values{"instance": {instance}}
	if timeout > 0 {
		q.Set("timeout", timeout.String())
	}
	resp, err := c.do(ctx, http.MethodPost, "/trace/kernel?"+q.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s/trace/kernel: %w", c.addr, err)
	}
	return nil
}

// Status reads /status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	resp, err := c.get(ctx, "/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("%s/status: %w", c.addr, err)
	}
	return st, nil
}

// Recent reads /recent: the instance's last requests as serve's agent saw
// them, oldest first (empty when serve saw none, or keeps no record).
func (c *Client) Recent(ctx context.Context, instanceID string) ([]events.Event, error) {
	resp, err := c.get(ctx, "/recent?instance="+url.QueryEscape(instanceID))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var raw []json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		return nil, fmt.Errorf("%s/recent: %w", c.addr, err)
	}
	out := make([]events.Event, 0, len(raw))
	for _, m := range raw {
		e, err := events.DecodeJSON(m)
		if err != nil {
			return nil, fmt.Errorf("%s/recent: %w", c.addr, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// Stream is an open /events stream.
type Stream struct {
	body io.ReadCloser
	r    *bufio.Reader
	long []byte // a line longer than r's buffer, gathered
}

// Events opens /events with the filter.
func (c *Client) Events(ctx context.Context, f events.Filter) (*Stream, error) {
	q := url.Values{}
	for k, v := range map[string]string{"instance": f.Instance, "hop": f.Hop, "status": f.Status} {
		if v != "" {
			q.Set(k, v)
		}
	}
	path := "/events"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	resp, err := c.get(ctx, path)
	if err != nil {
		return nil, err
	}
	// serve sends a tenth of a second of events at once: read them in
	// few calls.
	return &Stream{body: resp.Body, r: bufio.NewReaderSize(resp.Body, 64<<10)}, nil
}

// Next blocks for the next event; an error ends the stream (io.EOF when
// serve closed it). Each line is one event (events.DecodeJSON).
func (s *Stream) Next() (events.Event, error) {
	for {
		line, err := s.line()
		if err != nil {
			return events.Event{}, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		return events.DecodeJSON(line)
	}
}

// line returns the next line without its newline; it is valid until the
// next call. A last line without a newline is an io.ErrUnexpectedEOF.
func (s *Stream) line() ([]byte, error) {
	line, err := s.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		s.long = append(s.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = s.r.ReadSlice('\n')
			s.long = append(s.long, line...)
		}
		line = s.long
	}
	switch {
	case err == nil:
		return line[:len(line)-1], nil
	case errors.Is(err, io.EOF) && len(bytes.TrimSpace(line)) > 0:
		return nil, io.ErrUnexpectedEOF
	}
	return nil, err
}

// Close ends the stream.
func (s *Stream) Close() error { return s.body.Close() }
