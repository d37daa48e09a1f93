package proxy

import (
	"bytes"
	"net"
	"strconv"
)

// haproxy (2.6, neutron's config) takes a bare LF as a line end in a
// request head, as RFC 9112 §2.2 lets a recipient do: "GET / HTTP/1.1\n
// Host: x\n\n" is answered at once. fasthttp waits for a CRLFCRLF that
// never comes, so such a request hung for `timeout http-request` (30 s)
// and got a 408. A bareLFConn writes the CR in front of each bare LF of a
// request head before fasthttp reads it, and passes bodies untouched.
//
// fasthttp's wait is a defence for proxies that forward the bytes they
// read; this one writes a fresh request to the agent from its parse, so
// how the guest ended its lines cannot reach further.
//
// To know where a head ends and a body starts, it follows the framing:
// Content-Length bodies pass through byte-exact and the next head is
// normalised again; on anything it cannot frame for certain (chunked
// bodies, a Content-Length it cannot read, a head past the size limit)
// it stops rewriting for the rest of the connection, which is then read
// exactly as sent.

// lfMaxLine is the longest head line kept for framing: "Content-Length:"
// with any sane value fits; a longer Content-Length line is not trusted.
const lfMaxLine = 64

type lfMode uint8

const (
	lfHead lfMode = iota // rewriting a request head
	lfBody               // passing a Content-Length body through
	lfRaw                // passing everything through from here on
)

// bareLFListener wraps each accepted connection in a bareLFConn.
type bareLFListener struct{ net.Listener }

func (l bareLFListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &bareLFConn{Conn: c, length: -1}, nil
}

type bareLFConn struct {
	net.Conn
	pending []byte // rewritten bytes that did not fit the caller's buffer
	spare   []byte // reused for rewriting

	mode     lfMode
	bodyLeft int64 // lfBody: bytes of the body still to pass

	// lfHead state
	prevCR      bool
	headBytes   int
	sawReqLine  bool
	line        []byte // the current line's first lfMaxLine bytes
	lineLong    bool
	length      int64 // -1: no Content-Length seen
	chunked     bool
	unframeable bool
}

// inner is the connection under the rewriting, for the hang-up watch.
func (c *bareLFConn) inner() net.Conn { return c.Conn }

func (c *bareLFConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	n, err := c.Conn.Read(p)
	if n == 0 || c.mode == lfRaw {
		return n, err
	}
	out, grew := c.rewrite(p[:n])
	if !grew {
		return n, err
	}
	m := copy(p, out)
	c.pending = append(c.pending[:0], out[m:]...)
	return m, err
}

// rewrite runs b through the state machine. Without a bare LF in a head
// it changes nothing and returns b itself (grew false); otherwise it
// returns the rewritten bytes in c.spare.
func (c *bareLFConn) rewrite(b []byte) (out []byte, grew bool) {
	copied := 0 // b[:copied] is already in c.spare (once grew)
	for i := 0; i < len(b); i++ {
		switch c.mode {
		case lfRaw:
			if grew {
				c.spare = append(c.spare, b[copied:]...)
				return c.spare, true
			}
			return b, false
		case lfBody:
			take := min(int64(len(b)-i), c.bodyLeft)
			c.bodyLeft -= take
			i += int(take) - 1
			if c.bodyLeft == 0 {
				c.startHead()
			}
			continue
		}
		ch := b[i]
		if ch == '\n' && !c.prevCR {
			if !grew {
				c.spare, grew = append(c.spare[:0], b[:i]...), true
			} else {
				c.spare = append(c.spare, b[copied:i]...)
			}
			c.spare = append(c.spare, '\r')
			copied = i
		}
		c.headByte(ch)
	}
	if grew {
		c.spare = append(c.spare, b[copied:]...)
		return c.spare, true
	}
	return b, false
}

func (c *bareLFConn) startHead() {
	c.mode = lfHead
	c.prevCR, c.headBytes, c.sawReqLine = false, 0, false
	c.line, c.lineLong = c.line[:0], false
	c.length, c.chunked, c.unframeable = -1, false, false
}

// headByte follows one byte of a head: lines, the framing headers, and
// the blank line that ends it.
func (c *bareLFConn) headByte(ch byte) {
	c.headBytes++
	if c.headBytes > maxHeaderBytes {
		c.mode = lfRaw // fasthttp refuses it; nothing to frame
		return
	}
	c.prevCR = ch == '\r'
	if ch != '\n' {
		if ch != '\r' {
			if len(c.line) < lfMaxLine {
				c.line = append(c.line, ch)
			} else {
				c.lineLong = true
			}
		}
		return
	}
	line, long := c.line, c.lineLong
	c.line, c.lineLong = c.line[:0], false
	switch {
	case len(line) == 0 && !long && !c.sawReqLine:
		// empty lines before the request line are skipped, as fasthttp does
	case len(line) == 0 && !long:
		c.endHead()
	case !c.sawReqLine:
		c.sawReqLine = true
	default:
		c.header(line, long)
	}
}

func (c *bareLFConn) header(line []byte, long bool) {
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		return // fasthttp decides what a line without a colon is
	}
	switch {
	case bytes.EqualFold(name, []byte("Transfer-Encoding")):
		c.chunked = true
	case bytes.EqualFold(name, []byte("Content-Length")):
		n, err := strconv.ParseInt(string(bytes.TrimSpace(value)), 10, 64)
		if long || err != nil || n < 0 || (c.length >= 0 && c.length != n) {
			c.unframeable = true
		}
		c.length = n
	}
}

func (c *bareLFConn) endHead() {
	switch {
	case c.chunked || c.unframeable:
		c.mode = lfRaw
	case c.length > 0:
		c.mode, c.bodyLeft = lfBody, c.length
	default:
		c.startHead()
	}
}
