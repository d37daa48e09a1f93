package pgtest

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"
)

// TestMissingBinaries: without the server binaries the message says what
// to do, and the skip variable turns the failure into a skip.
func TestMissingBinaries(t *testing.T) {
	t.Setenv(BinEnv, t.TempDir())
	if _, err := Bin(); err == nil || !strings.Contains(err.Error(), "make test") || !strings.Contains(err.Error(), SkipEnv+"=skip") {
		t.Fatalf("Bin() = %v, want a hint to run make test", err)
	}
	t.Setenv(SkipEnv, "skip")
	var skipped bool
	t.Run("start", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		Start(t)
	})
	if !skipped {
		t.Error("Start did not skip with " + SkipEnv + "=skip")
	}
}

// TestStartAndRemove: a cluster answers on its socket and over TCP, hands
// out empty databases, and is gone, directory and all, after its test.
func TestStartAndRemove(t *testing.T) {
	var dir string
	t.Run("cluster", func(t *testing.T) {
		c := Start(t)
		dir = c.dir
		for _, u := range []string{c.NewDB(t), c.TCPURL("postgres")} {
			db, err := sql.Open("pgx", u)
			if err != nil {
				t.Fatal(err)
			}
			var n int
			if err := db.QueryRowContext(context.Background(), `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&n); err != nil || n != 0 {
				t.Errorf("%s: %d tables, %v", u, n, err)
			}
			db.Close()
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cluster dir %s left behind: %v", dir, err)
	}
}
