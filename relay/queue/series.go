package queue

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Queue depth fields of a provider's per-minute stats hash (Keys.Stats), sampled once per
// minute (SampleDepths): the ready, pending, retry and dead counts at the first sample of
// that minute, as the admin API's providers call counts them.
const (
	StatDepthReady   = "q_ready"
	StatDepthPending = "q_pending"
	StatDepthRetry   = "q_retry"
	StatDepthDead    = "q_dead"
)

// SeriesMinutes is how many minutes Series can return: the stats hashes live one hour
// after their last write, so the current minute and the 59 before it are always there.
const SeriesMinutes = 60

// sampleScript records one provider's queue depth in the current minute's stats hash
// (Redis TIME), unless that minute has a sample already: whichever relay comes first in a
// minute samples it, the others answer 0 after one HEXISTS. KEYS: events, retry, dead,
// stats prefix (one {provider} slot). ARGV: the consumer group. The commands are O(1)
// (XPENDING's summary form is O(consumers)). Returns 1 sampled, 0 already sampled.
var sampleScript = redis.NewScript(`
local t = redis.call('TIME')
local stats = KEYS[4] .. math.floor(tonumber(t[1]) / 60)
if redis.call('HEXISTS', stats, 'q_ready') == 1 then
  return 0
end
local pending = 0
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1])
if type(p) == 'table' and not p.err then
  pending = tonumber(p[1])
end
local ready = math.max(redis.call('XLEN', KEYS[1]) - pending, 0)
redis.call('HSET', stats, 'q_ready', ready, 'q_pending', pending, 'q_retry', redis.call('ZCARD', KEYS[2]),
  'q_dead', redis.call('XLEN', KEYS[3]))
redis.call('EXPIRE', stats, 3600)
return 1
`)

// SampleDepths records each provider's queue depth in its current minute's stats hash
// unless a relay did already this minute, in one pipeline, and returns how many it
// recorded. Call it a few times a minute from every relay: one call per provider costs
// one HEXISTS, and once per minute and provider a handful of O(1) reads and one HSET.
func SampleDepths(ctx context.Context, c redis.Cmdable, keys Keys, providers []string) (int, error) {
	if err := sampleScript.Load(ctx, c).Err(); err != nil {
		return 0, err
	}
	var cmds []*redis.Cmd
	_, _ = c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, p := range providers {
			for _, keys := range keys.EachShard() { // each shard samples itself into its own stats
				cmds = append(cmds, sampleScript.EvalSha(ctx, pipe,
					[]string{keys.Events(p), keys.Retry(p), keys.Dead(p), keys.StatsPrefix(p)}, Group))
			}
		}
		return nil
	}) // errors are per command, read below
	sampled := 0
	for _, cmd := range cmds {
		n, err := cmd.Int()
		if err != nil {
			return sampled, err
		}
		sampled += n
	}
	return sampled, nil
}

// Point is one minute of a provider's series.
type Point struct {
	// Minute is the unix minute (Redis's clock): it starts at Minute×60 s.
	Minute int64
	// Counts are the deployment's outcomes in that minute.
	Counts Counts
	// Depth is the queue depth sampled in that minute; nil when no relay sampled it.
	Depth *Depth
}

// Series returns provider's last n minutes (at most SeriesMinutes), oldest first, the
// last being the current minute of Redis's clock, and that clock's time: one TIME, then
// one pipeline of n HMGETs.
func Series(ctx context.Context, c redis.Cmdable, keys Keys, provider string, n int) (time.Time, []Point, error) {
	n = min(max(n, 1), SeriesMinutes)
	now, err := c.Time(ctx).Result()
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("redis TIME: %w", err)
	}
	first := now.Unix()/60 - int64(n-1)
	shards := keys.EachShard()
	cmds := make([]*redis.SliceCmd, n*len(shards)) // minute-major
	if _, err := c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i := range n {
			for s, keys := range shards {
				cmds[i*len(shards)+s] = pipe.HMGet(ctx, keys.Stats(provider, first+int64(i)), StatDelivered, StatRetried, StatDead,
					StatDepthReady, StatDepthPending, StatDepthRetry, StatDepthDead)
			}
		}
		return nil
	}); err != nil {
		return now, nil, err
	}
	points := make([]Point, n)
	for i := range points {
		// A minute's point sums its shards; its depth is there once any shard was sampled
		// (a shard sampled by no relay that minute counts as empty).
		var v [7]int64
		var has [7]bool
		for s := range shards {
			for k, x := range cmds[i*len(shards)+s].Val() {
				if str, ok := x.(string); ok && k < len(v) {
					d, _ := strconv.ParseInt(str, 10, 64)
					v[k] += d
					has[k] = true
				}
			}
		}
		points[i] = Point{Minute: first + int64(i), Counts: Counts{Delivered: v[0], Retried: v[1], Dead: v[2]}}
		if has[3] {
			points[i].Depth = &Depth{Ready: v[3], Pending: v[4], Retry: v[5], Dead: v[6]}
		}
	}
	return now, points, nil
}
