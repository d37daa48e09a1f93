package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mdctl/mdctl/internal/testlog"
	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/store"
)

// refusedURL is an address on loopback where nothing listens: connect is
// refused at once.
func refusedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return "http://" + ln.Addr().String()
}

// silentURL is a loopback listener that drops connection attempts, as a
// replica that went silent does: its accept queue (backlog 0) is full
// and never drained, and the kernel drops SYNs to a full queue, so the
// agent's dial waits until DialTimeout.
func silentURL(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	for i := 0; ; i++ { // fill the queue until a connect hangs
		if i == 8 {
			t.Fatal("the listener's accept queue never filled")
		}
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return "http://" + addr
}

// replicaHarness is an agent whose nova_metadata_host lists urls.
type replicaHarness struct {
	*harness
	bus  *events.Bus
	logs *testlog.Buffer
}

func newReplicaHarness(t *testing.T, urls ...string) *replicaHarness {
	t.Helper()
	st := topology(t)
	bus, logs := events.NewBus(), &testlog.Buffer{}
	a := New(Options{Store: st, Live: store.NewLive(st, nil), Events: bus,
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		APIURLs: func(store.Config) []string { return urls }})
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(func() { a.api.(*http.Transport).CloseIdleConnections() })
	return &replicaHarness{harness: &harness{st: st, agent: a, url: srv.URL}, bus: bus, logs: logs}
}

func (h *replicaHarness) failovers() uint64 {
	return h.bus.Metrics().Counter(events.APIFailovers).Value()
}

// A dead first replica (refused, silent, or hung after accepting) costs
// the first guest request one failed attempt and later ones nothing: the
// agent keeps to the replica that answered, logs the change once, and
// counts the failover.
func TestFailoverToNextReplica(t *testing.T) {
	hung := func(t *testing.T) string {
		block := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			select {
			case <-block:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(block) })
		return srv.URL
	}
	tests := []struct {
		name string
		dead func(*testing.T) string
	}{
		{"refused", refusedURL},
		{"silent", silentURL},
		{"hung", hung},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := &apiRecorder{}
			goodSrv := httptest.NewServer(good)
			t.Cleanup(goodSrv.Close)
			dead := tt.dead(t)
			h := newReplicaHarness(t, dead, goodSrv.URL)
			for i := range 3 {
				start := time.Now()
				r := h.do(t, "GET", "/latest/meta-data/", router("rA", "10.90.1.5"), nil)
				t.Logf("request %d: %d in %v", i+1, r.code, time.Since(start))
				if r.code != http.StatusOK || string(r.body) != "ok "+instA {
					t.Fatalf("request %d: %d %q, want the next replica's answer", i+1, r.code, r.body)
				}
			}
			// A password POST fails over as a GET does.
			if r := h.do(t, "POST", "/openstack/latest/password", router("rA", "10.90.1.5"), []byte("pw")); r.code != http.StatusOK {
				t.Fatalf("POST: %d %q", r.code, r.body)
			}
			if _, body, _, method := good.last(t); method != "POST" || string(body) != "pw" {
				t.Fatalf("the replica got %s %q", method, body)
			}
			if n := h.failovers(); n != 1 {
				t.Errorf("%s = %d, want 1: only the first request should try the dead replica", events.APIFailovers, n)
			}
			warns := h.logs.Lines("level=WARN")
			if len(warns) != 1 || !strings.Contains(warns[0], "down="+dead) || !strings.Contains(warns[0], "using="+goodSrv.URL) {
				t.Errorf("want one WARN naming %s down and %s used; got %q", dead, goodSrv.URL, warns)
			}
			for _, kind := range []string{events.KindUnreachable, events.KindTimeout, events.KindError} {
				if n := h.bus.Metrics().Counter(events.APIErrors, "kind", kind).Value(); n != 0 {
					t.Errorf("%s{kind=%s} = %d: every guest request got an answer", events.APIErrors, kind, n)
				}
			}
		})
	}
}

