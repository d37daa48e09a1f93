package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// busyTimeout is how long a connection waits for another writer (maybe in
// another process: the CLI beside a running server) before SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// SQLite is the embedded Store. Writes go through a pool of one connection
// whose transactions begin IMMEDIATE, so writers queue in Go within a
// process and on the busy timeout across processes, and never fail halfway
// through a transaction on a lock upgrade. Reads use their own pool and, in
// WAL mode, never wait for the writer.
type SQLite struct {
	path string
	wdb  *sql.DB // one connection, BEGIN IMMEDIATE
	rdb  *sql.DB // readers, query_only
	gen  *genCache
	rst  *stmtCache // prepared hot-path reads on rdb
}

var _ Store = (*SQLite)(nil)

// Open opens the store named by url: "" is SQLite at <dataDir>/mdctl.db,
// "sqlite:///path" or a plain path is that SQLite file. postgres:// is
// recognised but not built yet.
func Open(dataDir, url string) (Store, error) {
	path, err := sqlitePath(dataDir, url)
	if err != nil {
		return nil, err
	}
	s, err := OpenSQLite(path)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// sqlitePath turns a --db URL into the SQLite file it names.
func sqlitePath(dataDir, u string) (string, error) {
	switch {
	case u == "":
		if dataDir == "" {
			return "", errors.New("open store: no data directory and no --db URL")
		}
		return filepath.Join(dataDir, "mdctl.db"), nil
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		return "", fmt.Errorf("open store %s: the PostgreSQL backend is not built yet; use a SQLite path or sqlite:///path", redactURL(u))
	case strings.HasPrefix(u, "sqlite://"):
		p := strings.TrimPrefix(u, "sqlite://")
		if p == "" {
			return "", fmt.Errorf("open store %q: no file path after sqlite://", u)
		}
		return p, nil
	case strings.HasPrefix(u, "sqlite:"):
		return strings.TrimPrefix(u, "sqlite:"), nil
	case strings.Contains(u, "://"):
		scheme, _, _ := strings.Cut(u, "://")
		return "", fmt.Errorf("open store: unknown scheme %q; use a SQLite path, sqlite:///path or postgres://", scheme)
	}
	return u, nil
}

// redactURL hides a password in a connection URL so errors can be logged.
func redactURL(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return "postgres://…"
	}
	return pu.Redacted()
}

// OpenSQLite opens (creating it and its directory if needed) the SQLite
// store at path and applies pending migrations.
func OpenSQLite(path string) (*SQLite, error) {
	// Two processes creating the same new file race to switch it to WAL,
	// and SQLite answers that switch SQLITE_BUSY without waiting out the
	// busy timeout; the loser simply opens again once the winner is done.
	for try := 0; ; try++ {
		s, err := openSQLite(path)
		if err == nil || !isBusy(err) || try == 50 {
			return s, err
		}
		time.Sleep(time.Duration(10+try*10) * time.Millisecond)
	}
}

// isBusy reports SQLite's "database is locked".
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

func openSQLite(path string) (*SQLite, error) {
	if path == "" {
		return nil, errors.New("open sqlite store: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: create directory: %w", abs, err)
	}
	s := &SQLite{path: abs}
	if s.wdb, err = openPool(abs, true); err != nil {
		return nil, err
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxIdleTime(0)
	if err := s.migrate(context.Background()); err != nil {
		s.wdb.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	if s.rdb, err = openPool(abs, false); err != nil {
		s.wdb.Close()
		return nil, err
	}
	n := max(4, runtime.GOMAXPROCS(0))
	s.rdb.SetMaxOpenConns(n)
	s.rdb.SetMaxIdleConns(n)
	s.rst = newStmtCache(s.rdb)
	s.gen = newGenCache(abs, s.queryGeneration)
	return s, nil
}

// openPool opens a connection pool with the pragmas every connection needs.
// Only the writer sets journal_mode (it is persistent in the file) so that
// readers never try to change it.
func openPool(path string, writer bool) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.Itoa(int(busyTimeout/time.Millisecond))+")")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	if writer {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Set("_txlock", "immediate")
	} else {
		q.Add("_pragma", "query_only(1)")
	}
	dsn := "file:" + path + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	if err := db.PingContext(context.Background()); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	return db, nil
}

