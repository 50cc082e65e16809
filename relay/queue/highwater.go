package queue

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// monitor polls every provider's backlog (XLEN events + ZCARD retry) and flips its
// over-the-mark flag, which Enqueue reads without touching Redis. Polling keeps the
// check off the ingest path; a backlog can overshoot the mark by one poll interval of
// traffic, which is what the mark's headroom is for.
func (e *Enqueuer) monitor(ctx context.Context) {
	t := time.NewTicker(e.opts.HighWaterPoll)
	defer t.Stop()
	failing := false
	for {
		err := e.pollBacklog(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			// Keep the last known state: Redis being down already fails enqueues.
			e.log.Warn("cannot poll queue backlog for the high-water mark", zap.Error(err))
			failing = true
		case err == nil && failing:
			e.log.Info("queue backlog polling recovered")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (e *Enqueuer) pollBacklog(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, e.opts.HighWaterPoll)
	defer cancel()
	n := len(e.opts.Providers)
	shards := e.keys.EachShard()
	lens := make([][]*redis.IntCmd, n) // per provider, per shard
	retries := make([][]*redis.IntCmd, n)
	pipe := e.client.Pipeline()
	for i, p := range e.opts.Providers {
		for _, k := range shards {
			lens[i] = append(lens[i], pipe.XLen(ctx, k.Events(p)))
			retries[i] = append(retries[i], pipe.ZCard(ctx, k.Retry(p)))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	for i, p := range e.opts.Providers {
		var backlog int64 // the provider's, over all its shards
		for s := range shards {
			backlog += lens[i][s].Val() + retries[i][s].Val()
		}
		over := backlog > e.opts.HighWaterMark
		if e.over[p].Swap(over) == over {
			continue
		}
		if over {
			e.log.Warn("provider backlog over the high-water mark: ingest answers 503 for it until the backlog shrinks",
				zap.String("provider", p), zap.Int64("backlog", backlog), zap.Int64("high_water_mark", e.opts.HighWaterMark))
		} else {
			e.log.Info("provider backlog back under the high-water mark",
				zap.String("provider", p), zap.Int64("backlog", backlog), zap.Int64("high_water_mark", e.opts.HighWaterMark))
		}
	}
	return nil
}
