package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/pgtest"
	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/store"
)

// The store down under a running serve (the real binary), with guests
// fetching through the whole chain: guests get a 5xx at once, /healthz
// and trace name the store, serve logs the outage once however many
// requests meet it, and serves again on its own when the store is back.

// outage is one way to take a serve's store away and give it back.
type outage struct {
	what        string
	down, back  func(t testing.TB)
	dbArgs      []string // the global flags that name the store
	unavailable string   // what serve's log says when the outage begins
}

// guestGet is one guest request through the chain: its status (0 when
// it got no answer) and how long it took.
func guestGet(ns string) (int, time.Duration) {
	c := nsHTTPClient(ns)
	c.Timeout = 15 * time.Second
	// Its connection would stay open, idle, in a client no one uses again:
	// a guest's connection cap at the proxy fills with them.
	defer c.CloseIdleConnections()
	start := time.Now()
	resp, err := c.Get("http://169.254.169.254/openstack/latest/meta_data.json")
	took := time.Since(start)
	if err != nil {
		return 0, took
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, took
}

// countLines counts the lines of serve's log holding sub.
func countLines(t *testing.T, p *serveProc, sub string) int {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), sub)
}

// traceExit runs `mdctl trace vm1` and returns its exit code and output.
func traceExit(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append(args, "trace", "vm1")...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("mdctl trace: %v", err)
	return 0, ""
}

