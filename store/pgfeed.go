package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// The change feed's timing. A listener that hears nothing for pgFeedIdle
// reads the counter over its connection, so a dead peer (a host gone
// without a FIN, or cut off by a partition) is found within
// pgFeedIdle+pgFeedPing rather than at TCP's timeouts, and a notification
// lost on the way is late by pgFeedIdle at most. Sooner, usually: the
// connection's keepalive and TCP_USER_TIMEOUT (pgDialer) break it about
// pgKeepAlive+1s after the last packet heard. While the feed is down, Generation follows other
// writers by polling every pgPollEvery, and the feed reconnects after
// pgReconnectMin, backing off to pgReconnectMax.
var pgFeedIdle = 10 * time.Second // a var for tests

const (
	pgFeedPing     = 3 * time.Second
	pgPollEvery    = 200 * time.Millisecond
	pgReconnectMin = 500 * time.Millisecond
	pgReconnectMax = 5 * time.Second
)

// pgFeed is PostgreSQL's generation source: the newest generation heard
// of, kept in memory by one LISTEN connection (or by polling while that is
// down), so Generation costs an atomic load per request.
type pgFeed struct {
	cfg          atomic.Pointer[pgx.ConnConfig]        // tests swap it to keep the feed down
	query        func(context.Context) (uint64, error) // reads the counter through the pool
	changeSignal                                       // known: the newest generation heard of
	listening    atomic.Bool
	// down is set while the counter cannot be read (the feed down and a
	// poll failed): Generation then fails at once with it, so a request
	// gets its 5xx without waiting on a dead server.
	//
	// Until then Generation answers from memory, and a request whose
	// answer the servers cached under it (the agent's port lookup, the
	// API's metadata) is answered, as it is when a notification is merely
	// late; one that must read fails within pgCallTimeout. Once down,
	// cached answers fail too: nothing says they still hold (an instance
	// deleted and its address given to another guest would hand that
	// guest the old one's keys and user data), and an outage is a 5xx,
	// never an answer the store may no longer give.
	down atomic.Pointer[error]
	// downSince is when down was set; the feed's goroutine owns it.
	downSince time.Time
	idle      time.Duration // pgFeedIdle when it started
	cancel    context.CancelFunc
	done      chan struct{}
}

func startPGFeed(cfg *pgx.ConnConfig, gen uint64, query func(context.Context) (uint64, error)) *pgFeed {
	lc := cfg.Copy()
	lc.RuntimeParams["application_name"] = cfg.RuntimeParams["application_name"] + " listener"
	// A deadline, not a cancel request, ends a wait: a cancel request
	// could land on the counter read that follows.
	lc.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &pgFeed{query: query, idle: pgFeedIdle, cancel: cancel, done: make(chan struct{})}
	f.cfg.Store(lc)
	f.known.Store(gen)
	go f.run(ctx)
	return f
}

func (f *pgFeed) get(context.Context) (uint64, error) {
	if err := f.down.Load(); err != nil {
		return 0, *err
	}
	return f.known.Load(), nil
}

// unavailable marks the store down after a failed read of the counter,
// logging it when it begins.
func (f *pgFeed) unavailable(err error) {
	if f.down.Load() == nil {
		f.downSince = time.Now()
		slog.Error("store unavailable: every request fails until PostgreSQL answers again", "err", err)
	}
	err = fmt.Errorf("%w: postgres: %v", ErrUnavailable, err)
	f.down.Store(&err)
}

// available clears down after a read of the counter succeeded, logging
// the end of an outage.
func (f *pgFeed) available() {
	if f.down.Swap(nil) != nil {
		slog.Info("store available again", "after", time.Since(f.downSince).Round(time.Millisecond))
	}
}

func (f *pgFeed) committed(gen uint64) { f.raise(gen) }

func (f *pgFeed) changed() <-chan struct{} { return f.wait() }

func (f *pgFeed) close() error {
	f.cancel()
	<-f.done
	return nil
}

// raise moves the generation up to gen, waking Changed's waiters;
// generations never go back.
func (f *pgFeed) raise(gen uint64) { f.saw(gen) }

// run listens, and polls while it cannot, until the store closes.
func (f *pgFeed) run(ctx context.Context) {
	defer close(f.done)
	wait := pgReconnectMin
	for down := false; ctx.Err() == nil; down = true {
		heard, err := f.listen(ctx, down)
		f.listening.Store(false)
		if ctx.Err() != nil {
			return
		}
		switch {
		case heard || !down: // it was up (or never came up): say so once
			wait = pgReconnectMin
			slog.Warn("store change feed down; polling until it reconnects", "error", err)
		default:
			slog.Debug("store change feed: reconnect failed", "retry_in", wait, "error", err)
		}
		f.poll(ctx, wait)
		wait = min(2*wait, pgReconnectMax)
	}
}

// listen LISTENs on one connection and raises the generation on each
// notification until the connection fails. heard says it got as far as
// listening; again, that the feed was down before.
func (f *pgFeed) listen(ctx context.Context, again bool) (heard bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, pgReconnectMax)
	conn, err := pgx.ConnectConfig(cctx, f.cfg.Load())
	cancel()
	if err != nil {
		return false, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), pgFeedPing)
		conn.Close(cctx) // a dead peer must not hold up Close
		cancel()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgChannel); err != nil {
		return false, err
	}
	// Read the counter only now: a commit before LISTEN is in it, one
	// after is notified.
	var gen int64
	if err := conn.QueryRow(ctx, `SELECT generation FROM counters WHERE id = 1`).Scan(&gen); err != nil {
		return false, err
	}
	f.raise(uint64(gen))
	f.available()
	f.listening.Store(true)
	if again {
		slog.Info("store change feed listening again", "generation", gen)
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, f.idle)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			if g, perr := strconv.ParseUint(n.Payload, 10, 64); perr == nil {
				f.raise(g)
			}
		case ctx.Err() != nil:
			return true, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			// Quiet: read the counter, which pings the connection and
			// catches up should notifications be lost on the way (a
			// pooler in transaction mode drops LISTEN).
			pctx, cancel := context.WithTimeout(ctx, pgFeedPing)
			err = conn.QueryRow(pctx, `SELECT generation FROM counters WHERE id = 1`).Scan(&gen)
			cancel()
			if err != nil {
				return true, err
			}
			f.raise(uint64(gen))
		default:
			return true, err
		}
	}
}

// poll reads the counter every pgPollEvery for d.
func (f *pgFeed) poll(ctx context.Context, d time.Duration) {
	t := time.NewTicker(pgPollEvery)
	defer t.Stop()
	end := time.After(d)
	for {
		qctx, cancel := context.WithTimeout(ctx, pgFeedPing)
		gen, err := f.query(qctx)
		cancel()
		switch {
		case err == nil:
			f.raise(gen)
			f.available()
		case ctx.Err() == nil:
			f.unavailable(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-end:
			return
		case <-t.C:
		}
	}
}
