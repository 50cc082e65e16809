package queue

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/internal/redistest"
)

// scriptRedis starts a redis-server with the outcome scripts loaded and returns a client
// and the keys (prefix "t") the outcome tests use.
func scriptRedis(t *testing.T) (*redis.Client, Keys) {
	t.Helper()
	rs := redistest.Start(t, redistest.Options{})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	if err := LoadScripts(context.Background(), rdb); err != nil {
		t.Fatal(err)
	}
	return rdb, Keys{Prefix: "t"}
}

// ackScript acks only what is still pending under the owner, both from its one range
// XPENDING and, when that reply is cut at the limit, id by id.
func TestAckScriptOwnerGate(t *testing.T) {
	ctx := context.Background()
	rdb, keys := scriptRedis(t)
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
	rdb, keys := scriptRedis(t)
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

// A stale owner never overrides the new one: an entry read by consumer A and then
// claimed by consumer B (XCLAIM, or XAUTOCLAIM as the reclaimer does) takes no outcome
// from A, whatever its kind: A's call reports not applied and changes nothing (no ack,
// no XDEL, no retry member, no dead letter, no stats). B's call then applies, once: a
// second call by either reports not applied and writes nothing more. (KindLost has no
// owner: it is gated on its marker, see TestLostDeadLetterWrittenOnce.)
func TestOutcomeStaleOwnerGate(t *testing.T) {
	ctx := context.Background()
	rdb, keys := scriptRedis(t)
	// record writes kind for e as owner and returns whether it applied.
	record := func(t *testing.T, provider, kind string, e *Entry, owner string) int64 {
		t.Helper()
		pipe := rdb.Pipeline()
		var cmd *redis.Cmd
		switch kind {
		case "delivered":
			cmd = AckDelivered(ctx, pipe, keys, provider, owner, []string{e.StreamID})
		case "retry":
			var err error
			cmd, err = RecordOutcome(ctx, pipe, keys, provider, e, owner,
				Outcome{Kind: KindRetry, Attempts: 1, Status: 503, Error: "503", Delay: time.Minute, Counted: true})
			if err != nil {
				t.Fatal(err)
			}
		case "dead":
			var err error
			cmd, err = RecordOutcome(ctx, pipe, keys, provider, e, owner,
				Outcome{Kind: KindDead, Reason: DeadPermanent, Attempts: 1, Status: 400, Error: "400", Counted: true})
			if err != nil {
				t.Fatal(err)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := Applied(cmd)
		if err != nil || len(got) != 1 {
			t.Fatalf("%s as %s: %v, %v; want one result", kind, owner, got, err)
		}
		return got[0]
	}
	// state is what an outcome may change.
	type state struct {
		inStream, retries, dead int64
		owner                   string // the pending entry's consumer, "" when not pending
		stats                   map[string]string
	}
	stateOf := func(t *testing.T, provider, id string) state {
		t.Helper()
		s := state{
			inStream: int64(len(rdb.XRange(ctx, keys.Events(provider), id, id).Val())),
			retries:  rdb.ZCard(ctx, keys.Retry(provider)).Val(),
			dead:     rdb.XLen(ctx, keys.Dead(provider)).Val(),
			stats:    map[string]string{},
		}
		p, err := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: keys.Events(provider), Group: Group,
			Start: id, End: id, Count: 1}).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(p) == 1 {
			s.owner = p[0].Consumer
		}
		for _, k := range rdb.Keys(ctx, keys.StatsPrefix(provider)+"*").Val() {
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				s.stats[f] = v
			}
		}
		return s
	}
	for _, kind := range []string{"delivered", "retry", "dead"} {
		for _, claim := range []string{"XCLAIM", "XAUTOCLAIM"} {
			t.Run(kind+"/"+claim, func(t *testing.T) {
				provider := kind + "-" + claim
				m := testMessage(provider, 1)
				stream := keys.Events(provider)
				if err := CreateGroup(ctx, rdb, keys, provider); err != nil {
					t.Fatal(err)
				}
				if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream,
					Values: []string{FieldEnvelope, EncodeEntry(m)}}).Err(); err != nil {
					t.Fatal(err)
				}
				read, err := ReadNew(ctx, rdb, keys, provider, "A", 10, -1)
				if err != nil || len(read) != 1 || read[0].Bad != nil {
					t.Fatalf("A read %v, %v; want one good entry", read, err)
				}
				a := read[0]
				var b *Entry
				switch claim {
				case "XCLAIM":
					xs, err := rdb.XClaim(ctx, &redis.XClaimArgs{Stream: stream, Group: Group, Consumer: "B",
						Messages: []string{a.StreamID}}).Result()
					if err != nil || len(xs) != 1 {
						t.Fatalf("XCLAIM: %v, %v", xs, err)
					}
					b = DecodeEntry(provider, xs[0].ID, xs[0].Values)
				case "XAUTOCLAIM":
					_, claimed, deleted, err := Claim(ctx, rdb, keys, provider, "B", 0, "0-0", 10)
					if err != nil || len(claimed) != 1 || len(deleted) != 0 {
						t.Fatalf("XAUTOCLAIM: %v, %v, %v", claimed, deleted, err)
					}
					b = claimed[0]
				}
				before := stateOf(t, provider, a.StreamID)
				if want := (state{inStream: 1, owner: "B", stats: map[string]string{}}); !reflect.DeepEqual(before, want) {
					t.Fatalf("after the claim: %+v, want %+v", before, want)
				}
				if got := record(t, provider, kind, a, "A"); got != 0 {
					t.Errorf("stale owner A's %s: applied %d, want 0", kind, got)
				}
				if after := stateOf(t, provider, a.StreamID); !reflect.DeepEqual(after, before) {
					t.Fatalf("stale owner A's %s changed %+v into %+v", kind, before, after)
				}
				if got := record(t, provider, kind, b, "B"); got != 1 {
					t.Fatalf("owner B's %s: applied %d, want 1", kind, got)
				}
				want := state{stats: map[string]string{}}
				switch kind {
				case "delivered":
					want.stats[StatDelivered] = "1"
				case "retry":
					want.retries = 1
					want.stats[StatRetried] = "1"
				case "dead":
					want.dead = 1
					want.stats[StatDead] = "1"
				}
				settled := stateOf(t, provider, a.StreamID)
				if !reflect.DeepEqual(settled, want) {
					t.Fatalf("after owner B's %s: %+v, want %+v", kind, settled, want)
				}
				for _, owner := range []struct {
					name string
					e    *Entry
				}{{"A", a}, {"B", b}} {
					if got := record(t, provider, kind, owner.e, owner.name); got != 0 {
						t.Errorf("%s's %s after it was settled: applied %d, want 0", owner.name, kind, got)
					}
				}
				if again := stateOf(t, provider, a.StreamID); !reflect.DeepEqual(again, want) {
					t.Fatalf("a settled entry's outcome recorded again: %+v, want %+v", again, want)
				}
			})
		}
	}
}
