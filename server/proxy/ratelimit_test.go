package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testlog"
	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/store"
)

// clock is a settable time for the rate limiter.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openStore(t *testing.T, settings map[string]string) *store.SQLite {
	t.Helper()
	db, err := store.OpenSQLite(filepath.Join(t.TempDir(), "mdctl.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for k, v := range settings {
		if err := db.SetSetting(context.Background(), k, v); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

const (
	kEnabled  = "metadata_rate_limiting.rate_limit_enabled"
	kVersion  = "metadata_rate_limiting.ip_versions"
	kBaseWin  = "metadata_rate_limiting.base_window_duration"
	kBaseMax  = "metadata_rate_limiting.base_query_rate_limit"
	kBurstWin = "metadata_rate_limiting.burst_window_duration"
	kBurstMax = "metadata_rate_limiting.burst_query_rate_limit"
)

func TestRateLimit429AndRecovery(t *testing.T) {
	db := openStore(t, map[string]string{kEnabled: "true", kBurstWin: "1", kBurstMax: "3", kBaseWin: "10", kBaseMax: "5"})
	agent := newFakeAgent(t)
	p := New(Options{AgentSocket: agent.sock, Live: store.NewLive(db, nil), Logger: quiet()})
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	p.now = clk.now
	addr := serve(t, p, Identity{RouterID: "rA"})

	expect := func(step string, want int) {
		t.Helper()
		code, body := get(t, addr, "/latest/")
		if code != want {
			t.Fatalf("%s: got %d %q, want %d", step, code, body, want)
		}
	}
	for i := 0; i < 3; i++ {
		expect("within burst", 200)
	}
	before := agent.count()
	expect("burst exceeded", http.StatusTooManyRequests)
	if agent.count() != before {
		t.Fatal("a refused request reached the agent")
	}
	// Two burst windows later the burst rate is zero again, but the base
	// window (10 s) still holds 4 requests: one more is allowed (5), then
	// the base limit refuses.
	clk.add(2 * time.Second)
	expect("burst recovered", 200)
	expect("base exceeded", http.StatusTooManyRequests)
	clk.add(21 * time.Second)
	expect("base recovered", 200)

	// A setting change applies at once: disabling lets everything through.
	if err := db.SetSetting(context.Background(), kEnabled, "false"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		expect("limits disabled", 200)
	}
}

// TestRateLimitIPVersions: ip_versions decides which families are limited;
// by default both are, so a guest cannot get round its limit by asking
// over IPv6 (a flood over IPv6 got 130k answers, all 200, when only IPv4
// was limited).
func TestRateLimitIPVersions(t *testing.T) {
	ln6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ln6.Close()
	for _, tc := range []struct {
		versions       string // "" is the default
		limit4, limit6 bool
	}{
		{"", true, true},
		{"4", true, false},
		{"6", false, true},
		{"4,6", true, true},
	} {
		t.Run("ip_versions="+tc.versions, func(t *testing.T) {
			set := map[string]string{kEnabled: "true", kBurstMax: "1", kBaseMax: "1"}
			if tc.versions != "" {
				set[kVersion] = tc.versions
			}
			live := store.NewLive(openStore(t, set), nil)
			agent := newFakeAgent(t)
			for family, limited := range map[string]bool{"tcp4": tc.limit4, "tcp6": tc.limit6} {
				p := New(Options{AgentSocket: agent.sock, Live: live, Logger: quiet()})
				loop := map[string]string{"tcp4": "127.0.0.1:0", "tcp6": "[::1]:0"}[family]
				ln, err := net.Listen(family, loop)
				if err != nil {
					t.Fatal(err)
				}
				addr := serveOn(t, p, Identity{NetworkID: "netA1"}, ln)
				refused := 0
				for range 5 {
					if code, _ := get(t, addr, "/"); code == http.StatusTooManyRequests {
						refused++
					}
				}
				if limited != (refused == 4) {
					t.Errorf("%s source: %d of 5 refused, want limited=%v", family, refused, limited)
				}
			}
		})
	}
}

func TestLimiterPerSourceAndBounded(t *testing.T) {
	lm := limits{base: 10 * time.Second, burst: time.Second, baseMax: 2, burstMax: 2}
	l := newLimiter()
	now := time.Unix(1_700_000_000, 0)
	a, b := netip.MustParseAddr("10.90.1.5"), netip.MustParseAddr("10.90.1.6")
	for i := 0; i < 2; i++ {
		if l.hit(a, lm, now) {
			t.Fatalf("request %d of a refused", i+1)
		}
	}
	if !l.hit(a, lm, now) {
		t.Fatal("third request of a allowed")
	}
	if l.hit(b, lm, now) {
		t.Fatal("b refused because of a")
	}
	// Fill the table well past its cap: it stays bounded.
	base := netip.MustParseAddr("10.91.0.0").As4()
	for i := 0; i < maxSources+500; i++ {
		ip := base
		ip[2], ip[3] = byte(i>>8), byte(i)
		l.hit(netip.AddrFrom4(ip), lm, now)
	}
	if n := len(l.sources); n > maxSources {
		t.Fatalf("%d sources tracked, cap %d", n, maxSources)
	}
	// Idle sources expire after the longest window.
	l.hit(a, lm, now.Add(time.Minute))
	if n := len(l.sources); n != 1 {
		t.Fatalf("%d sources after expiry, want 1", n)
	}
}

func TestRateCounterSlides(t *testing.T) {
	var c rateCounter
	t0 := time.Unix(100, 0)
	for i := 0; i < 10; i++ {
		c.add(t0, 10*time.Second)
	}
	// Half-way into the next period, half the previous period still counts.
	if got := c.add(t0.Add(15*time.Second), 10*time.Second); got != 1+5 {
		t.Fatalf("rate = %v, want 6", got)
	}
	// After two whole periods nothing old counts.
	if got := c.add(t0.Add(35*time.Second), 10*time.Second); got != 1 {
		t.Fatalf("rate = %v, want 1", got)
	}
}

// TestRefusalsCountedLogThrottled: every 429 is counted in metrics, per
// listener, while the log takes refusalLogBurst lines per window, the
// first after a shut gate saying how many it left out.
func TestRefusalsCountedLogThrottled(t *testing.T) {
	db := openStore(t, map[string]string{kEnabled: "true", kBurstMax: "1", kBaseMax: "1", kBaseWin: "600"})
	agent := newFakeAgent(t)
	var logs testlog.Buffer
	bus := events.NewBus()
	p := New(Options{AgentSocket: agent.sock, Live: store.NewLive(db, nil), Events: bus,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	p.now = clk.now
	id := Identity{RouterID: "rA"}
	addr := serve(t, p, id)
	for range 50 {
		get(t, addr, "/latest/")
	}
	clk.add(refusalLogWindow + time.Second)
	get(t, addr, "/latest/")

	counter := bus.Metrics().Counter(events.RateLimited, "listener", id.String())
	if got := counter.Value(); got != 50 {
		t.Errorf("counter %d, want 50 refusals", got)
	}
	lines := logs.Lines(`msg="rate limited (429)"`)
	if len(lines) != refusalLogBurst+1 {
		t.Errorf("%d log lines for 50 refusals over two windows, want %d:\n%s", len(lines), refusalLogBurst+1, strings.Join(lines, "\n"))
	}
	if want := fmt.Sprintf("suppressed=%d", 49-refusalLogBurst); len(lines) == 0 || !strings.Contains(lines[len(lines)-1], want) {
		t.Errorf("the line after the shut gate does not say %s:\n%s", want, strings.Join(lines, "\n"))
	}
}
