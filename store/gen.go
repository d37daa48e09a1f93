package store

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// genCache answers Generation from memory while nothing committed. In WAL
// mode every commit, from any process, writes the -wal file, changing its
// size or mtime (a restart after a checkpoint rewrites it from the start,
// a TRUNCATE checkpoint empties it). So when an fstat of the -wal file
// matches the one taken before the last counter query, that answer holds.
// One fstat is the whole hot path: syscalls are the cost that matters.
//
// mtime has the kernel's coarse granularity (a jiffy, or a second on some
// filesystems), and a commit after a restart can leave the size as it was.
// A stat is therefore cached only once the mtime is older than the
// granularity: any later write then gets a strictly newer mtime. Stats
// taken right after a write are never cached (git's "racily clean" rule),
// which costs a query only while writes are recent.
//
// The -wal file lives as long as any connection to the database is open,
// and this process keeps its pools' connections; should it still be
// removed (its link count drops to 0), the file is opened again. SQLite
// never locks the -wal file, so this descriptor cannot disturb its locks.
type genCache struct {
	path  string // the -wal file
	query func(context.Context) (uint64, error)
	wal   atomic.Pointer[os.File]
	cur   atomic.Pointer[genEntry]

	mu   sync.Mutex // serialises reopening
	old  []*os.File // replaced descriptors, closed with the cache
	shut bool

	// changeSignal wakes Changed's waiters whenever a read or a commit
	// finds the counter moved; the watcher, started by the first Changed
	// (a serve's loops: a CLI never pays for it), reads it whenever
	// another process wrote the -wal file.
	changeSignal
	watchOnce sync.Once
	stopWatch func()
}

type genEntry struct {
	key fileStat
	gen uint64
}

// fileStat is the part of a stat a write changes.
type fileStat struct {
	ino, size int64
	mtime     int64 // ns since the epoch
}

// racyMargin is more than a coarse-clock jiffy; filesystems that keep whole
// seconds (nanoseconds always 0) get racyMarginCoarse.
const (
	racyMargin       = 50 * time.Millisecond
	racyMarginCoarse = 2 * time.Second
)

func newGenCache(dbPath string, query func(context.Context) (uint64, error)) *genCache {
	g := &genCache{path: dbPath + "-wal", query: query}
	g.reopen()
	return g
}

func (g *genCache) get(ctx context.Context) (uint64, error) {
	if e := g.cur.Load(); e != nil {
		if k, ok := g.stat(); ok && k == e.key {
			return e.gen, nil
		}
	}
	return g.miss(ctx)
}

// miss queries the counter and caches it under a stat taken before the
// query, if that stat is settled.
func (g *genCache) miss(ctx context.Context) (uint64, error) {
	now := time.Now().UnixNano()
	k, ok := g.stat()
	if !ok {
		g.reopen()
		k, ok = g.stat()
	}
	gen, err := g.query(ctx)
	if err != nil {
		return 0, err
	}
	if ok && k.settled(now) {
		g.cur.Store(&genEntry{key: k, gen: gen})
	}
	g.saw(gen)
	return gen, nil
}

func (g *genCache) stat() (fileStat, bool) {
	f := g.wal.Load()
	if f == nil {
		return fileStat{}, false
	}
	return fstat(f)
}

// reopen opens the -wal file again (it may not exist yet, or may have been
// removed and created anew).
func (g *genCache) reopen() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut {
		return
	}
	if f := g.wal.Load(); f != nil {
		if _, ok := fstat(f); ok {
			return // another caller already did
		}
	}
	f, err := os.Open(g.path)
	if err != nil {
		return // no WAL yet: every call queries until there is one
	}
	// An old descriptor may be in use by a concurrent stat; close it later.
	if old := g.wal.Swap(f); old != nil {
		g.old = append(g.old, old)
	}
	g.cur.Store(nil)
}

// invalidate drops the cached entry; called after this process commits.
func (g *genCache) invalidate() { g.cur.Store(nil) }

// closeFiles closes the descriptors; the cache then always queries.
func (g *genCache) closeFiles() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.shut = true
	g.cur.Store(nil)
	var first error
	for _, f := range append(g.old, g.wal.Swap(nil)) {
		if f != nil {
			if err := f.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	g.old = nil
	return first
}

// settled reports whether no write after now could leave the stat as it is.
func (k fileStat) settled(now int64) bool {
	margin := racyMargin
	if k.mtime%int64(time.Second) == 0 {
		margin = racyMarginCoarse
	}
	return k.mtime <= now-int64(margin)
}

// committed drops the cached entry: this process has just committed.
func (g *genCache) committed(gen uint64) {
	g.invalidate()
	g.saw(gen)
}

// changed is Notifier.Changed; the first call starts watching the -wal
// file for other processes' commits.
func (g *genCache) changed() <-chan struct{} {
	g.watchOnce.Do(func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.shut {
			return
		}
		kick, done := make(chan struct{}, 1), make(chan struct{})
		stop := watchWAL(g.path, kick)
		exited := make(chan struct{})
		go func() {
			defer close(exited)
			g.recheck(kick, done)
		}()
		g.stopWatch = func() { stop(); close(done); <-exited }
	})
	return g.wait()
}

// recheck reads the counter each time the -wal file was written (a kick),
// until done. A commit is visible only once SQLite has also updated the
// -shm index, which the write that kicked may precede, so the counter is
// read again at growing delays (walRecheck) before the loops' polls are
// left to find it; a new kick starts them over.
func (g *genCache) recheck(kick, done <-chan struct{}) {
	read := func() { _, _ = g.get(context.Background()) } // an error: the next kick or poll reads again
	t := time.NewTimer(time.Hour)
	t.Stop()
	next := len(walRecheck) // the wait before the next read
	for {
		select {
		case <-done:
			t.Stop()
			return
		case <-kick:
			t.Stop()
			next = 0
		case <-t.C:
			read()
		}
		for next < len(walRecheck) {
			d := walRecheck[next]
			next++
			if d > 0 {
				t.Reset(d)
				break
			}
			read()
		}
	}
}

// walRecheck are the waits before recheck's reads after a -wal write.
var walRecheck = []time.Duration{0, time.Millisecond, time.Millisecond, 3 * time.Millisecond,
	5 * time.Millisecond, 15 * time.Millisecond, 25 * time.Millisecond}

func (g *genCache) close() error {
	g.mu.Lock()
	stop := g.stopWatch
	g.shut = true
	g.mu.Unlock()
	if stop != nil {
		stop()
	}
	return g.closeFiles()
}
