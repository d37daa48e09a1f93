package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/mdctl/mdctl/internal/inprocess"
	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/agent"
	"github.com/mdctl/mdctl/server/api"
	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/store"
	"github.com/mdctl/mdctl/store/topology"
)

// BenchmarkInProcessAgentAPI is the chain behind the proxy as one serve runs
// it: the proxy's request to the agent's handler, the agent's lookup and
// signature, and the API's handler, all in process with the event bus on.
// The load rig measures the whole chain; this shows a regression (time,
// allocations) in the in-process part without it.
func BenchmarkInProcessAgentAPI(b *testing.B) {
	for _, path := range []string{"/latest/meta-data/instance-id", "/openstack/latest/meta_data.json"} {
		b.Run(filepath.Base(path), func(b *testing.B) {
			rt, routerID := inProcessChain(b)
			req, err := http.NewRequest(http.MethodGet, "http://metadata-agent"+path, nil)
			if err != nil {
				b.Fatal(err)
			}
			req.Header = http.Header{"X-Forwarded-For": {"10.90.1.5"}, "X-Neutron-Router-Id": {routerID},
				"X-Request-Id": {"req-bench"}}
			b.ReportAllocs()
			for b.Loop() {
				resp, err := rt.RoundTrip(req)
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("round trip: %v %v", resp, err)
				}
				resp.Body.Close()
			}
		})
	}
}

// inProcessChain builds serve's in-process agent and API over a store
// holding testworld's routed topology.
func inProcessChain(b *testing.B) (http.RoundTripper, string) {
	ctx := context.Background()
	st, err := store.OpenSQLite(filepath.Join(b.TempDir(), "mdctl.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	topo, err := topology.Parse([]byte(testworld.RoutedTopo), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := topology.Apply(ctx, st, topo); err != nil {
		b.Fatal(err)
	}
	r, err := st.GetRouter(ctx, "r1")
	if err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	live, bus := store.NewLive(st, nil), events.NewBus()
	srv := api.New(api.Options{Store: st, Live: live, Logger: quiet, Events: bus})
	ag := agent.New(agent.Options{Store: st, Live: live, Logger: quiet, Events: bus,
		APIURLs: func(store.Config) []string { return []string{"http://127.0.0.1:8775"} }, APITransport: inprocess.Transport{Handler: srv.Handler()}})
	return inprocess.Transport{Handler: ag.Handler()}, r.ID
}
