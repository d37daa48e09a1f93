package diag

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
)

// newWorld is a testworld with serve's logs at error only: the fault
// tests make serve's reconcilers warn on purpose.
func newWorld(t *testing.T, topo string) *testworld.World {
	t.Helper()
	return testworld.New(t, topo, testworld.LogLevel(slog.LevelError))
}

// serveAll runs every component in one serve; it returns the API's URL.
func serveAll(w *testworld.World) string {
	addr, _ := w.StartServe(testworld.ServeOptions{})
	return "http://" + addr
}

// opts are a trace's options against w's store, data plane and the API
// at apiURL.
func opts(w *testworld.World, apiURL string) Options {
	return Options{Store: w.Store, DataDir: w.Dir, Dataplane: w.Dataplane, APIURLs: []string{apiURL}}
}

// inNS runs argv inside a namespace and fails the test when it fails.
func inNS(t *testing.T, ns string, argv ...string) {
	t.Helper()
	if _, stderr, err := testworld.InNS(ns, 10*time.Second, argv...); err != nil {
		t.Fatalf("in %s: %s: %v: %s", ns, strings.Join(argv, " "), err, stderr)
	}
}

// untilHops traces until the named hops pass, a bounded number of times:
// serve opens its listeners asynchronously. The trace that follows is the
// one a test judges.
func untilHops(o Options, ref string, hops ...string) {
	for range 50 {
		r := Trace(context.Background(), o, ref)
		ok := true
		for _, h := range hops {
			ok = ok && r.Hop(h).OK
		}
		if ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
