package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testlog"
)

// captureLog sends the default logger's lines to a buffer for the test.
func captureLog(t *testing.T) *testlog.Buffer {
	t.Helper()
	l := &testlog.Buffer{}
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(l, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })
	return l
}

// logged counts the lines that name path and say msg.
func logged(log *testlog.Buffer, path, msg string) int {
	n := 0
	for _, l := range log.Lines(path) {
		if strings.Contains(l, msg) {
			n++
		}
	}
	return n
}

// waitStore polls fn every 10ms until it returns nil, for at most 10s,
// and says how long that took.
func waitStore(t *testing.T, what string, fn func() error) time.Duration {
	t.Helper()
	return waitStoreFor(t, 10*time.Second, what, fn)
}

// waitStoreFor is waitStore for at most limit.
func waitStoreFor(t *testing.T, limit time.Duration, what string, fn func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < limit {
		if err = fn(); err == nil {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v: %v", what, limit, err)
	return 0
}

// unavailable is nil when err is ErrUnavailable.
func unavailable(err error) error {
	if !errors.Is(err, ErrUnavailable) {
		return fmt.Errorf("got %v, want ErrUnavailable", err)
	}
	return nil
}

// readsVM1 reads the fixture's instance.
func readsVM1(s Store) error {
	in, err := s.GetInstance(context.Background(), "vm1")
	if err != nil {
		return err
	}
	if in.ID != "i1" {
		return fmt.Errorf("read instance %s, want i1", in.ID)
	}
	return nil
}

// pinger is a Store with a health check: both backends.
type pinger interface {
	Store
	Ping(ctx context.Context) error
}

// assertFastOutage checks that, while the store is unavailable, reads,
// writes and Generation fail with ErrUnavailable at once, and logs how
// long a failed call took.
func assertFastOutage(t *testing.T, s pinger) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	const calls = 100
	for range calls {
		if err := unavailable(readsVM1(s)); err != nil {
			t.Fatalf("read during the outage: %v", err)
		}
	}
	t.Logf("a read during the outage fails in %v", (time.Since(start) / calls).Round(time.Microsecond))
	if _, err := s.Generation(ctx); unavailable(err) != nil {
		t.Errorf("Generation during the outage: %v", err)
	}
	if err := s.SetSetting(ctx, "metadata_cache_expiration", "30"); unavailable(err) != nil {
		t.Errorf("write during the outage: %v", err)
	}
	if err := s.Ping(ctx); unavailable(err) != nil {
		t.Errorf("Ping during the outage: %v", err)
	}
}

// assertBack checks that a store that came back reads the fixture, counts
// on from past every generation it reported before, and writes to the
// file at its path (another handle sees the write).
func assertBack(t *testing.T, s *SQLite, genBefore uint64) {
	t.Helper()
	ctx := context.Background()
	must(t, readsVM1(s))
	if g, err := s.Generation(ctx); err != nil || g <= genBefore {
		t.Errorf("Generation after the outage: %d, %v; want more than %d (it must never go back)", g, err, genBefore)
	}
	must(t, s.SetSetting(ctx, "metadata_cache_expiration", "31"))
	other, err := OpenSQLite(s.Path())
	must(t, err)
	defer other.Close()
	got, err := other.Settings(ctx)
	must(t, err)
	if got["metadata_cache_expiration"] != "31" {
		t.Errorf("a write after the outage did not reach the file at %s: settings there %v", s.Path(), got)
	}
}

// woken fails unless ch (from Changed) is closed: a loop waiting on the
// store's changes must hear of an outage and of its end.
func woken(t *testing.T, ch <-chan struct{}, when string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Errorf("Changed's channel still open after %s", when)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	must(t, err)
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	must(t, err)
	_, err = io.Copy(dst, src)
	must(t, errors.Join(err, dst.Close()))
}

// TestSQLiteFileRemovedAndPutBack: with its file removed under an open
// store, every call fails at once with ErrUnavailable (not from the old
// inode the connections still hold, not a hang), the outage is logged
// once however many calls fail, and the store serves again on its own
// once the file is back, renamed back (the same inode) or copied back (a
// new one).
func TestSQLiteFileRemovedAndPutBack(t *testing.T) {
	log := captureLog(t)
	for _, back := range []string{"renamed back", "copied back"} {
		t.Run(strings.ReplaceAll(back, " ", "_"), func(t *testing.T) {
			s := openTest(t)
			fixture(t, s)
			ctx := context.Background()
			gen, err := s.Generation(ctx)
			must(t, err)
			if back == "copied back" {
				// A copy of the file alone is a backup only with the WAL
				// checkpointed into it.
				_, err := s.pools().wdb.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
				must(t, err)
			}
			away := filepath.Join(t.TempDir(), "away.db")
			changed := s.Changed()
			must(t, os.Rename(s.Path(), away))
			noticed := waitStore(t, "ErrUnavailable with the file removed", func() error { return unavailable(readsVM1(s)) })
			t.Logf("file removed: noticed after %v", noticed.Round(time.Millisecond))
			woken(t, changed, "the outage began")
			changed = s.Changed()
			assertFastOutage(t, s)
			if n := logged(log, s.Path(), "store unavailable: every request fails"); n != 1 {
				t.Errorf("%d log lines say the store is unavailable, want 1:\n%s", n, log.String())
			}

			if back == "renamed back" {
				must(t, os.Rename(away, s.Path()))
			} else {
				copyFile(t, away, s.Path())
			}
			recovered := waitStore(t, "reads again with the file "+back, func() error { return readsVM1(s) })
			t.Logf("file %s: serving again after %v", back, recovered.Round(time.Millisecond))
			woken(t, changed, "the store came back")
			assertBack(t, s, gen)
			if n := logged(log, s.Path(), "store available again"); n != 1 {
				t.Errorf("%d log lines say the store is back, want 1", n)
			}
		})
	}
}

// TestSQLiteGarbageFile: a store file overwritten in place, or replaced,
// by something that is not a database (or emptied) fails every call with
// ErrUnavailable naming what is wrong, and a good file put back is served.
func TestSQLiteGarbageFile(t *testing.T) {
	garbage := bytes.Repeat([]byte("this is not a database\n"), 400)
	for _, c := range []struct {
		name string
		ruin func(t *testing.T, path string)
	}{
		{"overwritten in place", func(t *testing.T, path string) { must(t, os.WriteFile(path, garbage, 0o600)) }},
		{"emptied", func(t *testing.T, path string) { must(t, os.Truncate(path, 0)) }},
		{"replaced", func(t *testing.T, path string) {
			tmp := path + ".new"
			must(t, os.WriteFile(tmp, garbage, 0o600))
			must(t, os.Rename(tmp, path))
		}},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			s := openTest(t)
			fixture(t, s)
			ctx := context.Background()
			gen, err := s.Generation(ctx)
			must(t, err)
			good := filepath.Join(t.TempDir(), "good.db")
			_, err = s.pools().wdb.ExecContext(ctx, `VACUUM INTO ?`, good)
			must(t, err)

			c.ruin(t, s.Path())
			var last error
			noticed := waitStore(t, "ErrUnavailable with the file "+c.name, func() error {
				last = readsVM1(s)
				return unavailable(last)
			})
			t.Logf("file %s: noticed after %v: %v", c.name, noticed.Round(time.Millisecond), last)
			if !strings.Contains(last.Error(), "not a SQLite database") {
				t.Errorf("the error does not say what is wrong: %v", last)
			}
			assertFastOutage(t, s)
			// Closing its connections checkpoints the WAL into a file
			// overwritten in place, which can give garbage a good header
			// again: that must not pass for a file put back.
			time.Sleep(4 * fileWatchEvery)
			if err := unavailable(readsVM1(s)); err != nil {
				t.Fatalf("%v ticks after the file was %s: %v", 4, c.name, err)
			}

			must(t, os.Rename(good, s.Path()))
			recovered := waitStore(t, "reads again with a good file back", func() error { return readsVM1(s) })
			t.Logf("good file back: serving again after %v", recovered.Round(time.Millisecond))
			assertBack(t, s, gen)
		})
	}
}

// TestSQLiteFileReplacedByAnother: another database renamed over the
// store's file is served (after a short outage), with its own content and
// writes reaching it, and generations that go on past the old file's.
func TestSQLiteFileReplacedByAnother(t *testing.T) {
	s := openTest(t)
	fixture(t, s)
	ctx := context.Background()
	gen, err := s.Generation(ctx)
	must(t, err)
	other := filepath.Join(t.TempDir(), "other.db")
	o, err := OpenSQLite(other)
	must(t, err)
	must(t, o.PutProject(ctx, Project{ID: "p9", Name: "other"}))
	must(t, o.Close())
	must(t, os.Rename(other, s.Path()))
	took := waitStore(t, "the other database served", func() error {
		_, err := s.GetProject(ctx, "other")
		return err
	})
	t.Logf("another database renamed over the file: served after %v", took.Round(time.Millisecond))
	if err := readsVM1(s); !errors.Is(err, ErrNotFound) {
		t.Errorf("the old file's instance after the replacement: %v, want not found", err)
	}
	if g, err := s.Generation(ctx); err != nil || g <= gen {
		t.Errorf("Generation after the replacement: %d, %v; want more than %d", g, err, gen)
	}
}
