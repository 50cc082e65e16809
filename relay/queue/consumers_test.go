package queue

import (
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// consumerNames lists the consumers of provider's group.
func consumerNames(t *testing.T, rdb *redis.Client, keys Keys, provider string) []string {
	t.Helper()
	cs, err := rdb.XInfoConsumers(t.Context(), keys.Events(provider), Group).Result()
	if err != nil {
		t.Fatalf("XINFO CONSUMERS: %v", err)
	}
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	slices.Sort(names)
	return names
}

// TestRemoveIdleConsumers: a consumer holding a pending entry is never removed, however
// idle; one holding nothing is removed once idle past the bound, and not before.
func TestRemoveIdleConsumers(t *testing.T) {
	rdb, keys := scriptRedis(t)
	ctx := t.Context()
	stream := keys.Events("ens")
	if err := CreateGroup(ctx, rdb, keys, "ens"); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []string{"e", "x"}}).Err(); err != nil {
		t.Fatal(err)
	}
	// "holder" takes the entry (pending); "empty" holds nothing.
	if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: Group, Consumer: "holder", Streams: []string{stream, ">"}, Count: 1, Block: -1}).Err(); err != nil {
		t.Fatalf("XREADGROUP: %v", err)
	}
	if err := rdb.XGroupCreateConsumer(ctx, stream, Group, "empty").Err(); err != nil {
		t.Fatalf("XGROUP CREATECONSUMER: %v", err)
	}
	if got := consumerNames(t, rdb, keys, "ens"); !slices.Equal(got, []string{"empty", "holder"}) {
		t.Fatalf("consumers %v; want [empty holder]", got)
	}

	gone, err := RemoveIdleConsumers(ctx, rdb, keys, "ens", time.Hour)
	if err != nil || len(gone) != 0 {
		t.Fatalf("with a 1h bound: removed %v, %v; want none (both were active just now)", gone, err)
	}
	gone, err = RemoveIdleConsumers(ctx, rdb, keys, "ens", 0)
	if err != nil || !slices.Equal(gone, []string{"empty"}) {
		t.Fatalf("with a 0 bound: removed %v, %v; want [empty] (holder has a pending entry)", gone, err)
	}
	if got := consumerNames(t, rdb, keys, "ens"); !slices.Equal(got, []string{"holder"}) {
		t.Fatalf("consumers after removal %v; want [holder]", got)
	}
	if n := rdb.XPending(ctx, stream, Group).Val().Count; n != 1 {
		t.Fatalf("pending entries after removal: %d; want 1 (never dropped)", n)
	}
	if gone, err := RemoveIdleConsumers(ctx, rdb, keys, "missing", 0); err != nil || len(gone) != 0 {
		t.Fatalf("on a missing stream: %v, %v; want nothing and no error", gone, err)
	}
}