// runOutage takes the store away under serve p and gives it back.
func runOutage(t *testing.T, w *testworld.World, bin string, p *serveProc, o outage) {
	guests := []string{w.GuestNS("vm1"), w.GuestNS("vm2")}
	for _, ns := range guests {
		waitServing(t, ns)
	}
	l := startLoad(guests, 2)
	defer l.end()
	time.Sleep(300 * time.Millisecond)

	o.down(t)
	start := time.Now()
	testworld.WaitFor(t, 15*time.Second, "a guest's 5xx with the "+o.what, func() error {
		if code, _ := guestGet(guests[0]); code < 500 || code > 599 {
			return fmt.Errorf("status %d", code)
		}
		return nil
	})
	noticed := time.Since(start)
	code, took := guestGet(guests[0])
	t.Logf("%s: guests get a 5xx %v after, each in %v (status %d)", o.what, noticed.Round(time.Millisecond), took.Round(100*time.Microsecond), code)
	if code < 500 || code > 599 {
		t.Errorf("%s: a guest got %d, want a 5xx", o.what, code)
	}
	if took > 5*time.Second {
		t.Errorf("%s: a guest's request took %v, want its 5xx at once", o.what, took)
	}

	c, err := admin.NewClient(filepath.Join(w.Dir, admin.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	reason, err := c.Health(context.Background())
	if err != nil || !strings.Contains(reason, "store unavailable") {
		t.Errorf("%s: /healthz said %q (%v), want 503 naming the store", o.what, reason, err)
	}
	exit, out := traceExit(t, bin, append([]string{"--data-dir", w.Dir}, o.dbArgs...)...)
	if exit != 1 || !strings.Contains(out, "✗ store") || !strings.Contains(out, "FAIL at store") {
		t.Errorf("%s: trace exit %d, want 1 with the store hop failing:\n%s", o.what, exit, out)
	}
	t.Logf("%s: /healthz: %s; trace exit %d:\n%s", o.what, reason, exit, out)
	// status, without --server, still finds this data dir's serve (the
	// store's node list cannot be read) and shows its store's fault.
	st, err := exec.Command(bin, append(append([]string{"--data-dir", w.Dir}, o.dbArgs...), "status")...).CombinedOutput()
	if err != nil || !strings.Contains(string(st), "store: ") {
		t.Errorf("%s: mdctl status during the outage: %v, want its serve's components and a store line:\n%s", o.what, err, st)
	}

	time.Sleep(time.Second) // the guests' load goes on failing
	failedDuring := l.failed.Load()
	if n := countLines(t, p, o.unavailable); n != 1 {
		t.Errorf("%s: serve logged %q %d times, want once (%d requests failed meanwhile)", o.what, o.unavailable, n, failedDuring)
	}
	for _, perRequest := range []string{`msg="port lookup"`, `msg="read settings"`, `Failed to read settings`, `settings unreadable`} {
		if n := countLines(t, p, perRequest); n > 0 {
			t.Errorf("%s: serve logged %s %d times: a request's error, not the outage once", o.what, perRequest, n)
		}
	}

	okBefore := l.ok.Load()
	o.back(t)
	back := time.Now()
	testworld.WaitFor(t, 20*time.Second, "guests served again", func() error {
		if l.ok.Load() <= okBefore {
			return errors.New("no answer yet")
		}
		return nil
	})
	t.Logf("%s: served again %v after the store was back (%d guest requests failed during the outage)",
		o.what, time.Since(back).Round(time.Millisecond), failedDuring)
	l.end()
	l.stop = make(chan struct{}) // the deferred end has nothing left to stop
	readsAs(t, guests[0], "vm1", "after the store came back,")
	if n := countLines(t, p, "store available again"); n != 1 {
		t.Errorf("%s: serve logged the store back %d times, want once", o.what, n)
	}
	if exit, out := traceExit(t, bin, append([]string{"--data-dir", w.Dir}, o.dbArgs...)...); exit != 0 {
		t.Errorf("trace after the store came back: exit %d\n%s", exit, out)
	}
}

// TestSQLiteStoreGoneUnderServe: serve's SQLite file removed (renamed
// away), then replaced by garbage, then put back.
func TestSQLiteStoreGoneUnderServe(t *testing.T) {
	w, bin, api := binWorld(t)
	p := startServeBin(t, w, bin, api)
	w.LabUp()
	path := filepath.Join(w.Dir, "mdctl.db")
	away := filepath.Join(t.TempDir(), "away.db")
	runOutage(t, w, bin, p, outage{
		what: "SQLite file removed",
		down: func(t testing.TB) {
			if err := os.Rename(path, away); err != nil {
				t.Fatal(err)
			}
		},
		back: func(t testing.TB) {
			// Garbage first, where the file was: still an outage.
			if err := os.WriteFile(path, []byte("not a database\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			if code, _ := guestGet(w.GuestNS("vm1")); code < 500 || code > 599 {
				t.Errorf("a guest got %d with garbage for a store, want a 5xx", code)
			}
			if err := os.Rename(away, path); err != nil {
				t.Fatal(err)
			}
		},
		unavailable: "store unavailable: every request fails until the file is back",
	})
}

// runPGOutage starts `mdctl serve` on a copy of a world's records and
// settings in the database of c at url, and runs the outage that down
// and back make (what) under it.
func runPGOutage(t *testing.T, c *pgtest.Cluster, url, what string, down, back func(testing.TB)) {
	w, bin, api := binWorld(t)
	pg, err := store.Open("", url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Copy(context.Background(), w.Store, pg); err != nil {
		t.Fatal(err)
	}
	pg.Close()
	p := startServeArgs(t, bin, "--data-dir", w.Dir, "--db", url, "serve", "--api-listen", api)
	w.LabUp()
	runOutage(t, w, bin, p, outage{
		what: what, down: down, back: back,
		dbArgs:      []string{"--db", url},
		unavailable: "store unavailable: every request fails until PostgreSQL answers again",
	})
}

// TestPostgresStoppedUnderServe: serve's PostgreSQL stopped, then started
// again on its port.
func TestPostgresStoppedUnderServe(t *testing.T) {
	c := pgtest.Start(t) // its own server: Pause stops all of it
	runPGOutage(t, c, c.NewDB(t), "PostgreSQL stopped", c.Pause, c.Resume)
}

// TestPostgresPartitionedUnderServe: serve's PostgreSQL, reached over TCP,
// cut off by a partition (every packet to it dropped: nothing refused,
// nothing reset), then reachable again.
func TestPostgresPartitionedUnderServe(t *testing.T) {
	c := pgtest.StartPartitionable(t)
	runPGOutage(t, c, c.NewTCPDB(t), "PostgreSQL partitioned", c.Drop, c.Undrop)
}