// When every replica is down the guest gets neutron's 503, counted once
// as unreachable, after one attempt at each.
func TestAllReplicasDown(t *testing.T) {
	a, b := refusedURL(t), refusedURL(t)
	h := newReplicaHarness(t, a, b)
	r := h.do(t, "GET", "/latest/meta-data/", router("rA", "10.90.1.5"), nil)
	if r.code != http.StatusServiceUnavailable || strings.TrimSpace(string(r.body)) != msgUnavailable {
		t.Fatalf("got %d %q", r.code, r.body)
	}
	if n := h.failovers(); n != 1 {
		t.Errorf("%s = %d, want 1", events.APIFailovers, n)
	}
	if n := h.bus.Metrics().Counter(events.APIErrors, "kind", events.KindUnreachable).Value(); n != 1 {
		t.Errorf("unreachable = %d, want 1", n)
	}
	if w := h.logs.Lines("no answer; the agent uses"); len(w) != 0 {
		t.Errorf("logged a change of API though none answered: %q", w)
	}
}

// A replica that wraps around: after the second dies too, the first,
// back again, is used.
func TestFailoverWrapsAround(t *testing.T) {
	first, second := &apiRecorder{}, &apiRecorder{}
	firstSrv, secondSrv := httptest.NewUnstartedServer(first), httptest.NewServer(second)
	t.Cleanup(secondSrv.Close)
	// The first listens later, on the address the agent already holds.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	firstURL := "http://" + ln.Addr().String()
	ln.Close()
	h := newReplicaHarness(t, firstURL, secondSrv.URL)
	if r := h.do(t, "GET", "/latest", router("rA", "10.90.1.5"), nil); r.code != 200 || second.count() != 1 {
		t.Fatalf("got %d; the second replica saw %d requests", r.code, second.count())
	}
	firstSrv.Listener, err = net.Listen("tcp", strings.TrimPrefix(firstURL, "http://"))
	if err != nil {
		t.Skipf("the first replica's port was taken meanwhile: %v", err)
	}
	firstSrv.Start()
	t.Cleanup(firstSrv.Close)
	secondSrv.Close()
	if r := h.do(t, "GET", "/latest", router("rA", "10.90.1.5"), nil); r.code != 200 || first.count() != 1 {
		t.Fatalf("got %d; the first replica saw %d requests", r.code, first.count())
	}
	if w := h.logs.Lines("level=WARN"); len(w) != 2 || !strings.Contains(w[1], "using="+firstURL) {
		t.Errorf("want a second WARN naming %s used; got %q", firstURL, w)
	}
}

