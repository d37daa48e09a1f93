package diag

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/store"
)

// traceUntil traces until done holds for the report, a bounded number of
// times, and returns that report.
func traceUntil(t *testing.T, o Options, ref, what string, done func(Report) error) Report {
	t.Helper()
	var err error
	for range 100 {
		r := Trace(context.Background(), o, ref)
		if err = done(r); err == nil {
			return trace(t, o, ref)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("trace never showed %s: %v", what, err)
	return Report{}
}

// failsAtStore is nil when the report's first failure is the store hop.
func failsAtStore(r Report) error {
	if r.FailedHop != HopStore {
		return fmt.Errorf("failed hop %q, want %q", r.FailedHop, HopStore)
	}
	return nil
}

// TestTraceStoreHop: with serve's SQLite file removed, trace fails at the
// store hop, naming the file and what is wrong, rather than stopping
// before any hop; the socket hop is still checked, the hops that need the
// instance's record are not. Once the file is back every hop passes.
func TestTraceStoreHop(t *testing.T) {
	w := newWorld(t, testworld.RoutedTopo)
	api := serveAll(w)
	w.LabUp()
	o := opts(w, api)
	r := waitHealthy(t, o, "vm1")
	if d := r.Hop(HopStore).Detail; !strings.Contains(d, "to serve") {
		t.Errorf("store hop with serve running: %q, want it to say serve reads the store too", d)
	}

	away := w.Store.Path() + ".away"
	if err := os.Rename(w.Store.Path(), away); err != nil {
		t.Fatal(err)
	}
	r = traceUntil(t, o, "vm1", "the store hop failing", failsAtStore)
	wantFailure(t, r, HopStore, w.Store.Path(), "removed", "put the store file")
	for _, h := range r.Hops {
		switch h.Name {
		case HopSocket:
			if !h.OK {
				t.Errorf("socket hop with the store gone: %+v, want it checked and passing", h)
			}
		case HopStore:
		default:
			if !h.NotChecked {
				t.Errorf("%s hop with the store gone: %+v, want not checked", h.Name, h)
			}
		}
	}

	if err := os.Rename(away, w.Store.Path()); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, o, "vm1")
}

// TestTraceStoreHopServeCannotRead: when this trace reads its store but
// serve cannot read its own (serve's /healthz says why), the store hop
// fails and says it is serve's.
func TestTraceStoreHopServeCannotRead(t *testing.T) {
	w := newWorld(t, testworld.RoutedTopo)
	api := serveAll(w)
	w.LabUp()
	o := opts(w, api)
	waitHealthy(t, o, "vm1")
	ctx := context.Background()
	own, err := store.OpenSQLite(filepath.Join(t.TempDir(), "copy.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	if _, err := store.Copy(ctx, w.Store, own); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.Store.Path(), []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	o.Store = own
	r := traceUntil(t, o, "vm1", "the store hop failing", failsAtStore)
	wantFailure(t, r, HopStore, "serve cannot read the store", "not a SQLite database")
}
