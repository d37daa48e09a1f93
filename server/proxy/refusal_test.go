package proxy

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testlog"
	"github.com/mdctl/mdctl/server/events"
)

// infoLogger logs at info level and above into a buffer: what an
// operator's default log keeps.
func infoLogger() (*slog.Logger, *testlog.Buffer) {
	b := &testlog.Buffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelInfo})), b
}

func nextEvent(t *testing.T, sub *events.Subscription) events.Event {
	t.Helper()
	select {
	case e := <-sub.C:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	return events.Event{}
}

// TestRefusalLeavesTrace: a request refused before it is forwarded, at
// fasthttp's read or at the handler, is logged above debug level with the
// guest's address and shows on the event stream.
func TestRefusalLeavesTrace(t *testing.T) {
	agent := newFakeAgent(t)
	log, logs := infoLogger()
	bus := events.NewBus()
	sub := bus.Subscribe(events.Filter{}, 10)
	defer sub.Close()
	id := Identity{NetworkID: "nA", Namespace: "qdhcp-nA"}
	addr := serve(t, New(Options{AgentSocket: agent.sock, Logger: log, Events: bus}), id)
	tests := []struct {
		name, raw, method, target string
		code                      int
	}{
		// fasthttp's header read failed: the request line is not known.
		{"bad version", "GET /latest/ HTTP/1.10\r\nHost: x\r\n\r\n", "", "", 400},
		{"two hosts", "PUT /openstack HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "", "", 400},
		{"oversize body", fmt.Sprintf("POST /openstack/latest/password HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", maxBodyBytes+1),
			"POST", "/openstack/latest/password", 413},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, _, _ := exchange(t, addr, "GET", tc.raw)
			if resp == nil || resp.StatusCode != tc.code {
				t.Fatalf("got %v, want %d", resp, tc.code)
			}
			e := nextEvent(t, sub)
			if e.Hop != events.HopProxy || e.SourceIP != "127.0.0.1" || e.Status != tc.code || e.Error == "" ||
				e.Mode != events.ModeDHCP || e.Namespace != id.Namespace || e.Method != tc.method || e.Path != tc.target || e.RequestID == "" {
				t.Errorf("event %+v", e)
			}
			warned := logs.Lines(`msg="request refused"`)
			if len(warned) != i+1 {
				t.Fatalf("%d refusal lines, want %d: %q", len(warned), i+1, warned)
			}
			if l := warned[i]; !strings.Contains(l, "level=WARN") || !strings.Contains(l, "src=127.0.0.1") ||
				!strings.Contains(l, fmt.Sprintf("status=%d", tc.code)) || !strings.Contains(l, "listener=network:nA") {
				t.Errorf("log line %q", l)
			}
		})
	}
	if agent.count() != 0 {
		t.Errorf("%d refused requests reached the agent", agent.count())
	}
}

// TestRefusalLogRateLimited: a flood of refused requests logs at most
// refusalLogBurst lines a window, the next window's first line says how
// many were left out, and every refusal is still an event.
func TestRefusalLogRateLimited(t *testing.T) {
	agent := newFakeAgent(t)
	log, logs := infoLogger()
	bus := events.NewBus()
	sub := bus.Subscribe(events.Filter{}, 100)
	defer sub.Close()
	p := New(Options{AgentSocket: agent.sock, Logger: log, Events: bus})
	clk := &clock{t: time.Unix(1e9, 0)}
	p.now = clk.now
	addr := serve(t, p, Identity{RouterID: "rA"})
	flood := refusalLogBurst + 5
	for range flood {
		if code, _ := rawGet(t, addr, "GET / HTTP/1.10\r\nHost: x\r\n\r\n"); code != 400 {
			t.Fatalf("status %d, want 400", code)
		}
	}
	if n := len(logs.Lines(`msg="request refused"`)); n != refusalLogBurst {
		t.Fatalf("%d lines for %d refusals, want %d", n, flood, refusalLogBurst)
	}
	clk.add(refusalLogWindow)
	rawGet(t, addr, "GET / HTTP/1.10\r\nHost: x\r\n\r\n")
	lines := logs.Lines(`msg="request refused"`)
	if len(lines) != refusalLogBurst+1 || !strings.Contains(lines[len(lines)-1], "suppressed=5") {
		t.Fatalf("after the window: %q, want one more line with suppressed=5", lines[refusalLogBurst:])
	}
	for i := range flood + 1 {
		if e := nextEvent(t, sub); e.Status != 400 {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
}
