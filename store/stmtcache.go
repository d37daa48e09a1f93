package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// stmtCache keeps prepared statements of the reader pool by SQL text: the
// agent asks the same few port queries on every request, and parsing them
// is half of each one's cost. Bounded, since IN lists make the text vary.
type stmtCache struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

const stmtCacheMax = 128

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}}
}

// query runs q through a cached statement, or directly once the cache is
// full.
func (c *stmtCache) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	c.mu.Lock()
	st, ok := c.m[q]
	full := len(c.m) >= stmtCacheMax
	c.mu.Unlock()
	if !ok {
		if full {
			return c.db.QueryContext(ctx, q, args...)
		}
		var err error
		if st, err = c.db.PrepareContext(ctx, q); err != nil {
			return nil, err
		}
		c.mu.Lock()
		if prev, ok := c.m[q]; ok {
			st.Close()
			st = prev
		} else {
			c.m[q] = st
		}
		c.mu.Unlock()
	}
	return st.QueryContext(ctx, args...)
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for q, st := range c.m {
		errs = append(errs, st.Close())
		delete(c.m, q)
	}
	return errors.Join(errs...)
}
