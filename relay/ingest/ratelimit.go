package ingest

import (
	"hash/maphash"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ipLimiter holds one token bucket per (site, client IP), in bounded memory: each shard
// keeps two generations of buckets and drops the older one when the newer fills up, so an
// attacker spraying distinct addresses evicts idle buckets instead of growing the map. An
// evicted bucket comes back full, which only ever errs on the side of letting a request in.
type ipLimiter struct {
	seed   maphash.Seed
	shards [limiterShards]limiterShard
	// perShard is the capacity of one generation of one shard.
	perShard int
}

const limiterShards = 32

type limiterKey struct {
	site int
	ip   [16]byte
}

type limiterShard struct {
	mu       sync.Mutex
	cur, old map[limiterKey]*rate.Limiter
}

func newIPLimiter(maxTracked int) *ipLimiter {
	l := &ipLimiter{seed: maphash.MakeSeed()}
	// Two generations per shard: at most maxTracked buckets in all.
	l.perShard = max(1, maxTracked/(2*limiterShards))
	for i := range l.shards {
		l.shards[i].cur = make(map[limiterKey]*rate.Limiter)
	}
	return l
}

// allow takes one token for key from a bucket of the given rate and burst. When none is
// left it returns the whole seconds to wait, at least 1.
func (l *ipLimiter) allow(key limiterKey, r rate.Limit, burst int, now time.Time) (ok bool, retryAfter int) {
	sh := &l.shards[maphash.Comparable(l.seed, key)%limiterShards]
	sh.mu.Lock()
	lim := sh.cur[key]
	if lim == nil {
		if lim = sh.old[key]; lim != nil {
			delete(sh.old, key)
		} else {
			lim = rate.NewLimiter(r, burst)
		}
		if len(sh.cur) >= l.perShard {
			sh.old, sh.cur = sh.cur, make(map[limiterKey]*rate.Limiter, l.perShard)
		}
		sh.cur[key] = lim
	}
	sh.mu.Unlock()
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return false, 1
	}
	delay := res.DelayFrom(now)
	if delay == 0 {
		return true, 0
	}
	res.CancelAt(now)
	return false, int(math.Ceil(delay.Seconds()))
}

// tracked reports how many buckets are held, for tests of the memory bound.
func (l *ipLimiter) tracked() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.cur) + len(sh.old)
		sh.mu.Unlock()
	}
	return n
}
