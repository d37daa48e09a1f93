package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// dialect is all that differs between the SQL backends once a store is
// open: the record layer (records.go) and the rules (rules.go) are shared.
type dialect struct {
	// rebind turns the record layer's "?" placeholders into the backend's.
	rebind func(q string) string
	// noIndex writes col so the planner does not pick its index (SQLite
	// has no statistics by default; PostgreSQL needs no hint).
	noIndex func(col string) string
	// mapErr turns constraint violations into ErrConflict.
	mapErr func(err error) error
	// readTx are the options of a multi-statement read: a snapshot;
	// writeTx those of a write, whose statements must each see every
	// commit before it (lockWrites then makes the rules' reads current).
	readTx, writeTx *sql.TxOptions
	// lockWrites, run first in every write transaction, serialises
	// writers ("" when beginning the transaction already does).
	lockWrites string
	// migrations holds the backend's NNNN_name.sql files; migrationLock,
	// run first in each migration's transaction, makes processes opening
	// one database at once apply each migration once.
	migrations    fs.FS
	migrationDir  string
	migrationLock string
	// versionTable creates schema_migrations.
	versionTable string
	// publish announces a commit's generation in its transaction, to other
	// processes and hosts; nil where they find out themselves (SQLite's
	// -wal file).
	publish func(ctx context.Context, tx *sql.Tx, gen uint64) error
	// callTimeout is the deadline of each call a guest's request makes
	// (bounded); 0 where none is needed (SQLite: a local file).
	callTimeout time.Duration
	// analyze, run after a bulk load, gives the planner statistics at once
	// ("" where plans do not rely on them).
	analyze string
}

// rebound is a querier whose statements are rebound for a dialect.
type rebound struct {
	q querier
	d *dialect
}

func (r rebound) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return r.q.ExecContext(ctx, r.d.rebind(q), args...)
}

func (r rebound) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return r.q.QueryContext(ctx, r.d.rebind(q), args...)
}

func (r rebound) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return r.q.QueryRowContext(ctx, r.d.rebind(q), args...)
}

// genSource answers Generation for a store, as cheaply as its backend
// allows, and hears of the store's own commits.
type genSource interface {
	get(ctx context.Context) (uint64, error)
	committed(gen uint64)
	// changed is Notifier.Changed; wakeAll closes what it handed out.
	changed() <-chan struct{}
	wakeAll()
	close() error
}

// sqlStore is a Store over database/sql: SQLite and PostgreSQL are a
// sqlStore each with their own dialect, pools and generation source.
// The pools are swapped whole (SQLite's file watch, watch.go): while the
// file is gone they are dead pools that fail every call at once, and when
// it is back they are new pools on the new file.
type sqlStore struct {
	d   *dialect
	cur atomic.Pointer[pools]
	// high is the highest generation Generation reported: pools opened
	// anew count on from past it, so that generations never go back.
	high atomic.Uint64
}

// pools are one open database: its connection pools, prepared statements
// and generation source.
type pools struct {
	wdb *sql.DB // writers
	rdb *sql.DB // readers; may be wdb
	rst *stmtCache
	gen genSource
	// genBase is added to gen's counter: 0 for the pools a store opened
	// with, past every generation reported before for pools opened anew.
	genBase uint64
}

// pools is the database the store uses now.
func (s *sqlStore) pools() *pools { return s.cur.Load() }

// close closes p's pools and generation source.
func (p *pools) close() error {
	errs := []error{p.rst.close(), p.rdb.Close()}
	if p.wdb != p.rdb {
		errs = append(errs, p.wdb.Close())
	}
	// SQLite's -wal descriptor goes last, after SQLite has let go of the file.
	return errors.Join(append(errs, p.gen.close())...)
}

var (
	_ Store    = (*sqlStore)(nil)
	_ Notifier = (*sqlStore)(nil)
)

// tx wraps q (a pool or a transaction) for the record layer.
func (s *sqlStore) tx(q querier) *sqlTx { return &sqlTx{q: rebound{q, s.d}, d: s.d} }

// Update runs fn in one write transaction and, when fn changed anything
// served, bumps the generation and publishes it in that transaction. fn's
// error (or panic) rolls all of it back. fn must write through tx only: a
// write through the store itself would wait for this very transaction.
func (s *sqlStore) Update(ctx context.Context, fn func(tx Tx) error) error {
	p := s.pools()
	stx, err := p.wdb.BeginTx(ctx, s.d.writeTx)
	if err != nil {
		return fmt.Errorf("begin write: %w", s.d.mapErr(err))
	}
	defer stx.Rollback()
	if s.d.lockWrites != "" {
		if _, err := stx.ExecContext(ctx, s.d.lockWrites); err != nil {
			return fmt.Errorf("begin write: lock: %w", s.d.mapErr(err))
		}
	}
	t := s.tx(stx)
	if err := fn(t); err != nil {
		return err
	}
	var gen uint64
	if t.dirty {
		if err := stx.QueryRowContext(ctx, `UPDATE counters SET generation = generation + 1 WHERE id = 1
			RETURNING generation`).Scan(&gen); err != nil {
			return fmt.Errorf("bump generation: %w", s.d.mapErr(err))
		}
		if s.d.publish != nil {
			if err := s.d.publish(ctx, stx, gen); err != nil {
				return fmt.Errorf("publish generation %d: %w", gen, err)
			}
		}
	}
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", s.d.mapErr(err))
	}
	if t.dirty {
		p.gen.committed(gen)
	}
	return nil
}

