package api

import (
	"sync"
	"time"

	"github.com/mdctl/mdctl/server/metadata"
	"github.com/mdctl/mdctl/store"
)

// entry is one identified instance with its built metadata, as nova's
// cache holds an InstanceMetadata object.
type entry struct {
	md         *metadata.Metadata
	inst       store.Instance // what DynamicJSON targets are told
	instanceID string
	projectID  string
	tokens     string // the instance's metadata_tokens override
	// signature is the instance's expected proxy signature under the
	// secret of generation gen, so a cache hit compares in constant time
	// without hashing.
	signature string
	gen       uint64
	expires   time.Time
}

// cache maps "id:<uuid>" or "ip:<addr>" to entries. An entry is served only
// while the store's generation is the one it was built at and its TTL
// (metadata_cache_expiration) has not run out, so a store write is never
// served stale. Size is bounded by clearing on overflow: entries are cheap
// to rebuild, and a full cache means a boot storm wider than the bound.
type cache struct {
	mu  sync.RWMutex
	m   map[string]*entry
	max int
}

func newCache(max int) *cache {
	return &cache{m: make(map[string]*entry), max: max}
}

// get returns the live entry for key, or nil.
func (c *cache) get(key string, gen uint64, now time.Time) *entry {
	c.mu.RLock()
	e := c.m[key]
	c.mu.RUnlock()
	if e == nil || e.gen != gen || !now.Before(e.expires) {
		return nil
	}
	return e
}

func (c *cache) put(key string, e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		// Drop what a newer generation made stale first; if that frees
		// nothing, start over.
		for k, old := range c.m {
			if old.gen != e.gen {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			clear(c.m)
		}
	}
	c.m[key] = e
}

func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
