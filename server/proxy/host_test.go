package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// guestHostCases are request heads with odd Hosts and request lines, and
// what haproxy 2.6 (Debian 12's), configured as neutron configures the
// namespace proxy (neutron/agent/metadata/driver_base.py's template),
// answers each. mdctl answers as haproxy does unless mdctl says otherwise:
// those rows are what fasthttp refuses while reading the header, before
// guestHost can run (host.go).
var guestHostCases = []struct {
	name, head string
	haproxy    int
	mdctl      int // 0: as haproxy
}{
	// cloud-init >= 23.1 through Debian's urllib3 (issue 12).
	{"zone unescaped", "GET /openstack HTTP/1.1\r\nHost: [fe80::a9fe:a9fe%eth0]\r\n", 200, 0},
	{"zone unescaped with port", "GET /openstack HTTP/1.1\r\nHost: [fe80::a9fe:a9fe%eth0]:80\r\n", 200, 0},
	{"zone escaped", "GET /openstack HTTP/1.1\r\nHost: [fe80::a9fe:a9fe%25eth0]\r\n", 200, 0},
	{"zone in absolute form", "GET http://[fe80::a9fe:a9fe%25eth0]/openstack HTTP/1.1\r\nHost: [fe80::a9fe:a9fe%25eth0]\r\n", 200, 0},
	{"unescaped zone in absolute form", "GET http://[fe80::a9fe:a9fe%eth0]/openstack HTTP/1.1\r\nHost: [fe80::a9fe:a9fe%eth0]\r\n", 200, 0},
	{"unescaped zone in absolute form with query", "GET http://[fe80::1%eth0]?x HTTP/1.0\r\n", 200, 0},
	{"ipv6 literal", "GET /openstack HTTP/1.1\r\nHost: [fe80::a9fe:a9fe]\r\n", 200, 0},
	{"ipv6 literal with port", "GET /openstack HTTP/1.1\r\nHost: [fe80::a9fe:a9fe]:80\r\n", 200, 0},
	{"ipv6 unbracketed", "GET /openstack HTTP/1.1\r\nHost: fe80::a9fe:a9fe\r\n", 200, 0},
	{"ipv4 with port", "GET /openstack HTTP/1.1\r\nHost: 169.254.169.254:80\r\n", 200, 0},
	{"upper case", "GET /openstack HTTP/1.1\r\nHost: METADATA.GOOGLE.INTERNAL\r\n", 200, 0},
	{"trailing dot", "GET /openstack HTTP/1.1\r\nHost: 169.254.169.254.\r\n", 200, 0},
	{"empty on 1.0", "GET /openstack HTTP/1.0\r\nHost:\r\n", 200, 0},
	{"none on 1.0", "GET /openstack HTTP/1.0\r\n", 200, 0},
	{"space inside", "GET /openstack HTTP/1.1\r\nHost: a b\r\n", 200, 0},
	{"bad escape", "GET /openstack HTTP/1.1\r\nHost: %zz\r\n", 200, 0},
	{"unclosed bracket", "GET /openstack HTTP/1.1\r\nHost: [fe80::1\r\n", 200, 0},
	{"not an address in brackets", "GET /openstack HTTP/1.1\r\nHost: [zz]\r\n", 200, 0},
	{"two colons", "GET /openstack HTTP/1.1\r\nHost: a:1:2\r\n", 200, 0},
	{"port not a number", "GET /openstack HTTP/1.1\r\nHost: a:http\r\n", 200, 0},
	{"userinfo", "GET /openstack HTTP/1.1\r\nHost: user@a\r\n", 200, 0},
	{"utf-8", "GET /openstack HTTP/1.1\r\nHost: \xc3\xa9\r\n", 200, 0},
	{"lower-case method", "get /openstack HTTP/1.1\r\nHost: a\r\n", 200, 0},
	{"double slash", "GET //openstack HTTP/1.1\r\nHost: a\r\n", 200, 0},
	{"two hosts", "GET /openstack HTTP/1.1\r\nHost: a\r\nHost: b\r\n", 400, 0},
	{"fragment", "GET /openstack#x HTTP/1.1\r\nHost: a\r\n", 400, 0},
	{"utf-8 target", "GET /openstack\xc3\xa9 HTTP/1.1\r\nHost: a\r\n", 400, 0},
	{"quote and angle brackets in target", "GET /openstack?<a>\"b\" HTTP/1.1\r\nHost: a\r\n", 200, 0},
	{"lower-case version", "GET /openstack http/1.1\r\nHost: a\r\n", 400, 0},
	// haproxy takes any HTTP/<digit>.<digit> (h1_parse_msg_vsn), as does
	// fasthttp, which reads all but 1.1 as 1.0 (no keep-alive unless asked).
	{"version 2.0", "GET /openstack HTTP/2.0\r\nHost: a\r\n", 200, 0},
	{"version 9.9", "GET /openstack HTTP/9.9\r\nHost: a\r\n", 200, 0},
	{"version 0.9", "GET /openstack HTTP/0.9\r\nHost: a\r\n", 200, 0},
	{"version 1.10", "GET /openstack HTTP/1.10\r\nHost: a\r\n", 400, 0},
	{"version 1", "GET /openstack HTTP/1\r\nHost: a\r\n", 400, 0},
	{"no version", "GET /openstack\r\nHost: a\r\n", 400, 0},
	{"relative target", "GET openstack HTTP/1.1\r\nHost: a\r\n", 400, 0},
	// fasthttp refuses these in RequestHeader.Read, before any hook.
	{"empty on 1.1", "GET /openstack HTTP/1.1\r\nHost:\r\n", 200, 400},
	{"none on 1.1", "GET /openstack HTTP/1.1\r\n", 200, 400},
	{"absolute form, no host", "GET http://169.254.169.254/openstack HTTP/1.1\r\n", 200, 400},
	{"same host twice", "GET /openstack HTTP/1.1\r\nHost: a\r\nHost: a\r\n", 200, 400},
	{"control byte", "GET /openstack HTTP/1.1\r\nHost: a\x01\r\n", 200, 400},
	{"asterisk", "GET * HTTP/1.1\r\nHost: a\r\n", 200, 0}, // refused by fasthttp, handed on as haproxy sends it
	{"two spaces", "GET  /openstack HTTP/1.1\r\nHost: a\r\n", 200, 400},
	{"tab", "GET\t/openstack HTTP/1.1\r\nHost: a\r\n", 200, 400},
}

