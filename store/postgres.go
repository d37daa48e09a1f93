package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

//go:embed migrations/postgres/*.sql
var pgMigrationFS embed.FS

// pgChannel is the LISTEN/NOTIFY channel every committed write publishes
// its generation on.
const pgChannel = "mdctl_changes"

// pgMigrationLock is the advisory lock key migrations hold (any constant
// that no other user of the database picks: "mdctl" in ASCII).
const pgMigrationLock = 0x6d6463746c

// pgConnectTimeout bounds a connection attempt when the URL sets none
// (connect_timeout).
const pgConnectTimeout = 10 * time.Second

// pgPoolSize bounds each process's connections: serves on many hosts share
// one server's max_connections (100 by default).
const pgPoolSize = 8

// Postgres is the Store on a PostgreSQL database, for several hosts on one
// store. Writers queue on the counters row's lock (as SQLite's writers do
// on its one write lock), so every rule checked before a write holds when
// it commits, and the unique indexes back them. Each commit publishes its
// generation with NOTIFY in its own transaction; every handle LISTENs and
// answers Generation from memory (pgFeed).
type Postgres struct {
	sqlStore
	feed *pgFeed
}

var pgDialect = &dialect{
	rebind:        rebindDollar,
	noIndex:       func(col string) string { return col },
	mapErr:        mapPGErr,
	readTx:        &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true},
	writeTx:       &sql.TxOptions{Isolation: sql.LevelReadCommitted}, // whatever the database's default
	lockWrites:    `SELECT generation FROM counters WHERE id = 1 FOR UPDATE`,
	migrations:    pgMigrationFS,
	migrationDir:  "migrations/postgres",
	migrationLock: `SELECT pg_advisory_xact_lock(` + strconv.Itoa(pgMigrationLock) + `)`,
	versionTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at BIGINT NOT NULL)`,
	// Until autovacuum gets to a freshly loaded table, the planner guesses
	// and reads a whole network's ports to find one address.
	analyze: `ANALYZE`,
	publish: notifyGeneration,
}

// isPostgresURL reports whether a --db URL names a PostgreSQL database.
func isPostgresURL(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

// OpenPostgres connects to the database at url (postgres://user:pass@host/db
// or with ?host=/socket/dir), applies pending migrations and starts
// listening for other writers' changes.
func OpenPostgres(ctx context.Context, url string) (*Postgres, error) {
	name := RedactURL(url)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open postgres store %s: %w", name, err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = pgConnectTimeout // else an unreachable host takes TCP's minutes
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "mdctl"
	}
	db := sql.OpenDB(unavailableConnector{stdlib.GetConnector(*cfg)})
	db.SetMaxOpenConns(pgPoolSize)
	db.SetMaxIdleConns(pgPoolSize)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", name, err)
	}
	s := &Postgres{}
	p := &pools{wdb: db, rdb: db}
	s.d = pgDialect
	s.cur.Store(p)
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", name, err)
	}
	gen, err := s.queryGeneration(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", name, err)
	}
	s.feed = startPGFeed(cfg, gen, s.queryGeneration)
	p.gen = s.feed
	return s, nil
}

// unavailableConnector marks a failed connection ErrUnavailable: the
// server is down or unreachable, an outage rather than a bad request.
type unavailableConnector struct{ driver.Connector }

func (c unavailableConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres: %w", ErrUnavailable, err)
	}
	return conn, nil
}

// notifyGeneration publishes gen in tx: PostgreSQL delivers it to every
// listener when, and only if, tx commits.
func notifyGeneration(ctx context.Context, tx *sql.Tx, gen uint64) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, pgChannel, strconv.FormatUint(gen, 10))
	return err
}

// Listening reports whether the change feed is connected (else Generation
// follows other writers by polling until it reconnects).
func (s *Postgres) Listening() bool { return s.feed.listening.Load() }

// rebindDollar numbers the record layer's "?" placeholders $1, $2, ….
// Statements carry no "?" in literals.
func rebindDollar(q string) string {
	n := strings.Count(q, "?")
	if n == 0 {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 2*n)
	i := 0
	for {
		j := strings.IndexByte(q, '?')
		if j < 0 {
			b.WriteString(q)
			return b.String()
		}
		i++
		b.WriteString(q[:j])
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(i))
		q = q[j+1:]
	}
}

// mapPGErr turns unique violations (SQLSTATE 23505) into ErrConflict.
func mapPGErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return fmt.Errorf("%w: %v", ErrConflict, err)
	}
	return err
}
