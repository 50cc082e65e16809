package queue

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// retryScan is how many retry members (the soonest due) the oldest-age estimate reads.
const retryScan = 100

// Depth is one provider's queue state at one moment.
type Depth struct {
	// Ready are entries no consumer has read yet, Pending those read and not yet settled,
	// Retry the retry set's size, Dead the dead-letter stream's length.
	Ready, Pending, Retry, Dead int64
	// Oldest is the age (by Redis's clock) of the oldest undelivered event found among
	// the stream's first entry and the 100 retries due soonest; 0 when none.
	Oldest time.Duration
	// ThisMinute and PrevMinute are the deployment's outcomes in the current and the
	// previous minute of Redis's clock (only when asked for), and Into how far the
	// current minute is.
	ThisMinute, PrevMinute Counts
	Into                   time.Duration
	// Err is why this provider's numbers could not be read.
	Err error
}

// Counts are one minute's outcomes (a Keys.Stats hash).
type Counts struct {
	Delivered, Retried, Dead int64
}

// providerCmds are one provider's commands in the Depths pipeline.
type providerCmds struct {
	events, dead *redis.IntCmd
	pending      *redis.XPendingCmd
	retry        *redis.IntCmd
	first        *redis.XMessageSliceCmd
	retryHead    *redis.StringSliceCmd
	cur, prev    *redis.SliceCmd
}

// Depths reads every provider's depth in one pipeline, after one TIME call: ages and
// minutes are by Redis's clock, the clock the outcome scripts' stats use. A provider's
// depth is the sum over its shards (keys.Shards), its age the oldest of theirs. An error
// that hits one provider is in its Depth; an error for all (TIME failed) is returned.
func Depths(ctx context.Context, c redis.Cmdable, keys Keys, providers []string, withStats bool) ([]Depth, error) {
	now, err := c.Time(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("redis TIME: %w", err)
	}
	minute := now.Unix() / 60
	shards := keys.EachShard()
	cmds := make([]providerCmds, len(providers)*len(shards)) // provider-major
	_, _ = c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, p := range providers {
			for s, keys := range shards {
				pc := &cmds[i*len(shards)+s]
				pc.events = pipe.XLen(ctx, keys.Events(p))
				pc.pending = pipe.XPending(ctx, keys.Events(p), Group)
				pc.retry = pipe.ZCard(ctx, keys.Retry(p))
				pc.dead = pipe.XLen(ctx, keys.Dead(p))
				pc.first = pipe.XRangeN(ctx, keys.Events(p), "-", "+", 1)
				pc.retryHead = pipe.ZRange(ctx, keys.Retry(p), 0, retryScan-1)
				if withStats {
					pc.cur = pipe.HMGet(ctx, keys.Stats(p, minute), StatDelivered, StatRetried, StatDead)
					pc.prev = pipe.HMGet(ctx, keys.Stats(p, minute-1), StatDelivered, StatRetried, StatDead)
				}
			}
		}
		return nil
	}) // errors are per command, read below
	out := make([]Depth, len(providers))
	for i := range providers {
		for s := range shards {
			d := cmds[i*len(shards)+s].depth(providers[i], now, withStats)
			out[i] = out[i].add(d)
		}
	}
	return out, nil
}

// add sums two shards' depths (the first error wins).
func (d Depth) add(o Depth) Depth {
	if d.Err != nil {
		return d
	}
	if o.Err != nil {
		return Depth{Err: o.Err}
	}
	d.Ready += o.Ready
	d.Pending += o.Pending
	d.Retry += o.Retry
	d.Dead += o.Dead
	d.Oldest = max(d.Oldest, o.Oldest)
	d.ThisMinute = d.ThisMinute.add(o.ThisMinute)
	d.PrevMinute = d.PrevMinute.add(o.PrevMinute)
	d.Into = o.Into
	return d
}

// add sums two shards' counts.
func (c Counts) add(o Counts) Counts {
	return Counts{Delivered: c.Delivered + o.Delivered, Retried: c.Retried + o.Retried, Dead: c.Dead + o.Dead}
}

// depth turns one provider's replies into its numbers.
func (pc *providerCmds) depth(provider string, now time.Time, withStats bool) Depth {
	var d Depth
	var pendingErr error
	d.Pending, pendingErr = pendingCount(pc.pending)
	for _, err := range []error{pc.events.Err(), pendingErr, pc.retry.Err(), pc.dead.Err(), pc.first.Err(), pc.retryHead.Err()} {
		if err != nil {
			return Depth{Err: err}
		}
	}
	d.Ready = max(pc.events.Val()-d.Pending, 0)
	d.Retry, d.Dead = pc.retry.Val(), pc.dead.Val()
	oldest := int64(math.MaxInt64)
	for _, m := range pc.first.Val() {
		if at, ok := entryAt(provider, m.Values); ok {
			oldest = min(oldest, at)
		}
	}
	for _, member := range pc.retryHead.Val() {
		if at, ok := RetryMemberAt(member); ok {
			oldest = min(oldest, at)
		}
	}
	if oldest != math.MaxInt64 {
		d.Oldest = max(now.Sub(time.UnixMilli(oldest)), 0)
	}
	if withStats {
		var err error
		if d.ThisMinute, err = minuteCounts(pc.cur); err != nil {
			return Depth{Err: err}
		}
		if d.PrevMinute, err = minuteCounts(pc.prev); err != nil {
			return Depth{Err: err}
		}
		d.Into = now.Sub(now.Truncate(time.Minute))
	}
	return d
}

// entryAt is an events stream entry's received_at (unix ms), false when it has none.
func entryAt(provider string, values map[string]any) (int64, bool) {
	if s, ok := values[FieldEnvelope].(string); ok {
		return envelopeAt(s)
	}
	if _, ok := values[FieldAt]; !ok {
		return 0, false
	}
	m, err := readMessage(provider, values)
	if err != nil {
		return 0, false
	}
	return m.ReceivedAt.UnixMilli(), true
}

// pendingCount is the consumer group's pending count; no stream or no group yet is 0.
func pendingCount(c *redis.XPendingCmd) (int64, error) {
	err := c.Err()
	if IsNoGroup(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return c.Val().Count, nil
}

// minuteCounts reads an HMGET of delivered, retried, dead (missing fields are 0).
func minuteCounts(c *redis.SliceCmd) (Counts, error) {
	vals, err := c.Result()
	if err != nil {
		return Counts{}, err
	}
	var n [3]int64
	for i, v := range vals {
		if s, ok := v.(string); ok && i < len(n) {
			n[i], _ = strconv.ParseInt(s, 10, 64)
		}
	}
	return Counts{Delivered: n[0], Retried: n[1], Dead: n[2]}, nil
}
