package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/mdctl/mdctl/internal/sockopt"
)

//go:embed migrations/postgres/*.sql
var pgMigrationFS embed.FS

// pgChannel is the LISTEN/NOTIFY channel every committed write publishes
// its generation on.
const pgChannel = "mdctl_changes"

// pgMigrationLock is the advisory lock key migrations hold (any constant
// that no other user of the database picks: "mdctl" in ASCII).
const pgMigrationLock = 0x6d6463746c

// The bounds on PostgreSQL's network, so that a server cut off by a
// partition (its packets dropped: no refusal, no reset) costs a request
// seconds, never TCP's minutes. pgConnectTimeout bounds a connection
// attempt when the URL sets none (connect_timeout). pgUserTimeout is
// TCP_USER_TIMEOUT on every connection: data unacknowledged that long
// kills it. pgKeepAlive probes an idle connection after that much quiet,
// so one the pool keeps dies of the same timeout instead of lingering
// until it is next used. pgCallTimeout is the deadline of each read a
// guest's request makes (bounded).
const (
	pgConnectTimeout = 3 * time.Second
	pgUserTimeout    = 5 * time.Second
	pgKeepAlive      = 5 * time.Second
	pgCallTimeout    = 3 * time.Second
)

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
	analyze:     `ANALYZE`,
	publish:     notifyGeneration,
	callTimeout: pgCallTimeout,
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
	cfg.DialFunc = pgDialer(cfg.ConnectTimeout).DialContext
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

// pgDialer makes every connection to the server, the pool's and the change
// feed's: within timeout, with TCP_USER_TIMEOUT and keepalive, so a silent
// server breaks a connection in seconds (see pgUserTimeout).
func pgDialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout: timeout,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable: true, Idle: pgKeepAlive, Interval: time.Second,
			Count: int(pgUserTimeout / time.Second), // TCP_USER_TIMEOUT decides first on Linux
		},
		Control: sockopt.UserTimeout(pgUserTimeout),
	}
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

// mapPGErr turns unique violations (SQLSTATE 23505) into ErrConflict,
// and a server that cannot be talked to (pgLost) into ErrUnavailable.
func mapPGErr(err error) error {
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "23505":
		return fmt.Errorf("%w: %v", ErrConflict, err)
	case errors.Is(err, ErrUnavailable) || !pgLost(err):
		return err
	}
	return fmt.Errorf("%w: postgres: %w", ErrUnavailable, err)
}

// pgLost reports an error that says the server could not be talked to,
// not that it refused the statement: a connection broken, reset or timed
// out (TCP_USER_TIMEOUT), a deadline run out (a partition: no answer at
// all), or the server shutting down or not yet taking connections
// (SQLSTATE classes 08 and 57P).
func pgLost(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P")
	}
	var ne net.Error
	return errors.As(err, &ne) || pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
