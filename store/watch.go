package store

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"
)

// The SQLite file's watch. Open connections keep the inode they opened:
// with the file removed, or renamed away, they would go on reading the
// old data forever while `mdctl` commands write to a new file; with the
// file overwritten, their page cache hides the damage. So every
// fileWatchEvery the path is stat'ed and, when the stat changed, its
// header read. While the path holds no SQLite database the store's pools
// are dead pools that fail every call at once with ErrUnavailable (a
// guest gets a 5xx without waiting; nothing is served from what the
// process still holds open); once it holds one again, unchanged for a
// whole tick (not still being copied), new pools open on it. The outage
// is logged once when it starts (and when its reason changes) and once
// when it ends, never per request.
//
// Leaving a file empties its WAL into it (a TRUNCATE checkpoint) and
// closes its pools at once, before any other file is opened: that WAL
// must never be paired with the next file at the path (SQLite would
// replay one database's WAL over another's pages: a database renamed over
// the old one served the old content).

// fileWatchEvery is how often the watch looks at the file: a removed file
// is noticed within about this, and a file put back served within two.
const fileWatchEvery = 250 * time.Millisecond

// sqliteMagic starts every SQLite database file.
var sqliteMagic = []byte("SQLite format 3\x00")

// fileWatch watches one SQLite store's file.
type fileWatch struct {
	s    *SQLite
	stop func()

	// Owned by the watch's goroutine.
	opened fileID    // the file the live pools opened
	seen   fileID    // the last stat: live, to read the header only on change; down, to wait for it to settle
	left   fileID    // down: the file as the store left it, not to be reopened unchanged
	down   error     // the outage's reason; nil while the pools are live
	since  time.Time // when the outage began
}

// fileID is what changes when the file is replaced or written.
type fileID struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

// same reports the same file (maybe written since).
func (a fileID) same(b fileID) bool { return a.dev == b.dev && a.ino == b.ino }

func startFileWatch(s *SQLite) *fileWatch {
	w := &fileWatch{s: s}
	w.opened, _ = statFile(s.path)
	w.seen = w.opened
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(fileWatchEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				w.check()
			}
		}
	})
	w.stop = sync.OnceFunc(func() { cancel(); wg.Wait() })
	return w
}

func (w *fileWatch) log() *slog.Logger { return slog.Default().With("store", w.s.path) }

// check looks at the file once and moves the pools between live and dead.
func (w *fileWatch) check() {
	id, err := statFile(w.s.path)
	if w.down == nil {
		if err == nil && id == w.seen {
			return
		}
		w.seen = id
		if err == nil {
			err = checkHeader(w.s.path)
		}
		switch {
		case err != nil:
			w.fail(err)
		case !id.same(w.opened):
			// Another database renamed over it: leave this one first.
			w.fail(errors.New("the file was replaced by another"))
		}
		return
	}
	switch {
	case err != nil:
		w.fail(err)
	case id == w.left:
		// As the store left it: unchanged since it was found wanting.
	case id != w.seen:
		w.seen = id // changed: wait a tick for it to settle
	default:
		if err := checkHeader(w.s.path); err != nil {
			w.fail(err)
			w.left = id
			return
		}
		w.reopen(id)
	}
}

// fail swaps in dead pools and logs the reason when it is new.
func (w *fileWatch) fail(err error) {
	err = fmt.Errorf("%w: %s: %v", ErrUnavailable, w.s.path, err)
	if w.down != nil && w.down.Error() == err.Error() {
		return
	}
	if w.down == nil {
		w.since = time.Now()
		w.log().Error("store unavailable: every request fails until the file is back", "err", err)
	} else {
		w.log().Error("store still unavailable", "err", err)
	}
	w.down = err
	w.leave(deadPools(err))
}

// leave puts p in use and closes the pools it replaces at once. Their
// close may write into the file they opened, if it is still at the path
// (overwritten in place): left is then that file as the close left it,
// so it is not taken for a file put back.
func (w *fileWatch) leave(p *pools) {
	before, err := statFile(w.s.path)
	inPlace := err == nil && before.same(w.opened)
	old := w.s.swapOut(p)
	// SQLite does not checkpoint on close a database that was moved or
	// unlinked, and leaves its WAL at the path for the next file there to
	// replay: empty it into the file it belongs to first.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err = old.wdb.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	cancel()
	if err != nil && !errors.Is(err, ErrUnavailable) {
		w.log().Warn("checkpoint the WAL of the file left", "err", err)
	}
	if err := old.close(); err != nil {
		w.log().Debug("close the pools of the file left", "err", err)
	}
	w.left, w.seen = fileID{}, fileID{}
	if id, err := statFile(w.s.path); inPlace && err == nil && id.same(before) {
		w.left, w.seen = id, id
	}
}

// reopen opens new pools on the file now at the path.
func (w *fileWatch) reopen(id fileID) {
	p, err := openSQLitePools(w.s.path)
	if err != nil {
		w.fail(err)
		w.left = id // not again until it changes
		return
	}
	p.genBase = w.s.high.Load() + 1
	w.s.swapOut(p) // dead pools: nothing to close
	w.opened, w.seen = id, id
	w.log().Info("store available again", "after", time.Since(w.since).Round(time.Millisecond))
	w.down = nil
}

// statFile stats path (following a link, as SQLite opens it).
func statFile(path string) (fileID, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return fileID{}, errors.New("the file was removed")
		}
		return fileID{}, err
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano()}, nil
}

// checkHeader reads the file's first bytes: a SQLite database starts with
// its magic string.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read the file: %w", err)
	}
	defer f.Close()
	b := make([]byte, len(sqliteMagic))
	if _, err := io.ReadFull(f, b); err != nil || !bytes.Equal(b, sqliteMagic) {
		return errors.New("the file is not a SQLite database")
	}
	return nil
}

// deadPools fail every call with err at once.
func deadPools(err error) *pools {
	db := sql.OpenDB(deadConnector{err})
	return &pools{wdb: db, rdb: db, rst: newStmtCache(db), gen: &deadGen{err: err}}
}

// deadConnector refuses every connection with its error.
type deadConnector struct{ err error }

func (c deadConnector) Connect(context.Context) (driver.Conn, error) { return nil, c.err }
func (c deadConnector) Driver() driver.Driver                        { return deadDriver(c) }

type deadDriver struct{ err error }

func (d deadDriver) Open(string) (driver.Conn, error) { return nil, d.err }

// deadGen answers Generation with its error; its waiters wake when the
// dead pools are replaced.
type deadGen struct {
	err error
	changeSignal
}

func (g *deadGen) get(context.Context) (uint64, error) { return 0, g.err }
func (*deadGen) committed(uint64)                      {}
func (g *deadGen) changed() <-chan struct{}            { return g.wait() }
func (*deadGen) close() error                          { return nil }
