package queue

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/internal/redistest"
)

// With Shards 4 events spread over the four streams by id, a keyed resend is a
// duplicate on its shard, and Depths sums the shards.
func TestShardsEnqueueSpreadAndDepthsSum(t *testing.T) {
	_, conn := openRedis(t, redistest.Options{})
	keys := Keys{Prefix: testPrefix, Shards: 4}
	e := NewEnqueuer(conn.Client, keys, defaultEnqOpts(), zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()

	const n = 64
	for i := range n {
		if dup, err := e.Enqueue(t.Context(), testMessage("ens", i), ClientID); err != nil || dup {
			t.Fatalf("event %d: duplicate %v, err %v", i, dup, err)
		}
	}
	var sum int64
	for s, k := range keys.EachShard() {
		l, err := conn.Client.XLen(t.Context(), k.Events("ens")).Result()
		if err != nil {
			t.Fatal(err)
		}
		if l == 0 {
			t.Errorf("shard %d (%s) is empty", s, k.Events("ens"))
		}
		sum += l
	}
	if sum != n {
		t.Fatalf("%d entries over the shards, want %d", sum, n)
	}
	// A resend hashes to the shard of its marker: a duplicate, nothing added.
	for i := range 16 {
		if dup, err := e.Enqueue(t.Context(), testMessage("ens", i), ClientID); err != nil || !dup {
			t.Fatalf("resend %d: duplicate %v, err %v", i, dup, err)
		}
	}
	// Retry and dead entries on another shard count too.
	k2 := keys.ForShard(2)
	if err := conn.Client.ZAdd(t.Context(), k2.Retry("ens"), redisZ(1)).Err(); err != nil {
		t.Fatal(err)
	}
	ds, err := Depths(t.Context(), conn.Client, keys, []string{"ens"}, true)
	if err != nil || ds[0].Err != nil {
		t.Fatalf("Depths: %v %v", err, ds)
	}
	if ds[0].Ready != n || ds[0].Retry != 1 {
		t.Errorf("Depths ready %d retry %d, want %d and 1 (the sum over the shards)", ds[0].Ready, ds[0].Retry, n)
	}
	// Shard 0 keeps the unsharded keys; the others their own tag.
	if got := keys.ForShard(0).Events("ens"); got != testPrefix+":{ens}:events" {
		t.Errorf("shard 0 events key %q", got)
	}
	if got := k2.Events("ens"); got != testPrefix+":{ens:2}:events" {
		t.Errorf("shard 2 events key %q", got)
	}
	if k2.Rate("ens") != keys.Rate("ens") {
		t.Errorf("the rate key must be provider-wide: %q vs %q", k2.Rate("ens"), keys.Rate("ens"))
	}
}

// The high-water mark applies to the provider's backlog summed over its shards: no
// shard alone is over it here.
func TestShardsHighWaterSumsShards(t *testing.T) {
	_, conn := openRedis(t, redistest.Options{})
	keys := Keys{Prefix: testPrefix, Shards: 4}
	opts := defaultEnqOpts()
	opts.Providers = []string{"ens"}
	opts.HighWaterMark = 5
	opts.HighWaterPoll = 20 * time.Millisecond
	c := conn.Client
	ctx := t.Context()
	c.ZAdd(ctx, keys.ForShard(1).Retry("ens"), redisZ(1), redisZ(2))
	c.ZAdd(ctx, keys.ForShard(2).Retry("ens"), redisZ(1), redisZ(2))
	for range 2 {
		c.XAdd(ctx, &redis.XAddArgs{Stream: keys.ForShard(3).Events("ens"), Values: []any{"e", "x"}})
	}
	e := NewEnqueuer(c, keys, opts, zaptest.NewLogger(t))
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(rctx) }()
	defer func() { cancel(); <-done }()
	// Poll the monitor's verdict rather than enqueue: an enqueue would grow the backlog.
	deadline := time.Now().Add(5 * time.Second)
	for !e.over["ens"].Load() {
		if time.Now().After(deadline) {
			t.Fatal("not over the high-water mark after 5 s: backlog 6 over 4 shards, mark 5")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := e.Enqueue(ctx, testMessage("ens", 1), RelayID); !errors.Is(err, ErrOverHighWater) {
		t.Fatalf("err = %v, want ErrOverHighWater", err)
	}
}
