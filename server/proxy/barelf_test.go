package proxy

import (
	"io"
	"net"
	"testing"
)

// chunkConn hands out its data n bytes per Read, as a slow guest sends.
type chunkConn struct {
	net.Conn
	data []byte
	n    int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := min(c.n, len(c.data), len(p))
	copy(p, c.data[:k])
	c.data = c.data[k:]
	return k, nil
}

// TestBareLFRewrite: bare LFs in heads get their CR, bodies and CRLF heads
// pass byte-exact, and the result is the same however the bytes arrive.
func TestBareLFRewrite(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"crlf untouched", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"lf only", "GET / HTTP/1.1\nHost: x\n\n", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"leading blank line", "\nGET / HTTP/1.1\nHost: x\n\n", "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"body kept, next head rewritten",
			"POST /p HTTP/1.1\nContent-Length: 3\n\na\n\nGET / HTTP/1.1\nHost: x\n\n",
			"POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\na\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"chunked: the rest as sent", "POST /p HTTP/1.1\ntransfer-encoding: chunked\n\n1\na\n0\n\nGET / HTTP/1.1\n\n",
			"POST /p HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n1\na\n0\n\nGET / HTTP/1.1\n\n"},
		{"unreadable length: the rest as sent", "POST /p HTTP/1.1\nContent-Length: 1x\n\nab\n",
			"POST /p HTTP/1.1\r\nContent-Length: 1x\r\n\r\nab\n"},
		{"two lengths: the rest as sent", "POST /p HTTP/1.1\nContent-Length: 1\nContent-Length: 2\n\nab\n",
			"POST /p HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab\n"},
		{"bare CR stays for fasthttp to refuse", "GET / HTTP/1.1\rHost: x\n\n", "GET / HTTP/1.1\rHost: x\r\n\r\n"},
	}
	for _, tc := range tests {
		for _, n := range []int{1, 2, 3, 7, 4096} {
			c := &bareLFConn{Conn: &chunkConn{data: []byte(tc.in), n: n}, length: -1}
			got, err := io.ReadAll(readerOnly{c, 5})
			if err != nil || string(got) != tc.want {
				t.Errorf("%s, %d-byte reads: got %q (%v), want %q", tc.name, n, got, err, tc.want)
			}
		}
	}
}

// readerOnly reads through r with a buffer of at most max bytes, so the
// rewrite's overflow into pending is exercised.
type readerOnly struct {
	r   io.Reader
	max int
}

func (r readerOnly) Read(p []byte) (int, error) { return r.r.Read(p[:min(len(p), r.max)]) }

// BenchmarkBareLFHead is the rewrite's cost on a CRLF head as cloud-init
// sends it (nothing to rewrite: a scan of its bytes).
func BenchmarkBareLFHead(b *testing.B) {
	head := []byte("GET /openstack/2018-08-27/meta_data.json HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: Cloud-Init/22.4.2\r\nAccept-Encoding: gzip, deflate\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n")
	c := &bareLFConn{length: -1}
	b.SetBytes(int64(len(head)))
	b.ReportAllocs()
	for b.Loop() {
		if _, grew := c.rewrite(head); grew {
			b.Fatal("a CRLF head was rewritten")
		}
	}
}
