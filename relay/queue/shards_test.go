package queue

import (
	"context"
	"testing"

	"go.uber.org/zap/zaptest"

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
