package store

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// settle waits until the files' mtimes are older than the racy margin, so
// that the next Generation call may cache: the tests below then check the
// cached path, which is the one that could go stale. This is not a timing
// assertion, only a precondition.
func settle(t testing.TB, s *SQLite) {
	t.Helper()
	time.Sleep(racyMargin + 10*time.Millisecond)
	if _, err := s.Generation(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.wal().cur.Load() == nil {
		t.Fatal("generation not cached after the files settled")
	}
}

func gen(t testing.TB, s *SQLite) uint64 {
	t.Helper()
	g, err := s.Generation(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func openPair(t *testing.T) (a, b *SQLite) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mdctl.db")
	var err error
	if a, err = OpenSQLite(path); err != nil {
		t.Fatal(err)
	}
	if b, err = OpenSQLite(path); err != nil {
		a.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(); a.Close() })
	return a, b
}

// TestGenerationAcrossHandles: a server (a) caches the generation, another
// process (b) writes, and a's very next call must see it, whatever the
// WAL went through in between.
func TestGenerationAcrossHandles(t *testing.T) {
	ctx := context.Background()
	checkpoints := []string{"", "PASSIVE", "FULL", "RESTART", "TRUNCATE"}
	for _, cp := range checkpoints {
		for _, by := range []string{"writer", "reader"} {
			t.Run(cp+"-by-"+by, func(t *testing.T) {
				a, b := openPair(t)
				for round := range 3 {
					must(t, b.PutProject(ctx, Project{ID: fmt.Sprint("p", round)}))
					if cp != "" {
						who := b
						if by == "reader" {
							who = a
						}
						if _, err := who.pools().wdb.ExecContext(ctx, "PRAGMA wal_checkpoint("+cp+")"); err != nil {
							t.Fatal(err)
						}
					}
					settle(t, a)
					before := gen(t, a)
					// Same-size write after a restart: only mtime tells.
					must(t, b.PutProject(ctx, Project{ID: fmt.Sprint("p", round), Name: fmt.Sprint("x", round)}))
					if got := gen(t, a); got != before+1 {
						t.Fatalf("round %d: a sees generation %d after b's write, want %d", round, got, before+1)
					}
					if got := gen(t, b); got != before+1 {
						t.Fatalf("round %d: b sees %d, want %d", round, got, before+1)
					}
				}
			})
		}
	}
}

// TestGenerationBackToBack writes and reads with no pause, with WAL
// restarts in between, where mtimes cannot tell writes apart.
func TestGenerationBackToBack(t *testing.T) {
	ctx := context.Background()
	a, b := openPair(t)
	want := gen(t, a)
	for i := range 200 {
		must(t, b.PutProject(ctx, Project{ID: "p", Name: fmt.Sprint(i % 2)}))
		want++
		if got := gen(t, a); got != want {
			t.Fatalf("write %d: a sees %d, want %d", i, got, want)
		}
		if i%3 == 0 {
			if _, err := b.pools().wdb.ExecContext(ctx, "PRAGMA wal_checkpoint(RESTART)"); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestSettled(t *testing.T) {
	now := time.Now().UnixNano()
	ms := int64(time.Millisecond)
	tests := []struct {
		name string
		key  fileStat
		want bool
	}{
		{"old", fileStat{mtime: now - 100*ms + 1}, true},
		{"just written", fileStat{mtime: now - ms}, false},
		{"at the margin", fileStat{mtime: now - int64(racyMargin)}, true},
		{"whole seconds: needs more margin", fileStat{mtime: (now/1e9 - 1) * 1e9}, false},
		{"whole seconds, long ago", fileStat{mtime: (now/1e9 - 10) * 1e9}, true},
	}
	for _, tt := range tests {
		if got := tt.key.settled(now); got != tt.want {
			t.Errorf("%s: settled = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestGenerationOtherProcess runs a real second process that writes.
func TestGenerationOtherProcess(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mdctl.db")
	a, err := OpenSQLite(path)
	must(t, err)
	defer a.Close()
	for round := range 2 {
		settle(t, a)
		before := gen(t, a)
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperWriterProcess$")
		cmd.Env = append(os.Environ(), "MDCTL_STORE_HELPER_DB="+path, fmt.Sprint("MDCTL_STORE_HELPER_ROUND=", round))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("writer process: %v\n%s", err, out)
		}
		if got := gen(t, a); got != before+1 {
			t.Fatalf("round %d: generation %d after the other process wrote, want %d", round, got, before+1)
		}
		p, err := a.GetProject(ctx, fmt.Sprint("from-child-", round))
		must(t, err)
		if p.ID == "" {
			t.Fatal("child's project not visible")
		}
	}
}

// TestHelperWriterProcess is the second process of TestGenerationOtherProcess.
func TestHelperWriterProcess(t *testing.T) {
	path := os.Getenv("MDCTL_STORE_HELPER_DB")
	if path == "" {
		t.Skip("helper process only")
	}
	s, err := OpenSQLite(path)
	must(t, err)
	defer s.Close()
	round := os.Getenv("MDCTL_STORE_HELPER_ROUND")
	must(t, s.PutProject(context.Background(), Project{ID: "from-child-" + round}))
}

func BenchmarkGeneration(b *testing.B) {
	s := openTest(b)
	fixture(b, s)
	settle(b, s)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Generation(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGenerationUncached is the price when something just changed.
func BenchmarkGenerationUncached(b *testing.B) {
	s := openTest(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.queryGeneration(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// TestGenerationWALReplaced: should the -wal file this process watches be
// removed (and a new one made), Generation notices by the link count and
// watches the new file.
func TestGenerationWALReplaced(t *testing.T) {
	ctx := context.Background()
	a, b := openPair(t)
	settle(t, a)
	gone, err := os.Create(filepath.Join(t.TempDir(), "gone-wal"))
	must(t, err)
	must(t, os.Remove(gone.Name()))
	a.wal().wal.Store(gone) // as if the watched -wal had been unlinked
	a.wal().old = append(a.wal().old, gone)
	before := gen(t, a)
	must(t, b.PutProject(ctx, Project{ID: "p-new"}))
	if got := gen(t, a); got != before+1 {
		t.Fatalf("generation %d, want %d", got, before+1)
	}
	if a.wal().wal.Load() == gone {
		t.Error("still watching the removed file")
	}
	settle(t, a) // and caching works again on the new descriptor
}
