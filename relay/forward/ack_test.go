package forward

import (
	"context"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/internal/redistest"
	"github.com/eventrelay/relay/relay/queue"
)

// ackScript acks only what is still pending under the owner, both from its one range
// XPENDING and, when that reply is cut at the limit, id by id.
func TestAckScriptOwnerGate(t *testing.T) {
	ctx := context.Background()
	rs := redistest.Start(t, redistest.Options{})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	const stream, stats = "t:{p}:events", "t:{p}:stats:"
	var ids []string
	for range 6 {
		ids = append(ids, rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []string{"k", "v"}}).Val())
	}
	rdb.XGroupCreate(ctx, stream, queue.Group, "0")
	read := func(consumer string, n int64) {
		if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: queue.Group, Consumer: consumer,
			Streams: []string{stream, ">"}, Count: n, Block: -1}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	read("mine", 2)   // ids 0, 1
	read("theirs", 1) // id 2
	read("mine", 3)   // ids 3, 4, 5
	for _, limit := range []int{ackRangeLimit, 1} {
		args := []any{queue.Group, "mine", ids[0], ids[4], limit, ids[4], ids[2], ids[0]}
		if limit == 1 {
			args = []any{queue.Group, "mine", ids[1], ids[5], limit, ids[5], ids[2], ids[1]}
		}
		got, err := ackScript.Run(ctx, rdb, []string{stream, stats}, args...).Int64Slice()
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
	f := &Forwarder{provider: "p", events: "t:{p}:events", retry: "t:{p}:retry", dead: "t:{p}:dead",
		o: Options{Keys: queue.Keys{Prefix: "t"}}}
	e := &entry{streamID: "1-0", bad: queue.ErrMalformedEntry, reason: reasonTrimmed}
	args, err := f.recordArgs(record{e: e, o: outcome{kind: kindLost, reason: reasonTrimmed, err: e.bad}})
	if err != nil {
		t.Fatal(err)
	}
	for try, want := range []int64{1, 0} {
		got, err := recordScript.Run(ctx, rdb, f.recordKeys(e.streamID), args...).Int64()
		if err != nil || got != want {
			t.Fatalf("write %d: %d, %v; want %d", try+1, got, err, want)
		}
	}
	if n := rdb.XLen(ctx, f.dead).Val(); n != 1 {
		t.Fatalf("%d dead letters, want 1", n)
	}
}
