package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	"github.com/eventrelay/relay/relay/queue"
)

// retryScan is how many retry members (the soonest due) the oldest-age estimate reads.
const retryScan = 100

// Stats hash fields (written by the forwarders' record script).
const (
	statDelivered = "delivered"
	statRetried   = "retried"
	statDead      = "dead"
)

// depth is one provider's queue state at one moment.
type depth struct {
	ready, pending, retry, dead int64
	// oldest is the age of the oldest undelivered event found, 0 when none.
	oldest time.Duration
	// lastMinute is only filled when asked for.
	lastMinute MinuteCounts
	// err is why this provider's numbers could not be read.
	err error
}

// reader reads the providers' queue state from Redis; the API and the Collector share it.
type reader struct {
	client redis.Cmdable
	keys   queue.Keys
}

// providerCmds are one provider's commands in the snapshot pipeline.
type providerCmds struct {
	events, dead *redis.IntCmd
	pending      *redis.XPendingCmd
	retry        *redis.IntCmd
	first        *redis.XMessageSliceCmd
	retryHead    *redis.StringSliceCmd
	cur, prev    *redis.SliceCmd
}

// snapshot reads every provider's depth in one pipeline, after one TIME call: ages and
// minutes are by Redis's clock, the clock the forwarders' stats use. An error that hits
// one provider is in its depth; an error for all (TIME failed) is returned.
func (rd reader) snapshot(ctx context.Context, providers []string, withStats bool) ([]depth, error) {
	now, err := rd.client.Time(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("redis TIME: %w", err)
	}
	minute := now.Unix() / 60
	cmds := make([]providerCmds, len(providers))
	_, _ = rd.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, p := range providers {
			c := &cmds[i]
			c.events = pipe.XLen(ctx, rd.keys.Events(p))
			c.pending = pipe.XPending(ctx, rd.keys.Events(p), queue.Group)
			c.retry = pipe.ZCard(ctx, rd.keys.Retry(p))
			c.dead = pipe.XLen(ctx, rd.keys.Dead(p))
			c.first = pipe.XRangeN(ctx, rd.keys.Events(p), "-", "+", 1)
			c.retryHead = pipe.ZRange(ctx, rd.keys.Retry(p), 0, retryScan-1)
			if withStats {
				c.cur = pipe.HMGet(ctx, rd.keys.Stats(p, minute), statDelivered, statRetried, statDead)
				c.prev = pipe.HMGet(ctx, rd.keys.Stats(p, minute-1), statDelivered, statRetried, statDead)
			}
		}
		return nil
	}) // errors are per command, read below
	out := make([]depth, len(providers))
	for i := range cmds {
		out[i] = cmds[i].depth(now, withStats)
	}
	return out, nil
}

// depth turns one provider's replies into its numbers.
func (c *providerCmds) depth(now time.Time, withStats bool) depth {
	var d depth
	var pendingErr error
	d.pending, pendingErr = pendingCount(c.pending)
	for _, err := range []error{c.events.Err(), pendingErr, c.retry.Err(), c.dead.Err(), c.first.Err(), c.retryHead.Err()} {
		if err != nil {
			return depth{err: err}
		}
	}
	d.ready = max(c.events.Val()-d.pending, 0)
	d.retry, d.dead = c.retry.Val(), c.dead.Val()
	oldest := int64(math.MaxInt64)
	for _, m := range c.first.Val() {
		if at, ok := atOf(m.Values[queue.FieldAt]); ok {
			oldest = min(oldest, at)
		}
	}
	for _, member := range c.retryHead.Val() {
		if at, ok := retryMemberAt(member); ok {
			oldest = min(oldest, at)
		}
	}
	if oldest != math.MaxInt64 {
		d.oldest = max(now.Sub(time.UnixMilli(oldest)), 0)
	}
	if withStats {
		cur, err := minuteCounts(c.cur)
		if err != nil {
			return depth{err: err}
		}
		prev, err := minuteCounts(c.prev)
		if err != nil {
			return depth{err: err}
		}
		// The previous minute's share of the last 60 s.
		w := float64(time.Minute-now.Sub(now.Truncate(time.Minute))) / float64(time.Minute)
		d.lastMinute = MinuteCounts{
			Delivered: cur.Delivered + int64(math.Round(float64(prev.Delivered)*w)),
			Retried:   cur.Retried + int64(math.Round(float64(prev.Retried)*w)),
			Dead:      cur.Dead + int64(math.Round(float64(prev.Dead)*w)),
		}
	}
	return d
}

// pendingCount is the consumer group's pending count; no stream or no group yet is 0.
func pendingCount(c *redis.XPendingCmd) (int64, error) {
	err := c.Err()
	if err != nil && redis.HasErrorPrefix(err, "NOGROUP") {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return c.Val().Count, nil
}

// atOf parses an "at" field value (unix ms).
func atOf(v any) (int64, bool) {
	s, ok := v.(string)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// retryMemberAt reads "at" from a retry member: a JSON array of field/value pairs.
func retryMemberAt(member string) (int64, bool) {
	var pairs []string
	if json.Unmarshal([]byte(member), &pairs) != nil {
		return 0, false
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i] == queue.FieldAt {
			return atOf(pairs[i+1])
		}
	}
	return 0, false
}

// minuteCounts reads an HMGET of delivered, retried, dead (missing fields are 0).
func minuteCounts(c *redis.SliceCmd) (MinuteCounts, error) {
	vals, err := c.Result()
	if err != nil {
		return MinuteCounts{}, err
	}
	var n [3]int64
	for i, v := range vals {
		if i < len(n) {
			n[i], _ = atOf(v)
		}
	}
	return MinuteCounts{Delivered: n[0], Retried: n[1], Dead: n[2]}, nil
}

// breakerName is the breaker's state as the API shows it.
func (a *api) breakerName(provider string) string {
	b := a.breakers[provider]
	if b == nil {
		return "unknown"
	}
	switch b.BreakerState() {
	case gobreaker.StateClosed:
		return "closed"
	case gobreaker.StateHalfOpen:
		return "half-open"
	case gobreaker.StateOpen:
		return "open"
	default:
		return "unknown"
	}
}

// providersStatus serves GET /admin/api/providers.
func (a *api) providersStatus(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.redisCtx(r)
	defer cancel()
	depths, err := a.rd.snapshot(ctx, a.providers, true)
	if err != nil {
		a.redisFailed(w, r, err)
		return
	}
	reply := ProvidersReply{Providers: make([]ProviderStatus, 0, len(a.providers))}
	for i, p := range a.providers {
		d := depths[i]
		if d.err != nil {
			a.redisFailed(w, r, fmt.Errorf("provider %s: %w", p, d.err))
			return
		}
		reply.Providers = append(reply.Providers, ProviderStatus{
			Name: p, Breaker: a.breakerName(p),
			Ready: d.ready, Pending: d.pending, Retry: d.retry, Dead: d.dead,
			OldestUndeliveredSeconds: math.Round(d.oldest.Seconds()*1000) / 1000,
			LastMinute:               d.lastMinute,
		})
	}
	writeJSON(w, http.StatusOK, reply)
}