// Path is the database file.
func (s *SQLite) Path() string { return s.path }

// Close closes both pools.
func (s *SQLite) Close() error {
	// The -wal descriptor goes last, after SQLite has let go of the file.
	return errors.Join(s.rst.close(), s.rdb.Close(), s.wdb.Close(), s.gen.closeFiles())
}

// migrate applies each embedded migration not yet recorded, in order, each
// in its own IMMEDIATE transaction so that two processes opening a new file
// at once apply it once.
func (s *SQLite) migrate(ctx context.Context) error {
	if _, err := s.wdb.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sort.Strings(names)
	if err := s.checkNotNewer(ctx, names); err != nil {
		return err
	}
	for _, name := range names {
		if err := s.applyMigration(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// checkNotNewer refuses a database a newer mdctl has migrated past what
// this binary knows: its tables may no longer mean what this code thinks.
func (s *SQLite) checkNotNewer(ctx context.Context, names []string) error {
	known := 0
	if len(names) > 0 {
		num, _, _ := strings.Cut(filepath.Base(names[len(names)-1]), "_")
		known, _ = strconv.Atoi(num)
	}
	var newest int
	if err := s.wdb.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&newest); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if newest > known {
		return fmt.Errorf("database schema version %d is newer than this mdctl knows (%d): upgrade mdctl", newest, known)
	}
	return nil
}

func (s *SQLite) applyMigration(ctx context.Context, name string) error {
	base := filepath.Base(name)
	num, _, _ := strings.Cut(base, "_")
	version, err := strconv.Atoi(num)
	if err != nil {
		return fmt.Errorf("migration %s: name must start with a number", base)
	}
	body, err := migrationFS.ReadFile(name)
	if err != nil {
		return fmt.Errorf("migration %s: %w", base, err)
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: %w", base, err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
		return fmt.Errorf("migration %s: %w", base, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, string(body)); err != nil {
		return fmt.Errorf("migration %s: %w", base, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		version, base, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("migration %s: %w", base, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %s: commit: %w", base, err)
	}
	return nil
}

// Update runs fn in one IMMEDIATE transaction and bumps the generation in
// it when fn wrote anything. fn's error (or panic) rolls all of it back.
// fn must write through tx only: a write through the store itself would
// wait for this very transaction to end.
func (s *SQLite) Update(ctx context.Context, fn func(tx Tx) error) error {
	stx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin write: %w", mapErr(err))
	}
	defer stx.Rollback()
	t := &sqlTx{q: stx}
	if err := fn(t); err != nil {
		return err
	}
	if t.dirty {
		if _, err := stx.ExecContext(ctx, `UPDATE counters SET generation = generation + 1 WHERE id = 1`); err != nil {
			return fmt.Errorf("bump generation: %w", mapErr(err))
		}
	}
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", mapErr(err))
	}
	if t.dirty {
		s.gen.invalidate()
	}
	return nil
}

// view runs fn in one read transaction: a consistent snapshot for reads
// that take more than one statement.
func view[T any](ctx context.Context, s *SQLite, fn func(t *sqlTx) (T, error)) (T, error) {
	var zero T
	stx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return zero, fmt.Errorf("begin read: %w", mapErr(err))
	}
	defer stx.Rollback()
	v, err := fn(&sqlTx{q: stx, stmts: s.rst, tx: stx})
	if err != nil {
		return zero, err
	}
	return v, stx.Commit()
}

// direct reads with one statement, which is a snapshot by itself.
func (s *SQLite) direct() *sqlTx { return &sqlTx{q: s.rdb, stmts: s.rst} }

func (s *SQLite) queryGeneration(ctx context.Context) (uint64, error) {
	return s.direct().Generation(ctx)
}

// Generation returns the write counter. It answers from memory while the
// -wal file is untouched since the last query, so servers can
// call it on every request; see genCache for why that is never stale.
func (s *SQLite) Generation(ctx context.Context) (uint64, error) {
	return s.gen.get(ctx)
}

// mapErr turns SQLite's constraint violations into ErrConflict, as a
// backstop behind the explicit checks that name the conflicting record.
func mapErr(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %v", ErrConflict, err)
		}
	}
	return err
}
