package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ErrShardsInUse means redis.shards was lowered while a shard it drops still holds
// entries: starting would strand them (no forwarder reads that shard any more).
var ErrShardsInUse = errors.New("queue: a dropped shard still holds entries")

// CheckDroppedShards refuses (ErrShardsInUse) when any shard from keys.NumShards() up to
// upTo (exclusive) of any provider still holds something: stream entries (ready or
// pending), retry members or dead letters. One pipeline of four reads per shard; an empty
// stream left behind (a stream is never deleted, only emptied) does not count.
func CheckDroppedShards(ctx context.Context, c redis.Cmdable, keys Keys, providers []string, upTo int) error {
	from := keys.NumShards()
	if upTo <= from || len(providers) == 0 {
		return nil
	}
	type shardCmds struct {
		provider     string
		shard        int
		events, dead *redis.IntCmd
		retry        *redis.IntCmd
	}
	var cmds []shardCmds
	_, _ = c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, p := range providers {
			for s := from; s < upTo; s++ {
				k := keys.ForShard(s)
				cmds = append(cmds, shardCmds{provider: p, shard: s,
					events: pipe.XLen(ctx, k.Events(p)), retry: pipe.ZCard(ctx, k.Retry(p)), dead: pipe.XLen(ctx, k.Dead(p))})
			}
		}
		return nil
	}) // errors are per command, read below
	var held []string
	maxHeld := 0
	for _, sc := range cmds {
		// XLEN counts pending entries too: they are entries of the stream until acked.
		n := [3]int64{}
		for i, cmd := range []*redis.IntCmd{sc.events, sc.retry, sc.dead} {
			v, err := cmd.Result()
			if err != nil {
				return fmt.Errorf("checking shard %d of %s: %w", sc.shard, sc.provider, err)
			}
			n[i] = v
		}
		if n[0]+n[1]+n[2] > 0 {
			held = append(held, fmt.Sprintf("%s shard %d (%d in the stream, %d to retry, %d dead letters)",
				sc.provider, sc.shard, n[0], n[1], n[2]))
			maxHeld = max(maxHeld, sc.shard)
		}
	}
	if len(held) == 0 {
		return nil
	}
	return fmt.Errorf("%w: redis.shards is %d but %s; run with redis.shards: %d (or more) until they are empty "+
		"(delivered, and dead letters replayed or purged: GET /admin/api/providers shows 0), then lower it",
		ErrShardsInUse, from, strings.Join(held, ", "), maxHeld+1)
}
