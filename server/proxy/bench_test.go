package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
)

// BenchmarkScrub is the header rewrite alone, on a typical cloud-init
// request carrying a few forged headers.
func BenchmarkScrub(b *testing.B) {
	base := http.Header{
		"Host": {"169.254.169.254"}, "User-Agent": {"Cloud-Init/24.1"}, "Accept": {"*/*"},
		"Accept-Encoding": {"gzip, deflate"}, "Connection": {"keep-alive"},
		"X-Forwarded-For": {"10.0.0.1"}, "X-Neutron-Router-Id": {"evil"}, "X-Instance-Id": {"evil"},
	}
	b.ReportAllocs()
	for b.Loop() {
		h := base.Clone()
		scrub(h)
		h.Set("X-Forwarded-For", "10.90.1.5")
		h.Set("X-Neutron-Router-ID", "r1")
		h.Set("X-Request-ID", "req-00000000-0000-0000-0000-000000000000")
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
