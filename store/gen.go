package store

import (
	"context"
	"sync/atomic"
	"time"
)

// genCache answers Generation from memory while nothing wrote to the
// database. Every commit, from any process, writes the -wal file (or, in a
// rollback-journal mode, the database file), which changes its size, mtime
// or inode. So when a stat of both files matches the stat taken before the
// last counter query, that query's answer still holds.
//
// mtime has the kernel's coarse granularity (a jiffy, or a second on some
// filesystems), and after a WAL restart a commit can leave the size as it
// was. A key is therefore trusted only when both mtimes are older than the
// stat by more than the granularity: any later write then gets a strictly
// newer mtime. Keys taken right after a write are never cached (git's
// "racily clean" rule), which costs a query only while writes are recent.
type genCache struct {
	db, wal string
	query   func(context.Context) (uint64, error)
	cur     atomic.Pointer[genEntry]
}

type genEntry struct {
	key fileKey
	gen uint64
}

// fileKey is what a write to either file changes.
type fileKey struct {
	db, wal fileStat
}

// fileStat is the part of a stat a write changes; the zero value means the
// file does not exist.
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
	return &genCache{db: dbPath, wal: dbPath + "-wal", query: query}
}

func (g *genCache) get(ctx context.Context) (uint64, error) {
	now := time.Now().UnixNano()
	key, ok := g.stat()
	if e := g.cur.Load(); ok && e != nil && e.key == key {
		return e.gen, nil
	}
	gen, err := g.query(ctx)
	if err != nil {
		return 0, err
	}
	if ok && key.settled(now) {
		g.cur.Store(&genEntry{key: key, gen: gen})
	}
	return gen, nil
}

// invalidate drops the cached entry; called after this process commits.
func (g *genCache) invalidate() { g.cur.Store(nil) }

func (g *genCache) stat() (fileKey, bool) {
	var k fileKey
	var ok bool
	if k.db, ok = statFile(g.db); !ok {
		return k, false
	}
	if k.wal, ok = statFile(g.wal); !ok {
		return k, false
	}
	return k, true
}

// settled reports whether no write after now could leave the key as it is.
func (k fileKey) settled(now int64) bool {
	for _, f := range []fileStat{k.db, k.wal} {
		if f == (fileStat{}) {
			continue
		}
		margin := racyMargin
		if f.mtime%int64(time.Second) == 0 {
			margin = racyMarginCoarse
		}
		if f.mtime > now-int64(margin) {
			return false
		}
	}
	return true
}
