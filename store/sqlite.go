package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
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
// WAL mode, never wait for the writer. Its change feed is the -wal file
// (genCache). A watch on the file (watch.go) makes every call fail at once
// with ErrUnavailable while the file is removed or not a database, and
// opens the file again when it is back.
type SQLite struct {
	sqlStore
	path  string
	watch *fileWatch
}

// sqliteDialect: "?" placeholders as written, a unary "+" to keep a
// column's index out of a plan.
var sqliteDialect = &dialect{
	rebind:       func(q string) string { return q },
	noIndex:      func(col string) string { return "+" + col },
	mapErr:       mapSQLiteErr,
	migrations:   migrationFS,
	migrationDir: "migrations",
	versionTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL)`,
}

var _ Store = (*SQLite)(nil)

// Open opens the store named by url: "" is SQLite at <dataDir>/mdctl.db,
// "sqlite:///path" or a plain path is that SQLite file, postgres:// (or
// postgresql://) is a PostgreSQL database.
func Open(dataDir, url string) (Store, error) {
	if isPostgresURL(url) {
		return OpenPostgres(context.Background(), url)
	}
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

// Exists reports whether the store Open(dataDir, url) names is there
// already, so that read-only commands say "no store" rather than create an
// empty one; it also returns where it looked. A PostgreSQL database is
// the operator's to create: it counts as there, and Open says whether it
// answers.
func Exists(dataDir, url string) (bool, string, error) {
	path, file, err := SQLiteFile(dataDir, url)
	if err != nil {
		return false, "", err
	}
	if !file {
		return true, RedactURL(url), nil
	}
	_, err = os.Stat(path)
	switch {
	case err == nil:
		return true, path, nil
	case errors.Is(err, os.ErrNotExist):
		return false, path, nil
	}
	return false, path, fmt.Errorf("open store: %w", err)
}

// sqlitePath turns a --db URL into the SQLite file it names.
func sqlitePath(dataDir, u string) (string, error) {
	switch {
	case u == "":
		if dataDir == "" {
			return "", errors.New("open store: no data directory and no --db URL")
		}
		return filepath.Join(dataDir, "mdctl.db"), nil
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

// SQLiteFile is the file a --db URL names when it names a SQLite store
// (ok false for PostgreSQL).
func SQLiteFile(dataDir, url string) (path string, ok bool, err error) {
	if isPostgresURL(url) {
		return "", false, nil
	}
	path, err = sqlitePath(dataDir, url)
	return path, err == nil, err
}

// RedactURL hides a password in a store URL so it can be shown or logged.
func RedactURL(u string) string {
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
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: create directory: %w", abs, err)
	}
	if err := private(abs); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	p, err := openSQLitePools(abs)
	if err != nil {
		return nil, err
	}
	s := &SQLite{path: abs}
	s.d = sqliteDialect
	s.cur.Store(p)
	s.watch = startFileWatch(s)
	return s, nil
}

// openSQLitePools opens the database file at abs (it must exist: a pool
// never creates one, so a connection opened after the file was removed
// fails rather than making an empty store) and applies pending migrations.
func openSQLitePools(abs string) (*pools, error) {
	wdb, err := openPool(abs, true)
	if err != nil {
		return nil, err
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxIdleTime(0)
	p := &pools{wdb: wdb}
	m := &sqlStore{d: sqliteDialect}
	m.cur.Store(p)
	if err := m.migrate(context.Background()); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	if p.rdb, err = openPool(abs, false); err != nil {
		wdb.Close()
		return nil, err
	}
	n := max(4, runtime.GOMAXPROCS(0))
	p.rdb.SetMaxOpenConns(n)
	p.rdb.SetMaxIdleConns(n)
	p.rst = newStmtCache(p.rdb)
	p.gen = newGenCache(abs, p.queryGeneration(sqliteDialect))
	return p, nil
}

// wal is the -wal file's generation cache of the pools in use (nil while
// the file is unavailable).
func (s *SQLite) wal() *genCache {
	g, _ := s.pools().gen.(*genCache)
	return g
}

// Close stops the watch, then closes the pools.
func (s *SQLite) Close() error {
	s.watch.stop()
	return s.sqlStore.Close()
}

// private makes the database file (it holds metadata_proxy_shared_secret)
// and its journals readable by the owner only: a new file is created 0600
// (SQLite gives its -wal and -shm the same mode), an older one is tightened.
func private(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, fi.Mode().Perm()&0o700); err != nil {
				return err
			}
		}
	}
	return nil
}

// openPool opens a connection pool with the pragmas every connection needs.
// Only the writer sets journal_mode (it is persistent in the file) so that
// readers never try to change it.
func openPool(path string, writer bool) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.Itoa(int(busyTimeout/time.Millisecond))+")")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("mode", "rw") // private made the file; never make another
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

// mapSQLiteErr turns SQLite's constraint violations into ErrConflict, as a
// backstop behind the explicit checks that name the conflicting record,
// and a file that cannot be opened or read as a database into
// ErrUnavailable: the file watch (watch.go) says so within a tick, and a
// call in that tick must fail as the ones after it do.
func mapSQLiteErr(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) || errors.Is(err, ErrUnavailable) {
		return err
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return fmt.Errorf("%w: %v", ErrConflict, err)
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_IOERR:
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}
