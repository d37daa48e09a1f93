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
	line        []byte // the current line's first lfMaxLine+1 bytes
	lineLen     int    // the current line's length so far
	length      int64  // -1: no Content-Length seen
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
// returns the rewritten bytes in c.spare. It goes from LF to LF, so a
// CRLF head costs a byte search per line.
func (c *bareLFConn) rewrite(b []byte) (out []byte, grew bool) {
	copied, i := 0, 0 // b[:copied] is already in c.spare (once grew)
	for i < len(b) {
		switch c.mode {
		case lfRaw:
			i = len(b)
			continue
		case lfBody:
			take := int(min(int64(len(b)-i), c.bodyLeft))
			c.bodyLeft -= int64(take)
			i += take
			if c.bodyLeft == 0 {
				c.startHead()
			}
			continue
		}
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			c.headSegment(b[i:], true)
			break
		}
		nl := i + j
		// A line whole in this read is looked at where it lies; only
		// one split across reads is gathered in c.line.
		whole := c.lineLen == 0
		if c.headSegment(b[i:nl], !whole); c.mode == lfRaw {
			break
		}
		if !c.prevCR {
			if !grew {
				c.spare, grew = append(c.spare[:0], b[:nl]...), true
			} else {
				c.spare = append(c.spare, b[copied:nl]...)
			}
			c.spare = append(c.spare, '\r')
			copied = nl
		}
		if whole {
			c.lineEnd(b[i:nl], nl-i)
		} else {
			c.lineEnd(c.line, c.lineLen)
		}
		i = nl + 1
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
	c.line, c.lineLen = c.line[:0], 0
	c.length, c.chunked, c.unframeable = -1, false, false
}

// headSegment follows bytes of a head line, short of its LF (a line may
// come in several reads); gather keeps them in c.line.
func (c *bareLFConn) headSegment(seg []byte, gather bool) {
	if len(seg) == 0 {
		return
	}
	if c.headBytes += len(seg); c.headBytes > maxHeaderBytes {
		c.mode = lfRaw // fasthttp refuses it; nothing to frame
		return
	}
	c.prevCR = seg[len(seg)-1] == '\r'
	if !gather {
		return
	}
	if room := lfMaxLine + 1 - len(c.line); room > 0 {
		c.line = append(c.line, seg[:min(room, len(seg))]...)
	}
	c.lineLen += len(seg)
}

// lineEnd follows a head line's LF: the request line, the framing
// headers, and the blank line that ends the head. line is the line (its
// first lfMaxLine+1 bytes at least), n its length.
func (c *bareLFConn) lineEnd(line []byte, n int) {
	c.headBytes++
	line = bytes.TrimSuffix(line, []byte("\r"))
	long := n > lfMaxLine+1 // +1: its CR
	c.line, c.lineLen, c.prevCR = c.line[:0], 0, false
	switch {
	case len(line) == 0 && !c.sawReqLine:
		// empty lines before the request line are skipped, as fasthttp does
	case len(line) == 0:
		c.endHead()
	case !c.sawReqLine:
		c.sawReqLine = true
	default:
		c.header(line, long)
	}
}

func (c *bareLFConn) header(line []byte, long bool) {
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok || (len(name) != len("Content-Length") && len(name) != len("Transfer-Encoding")) {
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
