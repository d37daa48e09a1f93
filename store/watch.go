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
// file overwritten, their page cache can hide the damage for a while. So
// every fileWatchEvery the path is stat'ed and, when the stat changed, its
// header read: while the path holds no SQLite database the store's pools
// are dead pools that fail every call at once with ErrUnavailable (a
// guest gets a 5xx without waiting, nothing is served from what the
// process still holds open); once it holds one again, new pools open on
// it. The outage is logged once when it starts (and when its reason
// changes) and once when it ends, never per request.

// fileWatchEvery is how often the watch looks at the file: a removed file
// is noticed, and a file put back served, within about this.
const fileWatchEvery = 250 * time.Millisecond

// sqliteMagic starts every SQLite database file.
var sqliteMagic = []byte("SQLite format 3\x00")

// fileWatch watches one SQLite store's file.
type fileWatch struct {
	s    *SQLite
	stop func()

	// Owned by the watch's goroutine.
	opened fileID    // the file the live pools opened
	seen   fileID    // the last stat, to read the header only on change
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
	if err == nil && id != w.seen {
		err = checkHeader(w.s.path)
	}
	if err == nil {
		w.seen = id
	} else {
		w.seen = fileID{}
	}
	switch {
	case err != nil:
		w.fail(err)
	case w.down == nil && id.same(w.opened):
		// The file the pools opened, still in its place.
	default:
		// Back, or replaced by another database: open it anew.
		w.reopen(id)
	}
}

// fail swaps in dead pools (once) and logs the reason when it is new.
func (w *fileWatch) fail(err error) {
	err = fmt.Errorf("%w: %s: %v", ErrUnavailable, w.s.path, err)
	if w.down != nil && w.down.Error() == err.Error() {
		return
	}
	if w.down == nil {
		w.since = time.Now()
		w.swap(deadPools(err))
		w.log().Error("store unavailable: every request fails until the file is back", "err", err)
	} else {
		w.s.cur.Store(deadPools(err))
		w.log().Error("store still unavailable", "err", err)
	}
	w.down = err
}

// reopen opens new pools on the file now at the path.
func (w *fileWatch) reopen(id fileID) {
	p, err := openSQLitePools(w.s.path)
	if err != nil {
		w.seen = fileID{} // try again next time
		w.fail(err)
		return
	}
	p.genBase = w.s.high.Load() + 1
	w.swap(p)
	w.opened = id
	if w.down != nil {
		w.log().Info("store available again", "after", time.Since(w.since).Round(time.Millisecond))
	} else {
		w.log().Warn("store file replaced: opened the new one")
	}
	w.down = nil
}

// swap puts p in use and closes the pools it replaces once the calls
// still running on them are done.
func (w *fileWatch) swap(p *pools) {
	old := w.s.cur.Swap(p)
	go func() {
		if err := old.close(); err != nil {
			w.log().Debug("close replaced store pools", "err", err)
		}
	}()
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
	return &pools{wdb: db, rdb: db, rst: newStmtCache(db), gen: deadGen{err}}
}

// deadConnector refuses every connection with its error.
type deadConnector struct{ err error }

func (c deadConnector) Connect(context.Context) (driver.Conn, error) { return nil, c.err }
func (c deadConnector) Driver() driver.Driver                        { return deadDriver(c) }

type deadDriver struct{ err error }

func (d deadDriver) Open(string) (driver.Conn, error) { return nil, d.err }

// deadGen answers Generation with its error.
type deadGen struct{ err error }

func (g deadGen) get(context.Context) (uint64, error) { return 0, g.err }
func (deadGen) committed(uint64)                      {}
func (deadGen) close() error                          { return nil }
