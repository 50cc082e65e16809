package main

import (
	"context"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/relay/admin"
	"github.com/eventrelay/relay/relay/queue"
)

// Sharding (redis.shards: N) is wired here, without the forwarder knowing: each provider
// gets one Forwarder per shard, on that shard's Keys (queue.Keys.ForShard), so each shard
// has its own consumer group reader, reclaimer, mover, consumer cleanup and recorder.
// What must stay the provider's does:
//   - the rate limit: every shard's fetcher reserves slots from the one provider-wide
//     key <prefix>:{P}:slots (queue.Keys.Rate ignores the shard), so the deployment
//     stays within rate_limit whatever N is. Each Forwarder also keeps its local
//     limiter at rate_limit, which binds alone only while Redis cannot be asked.
//   - the workers: the provider's `workers` are split over its shards (shardWorkers), so
//     a relay makes at most max(workers, N) concurrent upstream requests per provider.
//   - the breaker: each shard's Forwarder counts failures in its own breaker, but the
//     first trip is written to the provider-wide <prefix>:{P}:breaker, which stops every
//     shard in every relay (one half-open probe deployment-wide); the admin API and
//     `relay status` show the provider's worst shard (shardBreakers).
// One Forwarder per shard rather than one reading N streams keeps every shard's reads,
// claims and scripts on its own slot (a Cluster node), with no cross-slot command.

// redisKeys is the deployment's key naming, with its shard count.
func redisKeys(cfg *config.Config) queue.Keys {
	return queue.Keys{Prefix: cfg.Redis.Prefix, Shards: cfg.Redis.Shards}
}

// shardWorkers is shard's part of a provider's workers: workers/n, the first workers%n
// shards one more, and at least 1 (so every shard is read even with n > workers).
func shardWorkers(workers, shard, n int) int {
	w := workers / n
	if shard < workers%n {
		w++
	}
	return max(w, 1)
}

// shardLog names the shard on a sharded deployment's forwarder lines.
func shardLog(log *zap.Logger, k queue.Keys) *zap.Logger {
	if k.NumShards() == 1 {
		return log
	}
	return log.With(zap.Int("shard", k.Shard))
}

// shardBreakers are one provider's shards' breakers, reported as the worst of them.
type shardBreakers []admin.BreakerStater

var _ admin.BreakerStater = shardBreakers(nil)

// breakerRank orders breaker states from healthy to stopped.
var breakerRank = map[gobreaker.State]int{gobreaker.StateClosed: 0, gobreaker.StateHalfOpen: 1, gobreaker.StateOpen: 2}

// BreakerState is the worst shard's state: open if any shard's breaker is open.
func (s shardBreakers) BreakerState() gobreaker.State {
	worst := gobreaker.StateClosed
	for _, b := range s {
		if st := b.BreakerState(); breakerRank[st] > breakerRank[worst] {
			worst = st
		}
	}
	return worst
}

// checkShards refuses to start when redis.shards was lowered while a dropped shard
// still holds entries (queue.CheckDroppedShards looks at every shard up to the most the
// configuration allows): no forwarder would read them.
func checkShards(ctx context.Context, conn *queue.Conn, keys queue.Keys, cfg *config.Config) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var provs []string
	for _, p := range cfg.Providers.Enabled() {
		provs = append(provs, p.Name)
	}
	return queue.CheckDroppedShards(ctx, conn.Client, keys, provs, config.MaxShards)
}
