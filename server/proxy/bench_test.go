package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkAgentRequest is the header rewrite alone: a typical cloud-init
// request carrying a few forged headers, written as the agent's request.
func BenchmarkAgentRequest(b *testing.B) {
	var req fasthttp.Request
	raw := "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: Cloud-Init/24.1\r\n" +
		"Accept: */*\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n" +
		"X-Forwarded-For: 10.0.0.1\r\nX-Neutron-Router-Id: evil\r\nX-Instance-Id: evil\r\n\r\n"
	if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		b.Fatal(err)
	}
	lid := newListenerID(Identity{RouterID: "r1"})
	peer := netip.MustParseAddr("10.90.1.5")
	bw := bufio.NewWriter(io.Discard)
	b.ReportAllocs()
	for b.Loop() {
		if err := writeAgentRequest(bw, &req, peer, lid, "req-00000000-0000-0000-0000-000000000000"); err != nil {
			b.Fatal(err)
		}
		bw.Flush()
	}
}

// BenchmarkProxyHop is one guest request through the proxy to a
// constant-body server on a unix socket, over a keep-alive connection:
// the number to compare with haproxy in the same place.
func BenchmarkProxyHop(b *testing.B) {
	sock := filepath.Join(b.TempDir(), "agent.sock")
	uln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	body := []byte("i-00000001")
	agent := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})}
	go agent.Serve(uln)
	defer agent.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	p := New(Options{AgentSocket: sock, Logger: quiet()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln, Identity{RouterID: "r1"}) }()
	defer func() { cancel(); <-done }()

	c := &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64}}
	url := "http://" + ln.Addr().String() + "/latest/meta-data/instance-id"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || n != int64(len(body)) {
				b.Errorf("got %d, %d bytes", resp.StatusCode, n)
				return
			}
		}
	})
}

// BenchmarkDirectHop is BenchmarkProxyHop's baseline: the same client and
// constant-body server, with no proxy between, so the proxy's cost is the
// difference on any host.
func BenchmarkDirectHop(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	body := []byte("i-00000001")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	c := &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64}}
	url := "http://" + ln.Addr().String() + "/latest/meta-data/instance-id"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkGuestHost is what the proxy adds per request to fasthttp's
// parse, on the two Hosts cloud-init sends (IPv4, and IPv6 with the zone):
// guestHost and the target check. It allocates nothing.
func BenchmarkGuestHost(b *testing.B) {
	for _, host := range []string{"169.254.169.254", "[fe80::a9fe:a9fe%eth0]"} {
		b.Run(host, func(b *testing.B) {
			var h fasthttp.RequestHeader
			h.SetRequestURI("/openstack/latest/meta_data.json")
			b.ReportAllocs()
			for b.Loop() {
				h.SetHost(host)
				guestHost(&h)
				if !haproxyTarget(h.RequestURI()) {
					b.Fatal("target refused")
				}
			}
		})
	}
}