// TestGuestHostsAsHAProxy: every Host and request line above reaches the
// agent through mdctl's guest listener exactly when haproxy would pass it,
// over a real loopback listener; with haproxy installed, the haproxy
// column is checked against haproxy itself.
func TestGuestHostsAsHAProxy(t *testing.T) {
	agent := newFakeAgent(t)
	addr := serve(t, New(Options{AgentSocket: agent.sock, Logger: quiet()}), Identity{NetworkID: "nA"})
	for _, tc := range guestHostCases {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.haproxy
			if tc.mdctl != 0 {
				want = tc.mdctl
			}
			before := agent.count()
			resp, body, _ := exchange(t, addr, "GET", tc.head+"Connection: close\r\n\r\n")
			if resp == nil {
				t.Fatal("connection closed without an answer")
			}
			if resp.StatusCode != want {
				t.Fatalf("got %d %q, want %d", resp.StatusCode, body, want)
			}
			if reached := agent.count() > before; reached != (want == 200) {
				t.Fatalf("answered %d, reached the agent: %v", want, reached)
			}
			if want == 200 && !strings.HasPrefix(body, "agent ok /") && body != "agent ok *" {
				t.Fatalf("agent answered %q", body)
			}
		})
	}
	t.Run("haproxy", func(t *testing.T) {
		sock := startHAProxy(t, headAgent(t))
		for _, tc := range guestHostCases {
			if got := rawStatus(t, "unix", sock, tc.head+"Connection: close\r\n\r\n"); got != tc.haproxy {
				t.Errorf("%s: haproxy answered %d, the table says %d", tc.name, got, tc.haproxy)
			}
		}
	})
}

