package agent

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/store"
)

// Each way an agent→API exchange gets no answer counts under its own
// kind, and only there.
func TestAPIErrorsByKind(t *testing.T) {
	refused := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln.Close() // nothing listens there now: connect is refused
		return "http://" + ln.Addr().String()
	}
	serving := func(h http.HandlerFunc) func(t *testing.T) string {
		return func(t *testing.T) string {
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			return srv.URL
		}
	}
	hang := serving(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	hangUp := serving(func(w http.ResponseWriter, _ *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close() // no answer at all
		}
	})
	tests := []struct {
		name string
		api  func(*testing.T) string
		kind string
		code int
	}{
		{"unreachable", refused, events.KindUnreachable, http.StatusServiceUnavailable},
		{"timeout", hang, events.KindTimeout, http.StatusInternalServerError},
		{"hung up", hangUp, events.KindError, http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := topology(t)
			bus := events.NewBus()
			url := tt.api(t)
			tr := newTransport()
			tr.ResponseHeaderTimeout = 100 * time.Millisecond // stands in for APITimeout
			a := New(Options{Store: st, Live: store.NewLive(st, nil), Events: bus, APITransport: tr,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), APIURLs: func(store.Config) []string { return []string{url} }})
			srv := httptest.NewServer(a.Handler())
			t.Cleanup(srv.Close)
			h := &harness{st: st, agent: a, url: srv.URL}
			if r := h.do(t, "GET", "/latest/meta-data/", router("rA", "10.90.1.5"), nil); r.code != tt.code {
				t.Fatalf("got %d %q, want %d", r.code, r.body, tt.code)
			}
			for _, kind := range []string{events.KindUnreachable, events.KindTimeout, events.KindError} {
				want := uint64(0)
				if kind == tt.kind {
					want = 1
				}
				if n := bus.Metrics().Counter(events.APIErrors, "kind", kind).Value(); n != want {
					t.Errorf("%s{kind=%s} = %d, want %d", events.APIErrors, kind, n, want)
				}
			}
		})
	}
}
