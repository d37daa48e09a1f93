package store

import (
	"sync"
	"sync/atomic"
)

// Notifier is a store that says when its generation moves, so that a
// reconciling loop wakes on a change instead of finding it at its next
// poll. Both backends are Notifiers: PostgreSQL hears other hosts' commits
// by LISTEN/NOTIFY (pgfeed.go), SQLite other processes' by watching its
// -wal file (walwatch_linux.go; elsewhere only by the loops' polls).
type Notifier interface {
	// Changed returns a channel that is closed once the generation has
	// moved past what this handle knew when Changed was called. Take it
	// before reading the generation: a move in between then closes it.
	Changed() <-chan struct{}
}

// changeSignal hands out the channel Changed returns and closes it when
// the known generation rises; each rise starts a fresh channel.
type changeSignal struct {
	known atomic.Uint64
	mu    sync.Mutex
	ch    chan struct{}
}

// wait is Changed.
func (c *changeSignal) wait() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

// wakeAll wakes the waiters without a new generation: the source is
// being replaced.
func (c *changeSignal) wakeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
}

// saw records gen as known and wakes the waiters when it is newer than
// anything known before; it reports whether it was.
func (c *changeSignal) saw(gen uint64) bool {
	for {
		cur := c.known.Load()
		if gen <= cur {
			return false
		}
		if c.known.CompareAndSwap(cur, gen) {
			break
		}
	}
	c.wakeAll()
	return true
}