// The agent goes back to an earlier replica once FailbackAfter has passed
// and its /healthcheck answers, and stays on the later one while it does
// not; no request waits on the check.
func TestFailback(t *testing.T) {
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	up := false
	checked := make(chan string, 8)
	p := &replicas{log: slog.New(slog.NewTextHandler(&testlog.Buffer{}, nil)), now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
		healthy: func(_ context.Context, base string) bool {
			mu.Lock()
			defer mu.Unlock()
			checked <- base
			return up
		}}
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	urls := []string{"http://a", "http://b", "http://c"}
	waitCheck := func() {
		t.Helper()
		select {
		case <-checked:
		case <-time.After(10 * time.Second):
			t.Fatal("no health check ran")
		}
		for range 1000 { // until failback has recorded its verdict
			p.mu.Lock()
			done := !p.probing
			p.mu.Unlock()
			if done {
				return
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatal("the health check never finished")
	}
	if got := p.start(urls); got != 0 {
		t.Fatalf("start before any failure = %d", got)
	}
	p.answered("http://a", "http://c")
	if got := p.start(urls); got != 2 {
		t.Fatalf("start after c answered = %d, want 2", got)
	}
	advance(FailbackAfter)
	if got := p.start(urls); got != 2 {
		t.Fatalf("start while checking = %d, want 2", got)
	}
	waitCheck()
	waitCheck() // a and b, both down
	if got := p.start(urls); got != 2 {
		t.Fatalf("start with a and b still down = %d, want 2", got)
	}
	mu.Lock()
	up = true
	mu.Unlock()
	advance(FailbackAfter - time.Second)
	p.start(urls)
	select {
	case b := <-checked:
		t.Fatalf("checked %s before FailbackAfter passed", b)
	case <-time.After(50 * time.Millisecond):
	}
	advance(time.Second)
	p.start(urls)
	waitCheck()
	if got := p.start(urls); got != 0 {
		t.Fatalf("start after a answers again = %d, want 0", got)
	}
	// Another list (settings changed) starts at its first.
	if got := p.start([]string{"http://x", "http://y"}); got != 0 {
		t.Fatalf("start on a new list = %d", got)
	}
}

// The agent's API connections carry TCP_USER_TIMEOUT, so unacknowledged
// data to a replica that went silent breaks the connection after
// UserTimeout.
func TestAPIConnectionsHaveUserTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := apiDialer().DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT) })
	if gerr != nil || got != int(UserTimeout/time.Millisecond) {
		t.Fatalf("TCP_USER_TIMEOUT = %d ms (%v), want %d", got, gerr, UserTimeout/time.Millisecond)
	}
}

// Dynamic vendordata lengthens how long a replica may take before the
// next is asked: the API waits on each target for its timeouts.
func TestAnswerWait(t *testing.T) {
	c := store.DefaultConfig()
	if got := answerWait(c); got != hungAfter {
		t.Fatalf("default = %v", got)
	}
	c.VendordataProviders = []string{"StaticJSON", "DynamicJSON"}
	c.VendordataDynamicTargets = []string{"a@http://a", "b@http://b"}
	c.VendordataConnectTimeout, c.VendordataReadTimeout = 3, 4
	if got, want := answerWait(c), hungAfter+14*time.Second; got != want {
		t.Fatalf("with two dynamic targets = %v, want %v", got, want)
	}
}

// The failback check is the API's /healthcheck over the agent's own
// transport: 200 is healthy; 503 (drained by its healthcheck_disable
// file), a refused connect or another path's answer are not.
func TestHealthcheckProbe(t *testing.T) {
	code := http.StatusOK
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/healthcheck" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	h := newReplicaHarness(t, srv.URL)
	ctx := context.Background()
	if !h.agent.healthcheck(ctx, srv.URL) {
		t.Error("200 from /healthcheck is not healthy")
	}
	mu.Lock()
	code = http.StatusServiceUnavailable
	mu.Unlock()
	if h.agent.healthcheck(ctx, srv.URL) {
		t.Error("503 from /healthcheck is healthy")
	}
	if h.agent.healthcheck(ctx, refusedURL(t)) {
		t.Error("a refused connect is healthy")
	}
}

// TestAPIURLsOncePerGeneration: the URL list is built from the settings
// once per store generation, not on every request.
func TestAPIURLsOncePerGeneration(t *testing.T) {
	calls := 0
	a := New(Options{Logger: slog.New(slog.DiscardHandler), APIURLs: func(c store.Config) []string {
		calls++
		return []string{fmt.Sprintf("http://%s:8775", c.NovaMetadataHosts[0])}
	}})
	at := func(gen uint64, host string) []string {
		return a.apiURLs(store.Snapshot{Generation: gen, Config: store.Config{NovaMetadataHosts: []string{host}}})
	}
	at(1, "10.0.0.1")
	if got := at(1, "10.0.0.1"); calls != 1 || got[0] != "http://10.0.0.1:8775" {
		t.Errorf("same generation: %d builds, %v", calls, got)
	}
	if got := at(2, "10.0.0.2"); calls != 2 || got[0] != "http://10.0.0.2:8775" {
		t.Errorf("next generation: %d builds, %v", calls, got)
	}
}
