package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"path"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mdctl/mdctl/internal/pgtest"
)

func TestRebindDollar(t *testing.T) {
	tests := map[string]string{
		`SELECT 1`:                         `SELECT 1`,
		`SELECT a FROM t WHERE b = ?`:      `SELECT a FROM t WHERE b = $1`,
		`INSERT INTO t VALUES (?, ?, ?)`:   `INSERT INTO t VALUES ($1, $2, $3)`,
		`x IN (?, ?) AND y = ? ORDER BY z`: `x IN ($1, $2) AND y = $3 ORDER BY z`,
		`?`:                                `$1`,
		`a = ? OR b = ? OR c = ? OR d = ?`: `a = $1 OR b = $2 OR c = $3 OR d = $4`,
	}
	for in, want := range tests {
		if got := rebindDollar(in); got != want {
			t.Errorf("rebindDollar(%q) = %q, want %q", in, got, want)
		}
	}
}

// waitFor polls cond (bounded) and fails with what when it never holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting until %s", what)
}

// TestPostgresFeedFallsBackToPolling: when the LISTEN connection drops and
// cannot come back, Generation still follows other writers (by polling);
// once the server takes connections again the feed listens again.
func TestPostgresFeedFallsBackToPolling(t *testing.T) {
	ctx := context.Background()
	c := pgtest.Start(t)
	u := c.NewDB(t)
	openPG := func() *Postgres {
		s, err := OpenPostgres(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := openPG(), openPG()
	waitFor(t, "b listens", b.Listening)

	// Keep b's feed from reconnecting, then cut its connection.
	good := b.feed.cfg.Load()
	bad := good.Copy()
	bad.Port = 1
	bad.Host = "127.0.0.1"
	b.feed.cfg.Store(bad)
	pu, _ := url.Parse(u)
	db := strings.TrimPrefix(pu.Path, "/")
	c.Exec(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = '`+db+`' AND application_name = 'mdctl listener'`)
	waitFor(t, "b's feed is down", func() bool { return !b.Listening() })

	g0, err := a.Generation(ctx)
	must(t, err)
	changed := b.Changed()
	must(t, a.SetSetting(ctx, "dhcp_domain", "example.org"))
	took := waitGeneration(t, b, g0+1)
	t.Logf("polling saw the write after %v", took)
	if b.Listening() {
		t.Fatal("b's feed came back on a bad address")
	}
	mustBeClosed(t, changed, "Changed after polling found a write")

	b.feed.cfg.Store(good)
	waitFor(t, "b listens again", b.Listening)
	changed = b.Changed()
	must(t, a.UnsetSetting(ctx, "dhcp_domain"))
	took = waitGeneration(t, b, g0+2)
	t.Logf("the feed saw the write after %v", took)
	mustBeClosed(t, changed, "Changed after the feed came back and heard a write")
}

// mustBeClosed fails unless ch is closed (a Changed channel has fired).
func mustBeClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	default:
		t.Errorf("%s: not closed", what)
	}
}

// TestMigrationsPaired: each backend has a migration of each number, so a
// change that adds a column to one adds it to the other.
func TestMigrationsPaired(t *testing.T) {
	names := func(d *dialect) map[string]bool {
		files, err := fs.Glob(d.migrations, path.Join(d.migrationDir, "*.sql"))
		must(t, err)
		out := map[string]bool{}
		for _, f := range files {
			out[path.Base(f)] = true
		}
		return out
	}
	sqlite, pg := names(sqliteDialect), names(pgDialect)
	for n := range sqlite {
		if !pg[n] {
			t.Errorf("store/migrations/%s has no PostgreSQL counterpart store/migrations/postgres/%s", n, n)
		}
	}
	for n := range pg {
		if !sqlite[n] {
			t.Errorf("store/migrations/postgres/%s has no SQLite counterpart store/migrations/%s", n, n)
		}
	}
}

// TestPostgresFeedCatchesUpWithoutNotify: a generation bumped without a
// notification (lost on the way, as behind a pooler that drops LISTEN)
// still reaches a listening handle, on its next quiet-time read.
func TestPostgresFeedCatchesUpWithoutNotify(t *testing.T) {
	ctx := context.Background()
	old := pgFeedIdle
	pgFeedIdle = 100 * time.Millisecond
	t.Cleanup(func() { pgFeedIdle = old })
	c := pgtest.Start(t)
	u := c.NewDB(t)
	s, err := OpenPostgres(ctx, u)
	must(t, err)
	t.Cleanup(func() { s.Close() })
	waitFor(t, "the feed listens", s.Listening)
	g0, err := s.Generation(ctx)
	must(t, err)
	if _, err := s.pools().wdb.ExecContext(ctx, `UPDATE counters SET generation = generation + 1 WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	took := waitGeneration(t, s, g0+1)
	t.Logf("caught up %v after a silent bump", took)
	if !s.Listening() {
		t.Error("the feed stopped listening")
	}
}

// openListening opens the store at u with the fixture in it, once its
// change feed listens, and returns it with its generation.
func openListening(t *testing.T, u string) (*Postgres, uint64) {
	t.Helper()
	ctx := context.Background()
	s, err := OpenPostgres(ctx, u)
	must(t, err)
	t.Cleanup(func() { s.Close() })
	fixture(t, s)
	waitFor(t, "the feed listens", s.Listening)
	gen, err := s.Generation(ctx)
	must(t, err)
	return s, gen
}

// TestPostgresStoppedFailsFastAndRecovers: with PostgreSQL stopped under an
// open store, reads, writes and Generation fail at once with
// ErrUnavailable (logged once, not per call), and the store serves again
// on its own when the server is back on its port: the pool reconnects and
// the change feed listens again.
func TestPostgresStoppedFailsFastAndRecovers(t *testing.T) {
	log := captureLog(t)
	ctx := context.Background()
	c := pgtest.Start(t) // its own server: Pause stops all of it
	s, gen := openListening(t, c.NewDB(t))

	c.Pause(t)
	noticed := waitStore(t, "Generation fails with the server stopped", func() error {
		_, err := s.Generation(ctx)
		return unavailable(err)
	})
	t.Logf("postgres stopped: Generation fails after %v", noticed.Round(time.Millisecond))
	assertFastOutage(t, s)
	if n := len(log.Lines("store unavailable: every request fails")); n != 1 {
		t.Errorf("%d log lines say the store is unavailable, want 1:\n%s", n, log.String())
	}

	c.Resume(t)
	recovered := waitStore(t, "reads again with the server back", func() error {
		if _, err := s.Generation(ctx); err != nil {
			return err
		}
		return readsVM1(s)
	})
	t.Logf("postgres started again: serving again after %v", recovered.Round(time.Millisecond))
	waitFor(t, "the feed listens again", s.Listening)
	must(t, s.SetSetting(ctx, "metadata_cache_expiration", "31"))
	if g, err := s.Generation(ctx); err != nil || g <= gen {
		t.Errorf("Generation after a write once back: %d, %v; want more than %d", g, err, gen)
	}
	if n := len(log.Lines("store available again")); n != 1 {
		t.Errorf("%d log lines say the store is back, want 1", n)
	}
}

// within runs fn, failing the test when it has not returned after limit
// (a call hung on a dead connection), and says how long it took.
func within[T any](t *testing.T, what string, limit time.Duration, fn func() (T, error)) (T, time.Duration, error) {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	start := time.Now()
	ch := make(chan result, 1)
	go func() { v, err := fn(); ch <- result{v, err} }()
	select {
	case r := <-ch:
		return r.v, time.Since(start), r.err
	case <-time.After(limit):
		t.Fatalf("%s: still waiting after %v", what, limit)
	}
	panic("unreachable")
}

// TestPostgresPartitionFailsFastAndRecovers: with every packet to the
// server dropped (a partition: no refusal, no reset), the calls a guest's
// request makes fail with ErrUnavailable within seconds rather than at
// TCP's minutes, the change feed notices and Generation fails at once
// (logged once), and once packets flow again the store serves on its own.
func TestPostgresPartitionFailsFastAndRecovers(t *testing.T) {
	log := captureLog(t)
	ctx := context.Background()
	c := pgtest.StartPartitionable(t)
	s, gen := openListening(t, c.NewTCPDB(t))
	// Several of the pool's connections open and idle, as under load.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { s.ListPorts(ctx, PortFilter{DeviceIDs: []string{"i1"}}) })
	}
	wg.Wait()
	must(t, readsVM1(s))

	c.Drop(t)
	dropped := time.Now()
	fellBack := make(chan time.Duration, 1)
	go func() {
		for s.Listening() && time.Since(dropped) < time.Minute {
			time.Sleep(10 * time.Millisecond)
		}
		fellBack <- time.Since(dropped)
	}()
	calls := []struct {
		what string
		call func() (any, error)
	}{
		{"ListPorts", func() (any, error) { return s.ListPorts(ctx, PortFilter{DeviceIDs: []string{"i1"}}) }},
		{"InstanceView", func() (any, error) { return s.InstanceView(ctx, "i1") }},
		{"Settings", func() (any, error) { return s.Settings(ctx) }},
		{"Password", func() (any, error) { return s.Password(ctx, "i1") }},
		{"SetPassword", func() (any, error) { return nil, s.SetPassword(ctx, "i1", "secret") }},
	}
	for _, c := range calls {
		_, took, err := within(t, c.what+" during the partition", 60*time.Second, c.call)
		t.Logf("partition: %s failed after %v: %v", c.what, took.Round(time.Millisecond), err)
		if err := unavailable(err); err != nil {
			t.Errorf("%s during the partition: %v", c.what, err)
		}
	}
	noticed := waitStoreFor(t, time.Minute, "the feed falls back and Generation fails", func() error {
		if s.Listening() {
			return errors.New("the feed still listens")
		}
		_, err := s.Generation(ctx)
		return unavailable(err)
	})
	t.Logf("partition: the feed fell back %v after the drop; Generation fails %v after the calls above, %v after the drop",
		(<-fellBack).Round(time.Millisecond), noticed.Round(time.Millisecond), time.Since(dropped).Round(time.Millisecond))
	_, took, err := within(t, "Generation", time.Second, func() (uint64, error) { return s.Generation(ctx) })
	t.Logf("partition: Generation fails in %v", took.Round(time.Microsecond))
	must(t, unavailable(err))
	if n := len(log.Lines("store unavailable: every request fails")); n != 1 {
		t.Errorf("%d log lines say the store is unavailable, want 1:\n%s", n, log.String())
	}

	c.Undrop(t)
	back := time.Now()
	waitStoreFor(t, time.Minute, "serving again", func() error {
		if _, err := s.Generation(ctx); err != nil {
			return err
		}
		return readsVM1(s)
	})
	t.Logf("packets flow again: serving again after %v", time.Since(back).Round(time.Millisecond))
	waitFor(t, "the feed listens again", s.Listening)
	t.Logf("packets flow again: the feed listens again after %v", time.Since(back).Round(time.Millisecond))
	must(t, s.SetSetting(ctx, "metadata_cache_expiration", "31"))
	if g, err := s.Generation(ctx); err != nil || g <= gen {
		t.Errorf("Generation after a write once back: %d, %v; want more than %d", g, err, gen)
	}
	if n := len(log.Lines("store available again")); n != 1 {
		t.Errorf("%d log lines say the store is back, want 1", n)
	}
}

// TestMapPGErr: a refused statement keeps its error (a unique violation
// becoming ErrConflict); a server that could not be talked to is
// ErrUnavailable, an outage.
func TestMapPGErr(t *testing.T) {
	tests := []struct {
		name             string
		err              error
		conflict, outage bool
	}{
		{"unique violation", &pgconn.PgError{Code: "23505"}, true, false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false, false},
		{"not found", ErrNotFound, false, false},
		{"server shutting down", &pgconn.PgError{Code: "57P01"}, false, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, false, true},
		{"deadline", fmt.Errorf("list ports: %w", context.DeadlineExceeded), false, true},
		{"reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, false, true},
		{"timed out", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ETIMEDOUT}, false, true},
		{"eof", io.ErrUnexpectedEOF, false, true},
		{"cancelled by the caller", context.Canceled, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mapPGErr(tt.err)
			if c := errors.Is(got, ErrConflict); c != tt.conflict {
				t.Errorf("mapPGErr(%v) = %v: ErrConflict %v, want %v", tt.err, got, c, tt.conflict)
			}
			if o := errors.Is(got, ErrUnavailable); o != tt.outage {
				t.Errorf("mapPGErr(%v) = %v: ErrUnavailable %v, want %v", tt.err, got, o, tt.outage)
			}
			if !tt.conflict && !errors.Is(got, tt.err) {
				t.Errorf("mapPGErr(%v) = %v: lost the error", tt.err, got)
			}
		})
	}
}
