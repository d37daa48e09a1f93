package proxy

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// exchange sends raw on a new connection and reads one answer to a
// request of method; resp is nil when the proxy closed the connection
// without answering. closed says the answer ends the connection (it says
// Connection: close, and the proxy has closed it after).
func exchange(t *testing.T, addr, method, raw string) (resp *http.Response, body string, closed bool) {
	t.Helper()
	c := dialGuest(t, addr)
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, "", true
		}
		t.Fatalf("reading the answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer's body: %v", err)
	}
	resp.Body.Close()
	if !resp.Close {
		return resp, string(b), false
	}
	_, err = br.ReadByte()
	return resp, string(b), err != nil
}

// TestMalformedRequests: what haproxy refuses gets haproxy's page and a
// closed connection, and never reaches the agent.
func TestMalformedRequests(t *testing.T) {
	agent := newFakeAgent(t)
	addr := serve(t, New(Options{AgentSocket: agent.sock, Logger: quiet()}), Identity{RouterID: "rA"})
	tests := []struct {
		name, raw string
		code      int
	}{
		{"no version", "GET /latest/\r\nHost: x\r\n\r\n", 400},
		{"version not digit.digit", "GET /latest/ HTTP/1.10\r\nHost: x\r\n\r\n", 400},
		{"duplicate length", "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
		{"duplicate same length", "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400},
		{"signed length", "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", 400},
		{"unknown coding", "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For : 10.9.9.9\r\n\r\n", 400},
		{"bad name", "GET / HTTP/1.1\r\nHost: x\r\nX(A): 1\r\n\r\n", 400},
		{"nul in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400},
		{"cr in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rX-Forwarded-For: 10.9.9.9\r\n\r\n", 400},
		{"oversize head", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", maxHeaderBytes) + "\r\n\r\n", 400},
		{"oversize body", fmt.Sprintf("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", maxBodyBytes+1), 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := agent.count()
			resp, body, closed := exchange(t, addr, "GET", tc.raw)
			if resp == nil {
				t.Fatal("connection closed without an answer")
			}
			if resp.StatusCode != tc.code || body != haproxyPages[tc.code] || resp.Header.Get("Content-Type") != "text/html" {
				t.Fatalf("got %d %q (%v), want %d with haproxy's page", resp.StatusCode, body, resp.Header, tc.code)
			}
			if !closed {
				t.Error("connection kept open after a malformed request")
			}
			if agent.count() != before {
				t.Error("a malformed request reached the agent")
			}
		})
	}
}

// TestAmbiguousFraming: Content-Length with Transfer-Encoding is read as
// haproxy reads it (the chunks win, the length is dropped, the connection
// closes after the answer), so what follows the chunks is never taken for
// a second request; a folded header line is unfolded into its value.
func TestAmbiguousFraming(t *testing.T) {
	agent := newCountingAgent(t, true)
	addr := serve(t, New(Options{AgentSocket: agent.sock, Logger: quiet()}), Identity{RouterID: "rA"})
	smuggle := "POST /openstack/latest/password HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"3\r\nabc\r\n0\r\n\r\nGET /evil HTTP/1.1\r\nHost: x\r\n\r\n"
	resp, body, closed := exchange(t, addr, "POST", smuggle)
	if resp == nil || resp.StatusCode != 200 || body != `POST /openstack/latest/password len=-1 body="abc" conn=""` {
		t.Fatalf("CL+TE: got %v %q", resp, body)
	}
	if !closed {
		t.Fatal("CL+TE: connection kept open; the bytes after the chunks could be read as a request")
	}

	fold := "GET /latest/ HTTP/1.1\r\nHost: x\r\nX-Hop: one\r\n X-Forwarded-For: 10.9.9.9\r\nConnection: close\r\n\r\n"
	resp, body, _ = exchange(t, addr, "GET", fold)
	if resp == nil || resp.StatusCode != 200 || body != `GET /latest/ len=0 body="" conn="one X-Forwarded-For: 10.9.9.9"` {
		t.Fatalf("obs-fold: got %v %q", resp, body)
	}
}

// rawAgent is an agent on a unix socket that reads one request head per
// connection and answers with the bytes answer returns for it.
func rawAgent(t *testing.T, answer func(req *http.Request) string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				io.WriteString(c, answer(req))
			}()
		}
	}()
	return sock
}

