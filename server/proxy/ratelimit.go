package proxy

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/mdctl/mdctl/store"
)

// maxSources is haproxy's stick-table size in neutron's config (10k).
const maxSources = 10000

// limits are the [metadata_rate_limiting] settings in force.
type limits struct {
	base, burst       time.Duration
	baseMax, burstMax int
}

// limited counts the request against its source and says whether it goes
// over either window's limit. As haproxy's track-sc, every request counts,
// refused ones too, so a source that keeps hammering stays refused.
// Without settings (snap nil) nothing is limited.
func (p *Proxy) limited(snap *store.Snapshot, lim *limiter, src netip.Addr) bool {
	if snap == nil {
		return false
	}
	l, ok := limitsOf(snap.Config, src)
	if !ok {
		return false
	}
	return lim.hit(src, l, p.now())
}

// limitsOf returns the limits for src, if any apply: limiting is on and
// src's IP version is among neutron's ip_versions. Unlike neutron, whose
// haproxy stick table holds one address type, both versions may be (and
// by default are) limited: one table keyed by netip.Addr holds either.
func limitsOf(c store.Config, src netip.Addr) (limits, bool) {
	if !c.RateLimitEnabled {
		return limits{}, false
	}
	version := "6"
	if src.Is4() {
		version = "4"
	}
	if !slices.Contains(c.RateLimitIPVersions, version) {
		return limits{}, false
	}
	return limits{
		base:     time.Duration(c.RateLimitBaseWindowSeconds) * time.Second,
		burst:    time.Duration(c.RateLimitBurstWindowSecs) * time.Second,
		baseMax:  c.RateLimitBaseQueries,
		burstMax: c.RateLimitBurstQueries,
	}, true
}

// limiter is one listener's stick table: request rates per source.
type limiter struct {
	mu        sync.Mutex
	sources   map[netip.Addr]*sourceRate
	lastSweep time.Time
}

type sourceRate struct {
	last        time.Time
	base, burst rateCounter
}

func newLimiter() *limiter {
	return &limiter{sources: make(map[netip.Addr]*sourceRate)}
}

// hit counts one request from src at now and reports whether src is now
// over a limit (haproxy: src_http_req_rate gt limit).
func (l *limiter) hit(src netip.Addr, lm limits, now time.Time) bool {
	expire := max(lm.base, lm.burst)
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= expire {
		l.sweep(now, expire)
	}
	s := l.sources[src]
	if s == nil {
		if len(l.sources) >= maxSources {
			// A full table is swept at most once a second, so a flood of
			// new sources costs O(1) each, not a scan each.
			if now.Sub(l.lastSweep) >= time.Second {
				l.sweep(now, expire)
			}
			if len(l.sources) >= maxSources {
				l.evictOldest()
			}
		}
		s = &sourceRate{}
		l.sources[src] = s
	}
	s.last = now
	over := s.base.add(now, lm.base) > float64(lm.baseMax)
	if s.burst.add(now, lm.burst) > float64(lm.burstMax) {
		over = true
	}
	return over
}

// sweep drops sources idle for longer than the longest window, as the
// stick table's expire does.
func (l *limiter) sweep(now time.Time, expire time.Duration) {
	for k, s := range l.sources {
		if now.Sub(s.last) > expire {
			delete(l.sources, k)
		}
	}
	l.lastSweep = now
}

// evictOldest makes room in a full table by dropping the least recently
// seen source among a sample (map order is random), as haproxy purges the
// oldest entries of a full table.
func (l *limiter) evictOldest() {
	var oldest netip.Addr
	var when time.Time
	n := 0
	for k, s := range l.sources {
		if n == 0 || s.last.Before(when) {
			oldest, when = k, s.last
		}
		if n++; n == 16 {
			break
		}
	}
	delete(l.sources, oldest)
}

// rateCounter is haproxy's freq_ctr over a period: the current period's
// count plus the previous period's, weighted by how much of it still lies
// inside the sliding window.
type rateCounter struct {
	period     time.Duration
	start      time.Time
	curr, prev float64
}

// add counts one event at now and returns the rate over the window.
func (c *rateCounter) add(now time.Time, period time.Duration) float64 {
	if c.period != period || now.Before(c.start) {
		*c = rateCounter{period: period, start: now}
	}
	if el := now.Sub(c.start); el >= period {
		n := el / period
		if n == 1 {
			c.prev = c.curr
		} else {
			c.prev = 0
		}
		c.curr = 0
		c.start = c.start.Add(n * period)
	}
	c.curr++
	left := period - now.Sub(c.start)
	return c.curr + c.prev*float64(left)/float64(period)
}