// TestGuestHostKeepAlive: cloud-init's session sends the zone Host on
// every request of one connection; each is answered and the connection
// stays open.
func TestGuestHostKeepAlive(t *testing.T) {
	agent := newFakeAgent(t)
	addr := serve(t, New(Options{AgentSocket: agent.sock, Logger: quiet()}), Identity{NetworkID: "nA"})
	c := dialGuest(t, addr)
	br := bufio.NewReader(c)
	for i, host := range []string{"[fe80::a9fe:a9fe%eth0]", "169.254.169.254", "[fe80::a9fe:a9fe%eth0]"} {
		fmt.Fprintf(c, "GET /openstack/%d HTTP/1.1\r\nHost: %s\r\n\r\n", i, host)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("agent ok /openstack/%d", i); resp.StatusCode != 200 || string(b) != want || resp.Close {
			t.Fatalf("request %d (Host %s): %d %q close=%v", i, host, resp.StatusCode, b, resp.Close)
		}
	}
}

// FuzzPlainHost: a Host guestHost leaves in place is one fasthttp's URI
// parse accepts, so guestHost never lets a 400 through.
func FuzzPlainHost(f *testing.F) {
	for _, s := range []string{"169.254.169.254", "a:80", "a:", ":", "", "A.b-c.", "0:0", "[fe80::1]", "a:1:2", "x%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		if !plainHost([]byte(host)) {
			return
		}
		var u fasthttp.URI
		if err := u.Parse([]byte(host), []byte("/latest")); err != nil {
			t.Fatalf("plain host %q refused by fasthttp: %v", host, err)
		}
	})
}

// headAgent is an agent on a unix socket that answers 200 to any request
// head, unparsed: net/http would refuse some of the Hosts above itself,
// and the question is what haproxy passes on.
func headAgent(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				var head []byte
				buf := make([]byte, 4096)
				for !strings.Contains(string(head), "\r\n\r\n") && len(head) < 64<<10 {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					head = append(head, buf[:n]...)
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
			}()
		}
	}()
	return sock
}

// rawStatus sends head on a new connection to addr and returns the status
// of the answer.
func rawStatus(t *testing.T, network, addr, head string) int {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: reading the answer: %v", head, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// startHAProxy runs haproxy in the foreground with neutron's namespace
// proxy configuration, listening on a unix socket and forwarding to
// agentSock; it stops with the test. Without haproxy the test is skipped
// (make test installs it).
func startHAProxy(t *testing.T, agentSock string) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy not installed (make test-deps installs it)")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "listener.sock")
	cfg := filepath.Join(dir, "haproxy.cfg")
	// neutron/agent/metadata/driver_base.py's template, less what needs a
	// daemon (user, group, pidfile, daemon, syslog).
	conf := strings.Join([]string{
		"global", "    maxconn 1024",
		"defaults", "    mode http", "    option httplog", "    option dontlognull",
		"    option http-server-close", "    option forwardfor", "    retries 3",
		"    timeout http-request 30s", "    timeout connect 30s", "    timeout client 32s",
		"    timeout server 32s", "    timeout http-keep-alive 30s",
		"listen listener", "    bind " + sock, "    server metadata " + agentSock,
		"    http-request del-header X-Neutron-Router-ID",
		"    http-request set-header X-Neutron-Network-ID nA", "",
	}, "\n")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-db", "-f", cfg)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("haproxy: %v", err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	for range 100 {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("haproxy did not listen on %s: %s", sock, out.String())
	return ""
}
