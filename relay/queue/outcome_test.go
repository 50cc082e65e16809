package queue

import (
	"context"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/internal/redistest"
)

// ackScript acks only what is still pending under the owner, both from its one range
// XPENDING and, when that reply is cut at the limit, id by id.
func TestAckScriptOwnerGate(t *testing.T) {
	ctx := context.Background()
	rs := redistest.Start(t, redistest.Options{})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	keys := Keys{Prefix: "t"}
	stream := keys.Events("p")
	var ids []string
	for range 6 {
		ids = append(ids, rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []string{"k", "v"}}).Val())
	}
	rdb.XGroupCreate(ctx, stream, Group, "0")
	read := func(consumer string, n int64) {
		if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: Group, Consumer: consumer,
			Streams: []string{stream, ">"}, Count: n, Block: -1}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	read("mine", 2)   // ids 0, 1
	read("theirs", 1) // id 2
	read("mine", 3)   // ids 3, 4, 5
	for _, limit := range []int{ackRangeLimit, 1} {
		// The range is [ids 0, 4] with the default limit, [ids 1, 5] with limit 1.
		acked := []string{ids[4], ids[2], ids[0]}
		if limit == 1 {
			acked = []string{ids[5], ids[2], ids[1]}
		}
		pipe := rdb.Pipeline()
		cmd := ackDelivered(ctx, pipe, keys, "p", "mine", acked, limit)
		if _, err := pipe.Exec(ctx); err != nil && !redis.HasErrorPrefix(err, "NOSCRIPT") {
			t.Fatal(err)
		}
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			if err := LoadScripts(ctx, rdb); err != nil {
				t.Fatal(err)
			}
			pipe = rdb.Pipeline()
			cmd = ackDelivered(ctx, pipe, keys, "p", "mine", acked, limit)
			_, _ = pipe.Exec(ctx)
		}
		got, err := Applied(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if want := []int64{1, 0, 1}; !slices.Equal(got, want) {
			t.Errorf("limit %d: %v, want %v (the other consumer's entry not acked)", limit, got, want)
		}
	}
	left := rdb.XRange(ctx, stream, "-", "+").Val()
	if len(left) != 2 || left[0].ID != ids[2] || left[1].ID != ids[3] {
		t.Fatalf("left in the stream: %v, want ids 2 and 3", left)
	}
}

// A "lost" dead letter has no pending entry to gate on: its marker makes a retried write
// (the first one ran but its reply was lost) append one dead letter, not two.
func TestLostDeadLetterWrittenOnce(t *testing.T) {
	ctx := context.Background()
	rs := redistest.Start(t, redistest.Options{})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	keys := Keys{Prefix: "t"}
	if err := LoadScripts(ctx, rdb); err != nil {
		t.Fatal(err)
	}
	e := LostEntry("1-0")
	o := Outcome{Kind: KindLost, Reason: e.Reason, Error: e.Bad.Error(), Counted: true}
	for try, want := range []int64{1, 0} {
		pipe := rdb.Pipeline()
		cmd, err := RecordOutcome(ctx, pipe, keys, "p", e, "", o)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = pipe.Exec(ctx)
		got, err := Applied(cmd)
		if err != nil || len(got) != 1 || got[0] != want {
			t.Fatalf("write %d: %v, %v; want %d", try+1, got, err, want)
		}
	}
	if n := rdb.XLen(ctx, keys.Dead("p")).Val(); n != 1 {
		t.Fatalf("%d dead letters, want 1", n)
	}
}