// TestCutAnswerAborts: an answer shorter than its head says, or chunks
// without their end, closes the guest's connection without an answer, so
// it cannot pass for a whole one.
func TestCutAnswerAborts(t *testing.T) {
	for name, answer := range map[string]string{
		"length":  "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
		"chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nshort\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			sock := rawAgent(t, func(*http.Request) string { return answer })
			addr := serve(t, New(Options{AgentSocket: sock, Logger: quiet()}), Identity{RouterID: "rA"})
			resp, body, _ := exchange(t, addr, "GET", "GET /latest/user-data HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp != nil {
				t.Fatalf("a cut answer passed as %d %q", resp.StatusCode, body)
			}
		})
	}
	t.Run("broken head", func(t *testing.T) {
		sock := rawAgent(t, func(*http.Request) string { return "HTTP/1.1 2x0 OK\r\n\r\n" })
		addr := serve(t, New(Options{AgentSocket: sock, Logger: quiet()}), Identity{RouterID: "rA"})
		resp, body, _ := exchange(t, addr, "GET", "GET /latest/ HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp == nil || resp.StatusCode != 502 || body != haproxyPages[502] {
			t.Fatalf("broken head: got %v %q, want haproxy's 502", resp, body)
		}
	})
}

// TestAnswersRelayedExactly: a gzip body passes untouched with its coding,
// HEAD gets the length without a body, the query string and an absolute
// form's path reach the agent as sent.
func TestAnswersRelayedExactly(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(bytes.Repeat([]byte("#cloud-config\nruncmd: [echo hi]\n"), 100))
	zw.Close()
	userData := gz.Bytes()
	var mu sync.Mutex
	var uris []string
	sock := rawAgent(t, func(r *http.Request) string {
		mu.Lock()
		uris = append(uris, r.RequestURI)
		mu.Unlock()
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\nContent-Type: application/octet-stream\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(userData), userData)
	})
	addr := serve(t, New(Options{AgentSocket: sock, Logger: quiet()}), Identity{RouterID: "rA"})

	resp, body, _ := exchange(t, addr, "GET", "GET /latest/user-data?x=%20y HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
	if resp == nil || resp.StatusCode != 200 || body != string(userData) || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip: got %v, %d bytes, want %d bytes as sent", resp, len(body), len(userData))
	}
	if resp.Header.Get("Content-Type") != "application/octet-stream" || resp.Header.Get("Connection") != "" {
		t.Errorf("answer head %v", resp.Header)
	}
	// One Date, the proxy's (RFC 9110 §6.6.1), whatever the agent sent.
	if dates := resp.Header.Values("Date"); len(dates) != 1 || strings.Contains(dates[0], "2001") {
		t.Errorf("Date headers %q, want exactly one of the proxy's", dates)
	}

	resp, body, _ = exchange(t, addr, "HEAD", "HEAD /latest/user-data HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp == nil || resp.StatusCode != 200 || body != "" || resp.ContentLength != int64(len(userData)) {
		t.Fatalf("HEAD: got %v %q", resp, body)
	}

	exchange(t, addr, "GET", "GET http://evil.example/latest/meta-data/%2e%2e/x?q HTTP/1.1\r\nHost: x\r\n\r\n")
	mu.Lock()
	defer mu.Unlock()
	want := []string{"/latest/user-data?x=%20y", "/latest/user-data", "/latest/meta-data/%2e%2e/x?q"}
	if fmt.Sprint(uris) != fmt.Sprint(want) {
		t.Fatalf("agent got %q, want %q", uris, want)
	}
}

// TestKeepAliveAcrossRequests: a guest's connection carries many requests,
// as cloud-init's session does.
func TestKeepAliveAcrossRequests(t *testing.T) {
	agent := newFakeAgent(t)
	addr := serve(t, New(Options{AgentSocket: agent.sock, Logger: quiet()}), Identity{RouterID: "rA"})
	c := dialGuest(t, addr)
	br := bufio.NewReader(c)
	for i := range 5 {
		fmt.Fprintf(c, "GET /latest/%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if want := fmt.Sprintf("agent ok /latest/%d", i); resp.StatusCode != 200 || string(b) != want {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
		}
	}
}