// view runs fn in one read transaction: a consistent snapshot for reads
// that take more than one statement.
func view[T any](ctx context.Context, s *sqlStore, fn func(t *sqlTx) (T, error)) (T, error) {
	var zero T
	p := s.pools()
	stx, err := p.rdb.BeginTx(ctx, s.d.readTx)
	if err != nil {
		return zero, fmt.Errorf("begin read: %w", s.d.mapErr(err))
	}
	defer stx.Rollback()
	t := s.tx(stx)
	t.stmts, t.tx = p.rst, stx
	v, err := fn(t)
	if err != nil {
		return zero, err
	}
	return v, stx.Commit()
}

// bounded runs fn, one call a guest's request makes, within the dialect's
// callTimeout, and maps its failure (mapErr): on a server across a network
// the request then gets its 5xx (ErrUnavailable) within that bound when
// the server stops answering, rather than waiting on a dead connection
// or, behind it, for one of the pool's.
func bounded[T any](ctx context.Context, s *sqlStore, fn func(ctx context.Context) (T, error)) (T, error) {
	if s.d.callTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.d.callTimeout)
		defer cancel()
	}
	v, err := fn(ctx)
	if err != nil {
		err = s.d.mapErr(err)
	}
	return v, err
}

// direct reads with one statement, which is a snapshot by itself.
func (s *sqlStore) direct() *sqlTx { return s.pools().direct(s.d) }

// direct reads from p with one statement.
func (p *pools) direct(d *dialect) *sqlTx {
	t := &sqlTx{q: rebound{p.rdb, d}, d: d}
	t.stmts = p.rst
	return t
}

// queryGeneration reads the counter in p's database (not from memory).
func (p *pools) queryGeneration(d *dialect) func(context.Context) (uint64, error) {
	return func(ctx context.Context) (uint64, error) { return p.direct(d).Generation(ctx) }
}

func (s *sqlStore) queryGeneration(ctx context.Context) (uint64, error) {
	return s.direct().Generation(ctx)
}

// Generation returns the write counter from memory wherever the backend
// allows it (see genCache, pgFeed), so servers can call it on every request.
func (s *sqlStore) Generation(ctx context.Context) (uint64, error) {
	p := s.pools()
	g, err := p.gen.get(ctx)
	if err != nil {
		return 0, err
	}
	g += p.genBase
	for {
		h := s.high.Load()
		if g <= h || s.high.CompareAndSwap(h, g) {
			return g, nil
		}
	}
}

// Ping reads the store with one cheap query (never from memory), so a
// health check sees what a guest's request would; a failure is
// ErrUnavailable.
func (s *sqlStore) Ping(ctx context.Context) error {
	if _, err := s.queryGeneration(ctx); err != nil {
		if errors.Is(err, ErrUnavailable) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// Changed returns a channel closed when the generation moves (Notifier),
// or when the pools it came from are replaced (swapOut): the generation
// then moves too, past everything reported before.
func (s *sqlStore) Changed() <-chan struct{} {
	p := s.pools()
	ch := p.gen.changed()
	if s.pools() != p {
		// Replaced while asking: swapOut may have woken the waiters
		// before ch was handed out.
		return closedChan
	}
	return ch
}

// closedChan is a channel that is closed.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// swapOut puts p in use and wakes the waiters on the pools it replaces,
// which it returns.
func (s *sqlStore) swapOut(p *pools) *pools {
	old := s.cur.Swap(p)
	old.gen.wakeAll()
	return old
}

// Close closes the pools and the generation source.
func (s *sqlStore) Close() error { return s.pools().close() }

// migrate applies each of the dialect's migrations not yet recorded, in
// order, each in its own transaction behind the dialect's migration lock.
func (s *sqlStore) migrate(ctx context.Context) error {
	if err := s.inMigrationTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.d.versionTable)
		return err
	}); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	names, err := fs.Glob(s.d.migrations, path.Join(s.d.migrationDir, "*.sql"))
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

// inMigrationTx runs fn in a write transaction holding the migration lock.
func (s *sqlStore) inMigrationTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.pools().wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if s.d.migrationLock != "" {
		if _, err := tx.ExecContext(ctx, s.d.migrationLock); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// migrationVersion is the number a migration's file name starts with.
func migrationVersion(name string) (int, error) {
	base := path.Base(name)
	num, _, _ := strings.Cut(base, "_")
	v, err := strconv.Atoi(num)
	if err != nil {
		return 0, fmt.Errorf("migration %s: name must start with a number", base)
	}
	return v, nil
}

// checkNotNewer refuses a database a newer mdctl has migrated past what
// this binary knows: its tables may no longer mean what this code thinks.
func (s *sqlStore) checkNotNewer(ctx context.Context, names []string) error {
	known := 0
	if len(names) > 0 {
		known, _ = migrationVersion(names[len(names)-1])
	}
	var newest int
	if err := s.pools().wdb.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&newest); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if newest > known {
		return fmt.Errorf("database schema version %d is newer than this mdctl knows (%d): upgrade mdctl", newest, known)
	}
	return nil
}

func (s *sqlStore) applyMigration(ctx context.Context, name string) error {
	base := path.Base(name)
	version, err := migrationVersion(name)
	if err != nil {
		return err
	}
	body, err := fs.ReadFile(s.d.migrations, name)
	if err != nil {
		return fmt.Errorf("migration %s: %w", base, err)
	}
	err = s.inMigrationTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT count(*) FROM schema_migrations WHERE version = ?`), version).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
			version, base, time.Now().UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("migration %s: %w", base, err)
	}
	return nil
}
