package queue

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/internal/redistest"
)

// Entries, retry members and dead letters written by earlier relays (nine fields, JSON
// members) go through every step of the new code: read, retried, moved back, dead-lettered,
// listed and replayed. The fixtures are the old format exactly as the old code wrote it.

// legacyMember is a retry member as earlier relays wrote it: a JSON array of the nine
// ingest fields, then attempts, status and error.
func legacyMember(t testing.TB, m *delivery.Message, attempts int) string {
	var pairs []string
	for _, f := range entryFields {
		pairs = append(pairs, f, legacyValues(m)[f].(string))
	}
	pairs = append(pairs, FieldAttempts, strconv.Itoa(attempts), FieldStatus, "503", FieldError, "HTTP 503")
	b, err := json.Marshal(pairs)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func compatRedis(t *testing.T) (context.Context, *redis.Client, Keys) {
	rs := redistest.Start(t, redistest.Options{AOF: "no"})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	keys := Keys{Prefix: "t"}
	if err := CreateGroup(t.Context(), rdb, keys, "ens"); err != nil {
		t.Fatal(err)
	}
	return t.Context(), rdb, keys
}

// exec runs one queued outcome and returns what it applied, loading scripts on NOSCRIPT.
func exec(t *testing.T, ctx context.Context, rdb *redis.Client, queue func(redis.Pipeliner) *redis.Cmd) []int64 {
	t.Helper()
	for range 2 {
		pipe := rdb.Pipeline()
		cmd := queue(pipe)
		_, _ = pipe.Exec(ctx)
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			if err := LoadScripts(ctx, rdb); err != nil {
				t.Fatal(err)
			}
			continue
		}
		res, err := Applied(cmd)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	t.Fatal("NOSCRIPT twice")
	return nil
}

func readOne(t *testing.T, ctx context.Context, rdb *redis.Client, keys Keys) *Entry {
	t.Helper()
	got, err := ReadNew(ctx, rdb, keys, "ens", "c1", 10, -1)
	if err != nil || len(got) != 1 {
		t.Fatalf("read %d entries: %v", len(got), err)
	}
	return got[0]
}

func TestLegacyEntryRetriedMovedAndDelivered(t *testing.T) {
	ctx, rdb, keys := compatRedis(t)
	m := testMessage("ens", 1)
	m.ID = "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f"
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.Events("ens"), Values: legacyValues(m)}).Err(); err != nil {
		t.Fatal(err)
	}
	e := readOne(t, ctx, rdb, keys)
	if e.Bad != nil || !equalMessage(e.Message, *m) || e.Attempts != 0 {
		t.Fatalf("legacy entry read as %+v", e)
	}
	// A failed attempt: into the retry set as a compact member, due at once.
	res := exec(t, ctx, rdb, func(p redis.Pipeliner) *redis.Cmd {
		cmd, err := RecordOutcome(ctx, p, keys, "ens", e, "c1", Outcome{Kind: KindRetry, Attempts: 1, Status: 503, Error: "HTTP 503", Counted: true})
		if err != nil {
			t.Fatal(err)
		}
		return cmd
	})
	if len(res) != 1 || res[0] != 1 {
		t.Fatalf("retry recorded: %v", res)
	}
	if n, err := MoveDue(ctx, rdb, keys, "ens", 10); err != nil || n != 1 {
		t.Fatalf("moved %d: %v", n, err)
	}
	e = readOne(t, ctx, rdb, keys)
	if e.Bad != nil || !equalMessage(e.Message, *m) || e.Attempts != 1 || e.Status != 503 || e.Error != "HTTP 503" {
		t.Fatalf("after the retry: %+v", e)
	}
	res = exec(t, ctx, rdb, func(p redis.Pipeliner) *redis.Cmd {
		return AckDelivered(ctx, p, keys, "ens", "c1", []string{e.StreamID})
	})
	if len(res) != 1 || res[0] != 1 || rdb.XLen(ctx, keys.Events("ens")).Val() != 0 {
		t.Fatalf("delivery recorded: %v, %d left", res, rdb.XLen(ctx, keys.Events("ens")).Val())
	}
}

func TestLegacyRetryMemberMovedBack(t *testing.T) {
	ctx, rdb, keys := compatRedis(t)
	m := testMessage("ens", 2)
	due := float64(time.Now().Add(-time.Second).UnixMilli())
	if err := rdb.ZAdd(ctx, keys.Retry("ens"), redis.Z{Score: due, Member: legacyMember(t, m, 4)}).Err(); err != nil {
		t.Fatal(err)
	}
	// The admin API's age estimate reads it too.
	if at, ok := RetryMemberAt(legacyMember(t, m, 4)); !ok || at != m.ReceivedAt.UnixMilli() {
		t.Fatalf("RetryMemberAt: %d %v", at, ok)
	}
	if n, err := MoveDue(ctx, rdb, keys, "ens", 10); err != nil || n != 1 {
		t.Fatalf("moved %d: %v", n, err)
	}
	e := readOne(t, ctx, rdb, keys)
	if e.Bad != nil || !equalMessage(e.Message, *m) || e.Attempts != 4 || e.Status != 503 || e.Error != "HTTP 503" {
		t.Fatalf("moved legacy member read as %+v", e)
	}
	// Dead-lettered now: a compact dead letter the admin API lists with the event.
	res := exec(t, ctx, rdb, func(p redis.Pipeliner) *redis.Cmd {
		cmd, err := RecordOutcome(ctx, p, keys, "ens", e, "c1", Outcome{Kind: KindDead, Reason: DeadMaxAttempts, Attempts: 5, Status: 503, Error: "HTTP 503", Counted: true})
		if err != nil {
			t.Fatal(err)
		}
		return cmd
	})
	if len(res) != 1 || res[0] != 1 {
		t.Fatalf("dead letter recorded: %v", res)
	}
	total, dead, err := ListDead(ctx, rdb, keys, "ens", 10)
	if err != nil || total != 1 || len(dead) != 1 {
		t.Fatalf("ListDead: %d %v %v", total, dead, err)
	}
	d := dead[0]
	if !equalMessage(d.Message, *m) || d.Reason != DeadMaxAttempts || d.Attempts != 5 || d.Status != 503 ||
		d.Error != "HTTP 503" || d.EventsStreamID != e.StreamID || d.DeadAt.IsZero() {
		t.Fatalf("dead letter %+v", d)
	}
	// Replayed: back in the stream with its attempts starting from zero.
	r, err := ReplayDead(ctx, rdb, keys, "ens", []string{d.StreamID, d.StreamID})
	if err != nil || r != (Replayed{Replayed: 1, Missing: 1}) {
		t.Fatalf("ReplayDead: %+v %v", r, err)
	}
	e = readOne(t, ctx, rdb, keys)
	if e.Bad != nil || !equalMessage(e.Message, *m) || e.Attempts != 0 || e.Error != "" {
		t.Fatalf("replayed: %+v", e)
	}
}

// Dead letters of earlier relays: listed with their event, replayed as they were (the
// nine fields), a trimmed one skipped; a malformed legacy entry's dead letter keeps the
// fields it had.
func TestLegacyDeadLetters(t *testing.T) {
	ctx, rdb, keys := compatRedis(t)
	m := testMessage("ens", 3)
	values := legacyValues(m)
	pairs := []any{}
	for _, f := range entryFields {
		pairs = append(pairs, f, values[f])
	}
	pairs = append(pairs, "attempts", "12", "status", "503", "error", "HTTP 503", "reason", "max_attempts",
		"dead_at", "1718000000000", "stream_id", "5-0")
	full := rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.Dead("ens"), Values: pairs}).Val()
	trimmed := rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.Dead("ens"), Values: []any{"attempts", "0", "status", "0",
		"error", "gone", "reason", "trimmed", "dead_at", "1718000000001", "stream_id", "6-0"}}).Val()

	d, ok, err := GetDead(ctx, rdb, keys, "ens", full)
	if err != nil || !ok || !equalMessage(d.Message, *m) || d.Attempts != 12 || d.Reason != DeadMaxAttempts ||
		d.DeadAt != time.UnixMilli(1718000000000) || d.EventsStreamID != "5-0" {
		t.Fatalf("legacy dead letter %+v %v %v", d, ok, err)
	}
	r, err := ReplayDead(ctx, rdb, keys, "ens", []string{full, trimmed})
	if err != nil || r != (Replayed{Replayed: 1, Skipped: 1}) {
		t.Fatalf("ReplayDead: %+v %v", r, err)
	}
	back := rdb.XRange(ctx, keys.Events("ens"), "-", "+").Val()
	if len(back) != 1 || len(back[0].Values) != numFields {
		t.Fatalf("replayed legacy dead letter: %v", back)
	}
	e := readOne(t, ctx, rdb, keys)
	if e.Bad != nil || !equalMessage(e.Message, *m) || e.Attempts != 0 {
		t.Fatalf("replayed: %+v", e)
	}

	// A malformed legacy entry (no body): dead-lettered with what it has.
	id := rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.Events("ens"), Values: []any{"id", "x2", "route", "ens/click"}}).Val()
	bad := readOne(t, ctx, rdb, keys)
	if bad.StreamID != id || bad.Bad == nil || bad.Reason != DeadMalformed {
		t.Fatalf("malformed legacy entry read as %+v", bad)
	}
	exec(t, ctx, rdb, func(p redis.Pipeliner) *redis.Cmd {
		cmd, err := RecordOutcome(ctx, p, keys, "ens", bad, "c1", Outcome{Kind: KindDead, Reason: bad.Reason, Error: bad.Bad.Error()})
		if err != nil {
			t.Fatal(err)
		}
		return cmd
	})
	_, dead, err := ListDead(ctx, rdb, keys, "ens", 1)
	if err != nil || len(dead) != 1 || dead[0].Message.ID != "x2" || dead[0].Message.Route != "ens/click" || dead[0].Reason != DeadMalformed {
		t.Fatalf("malformed dead letter %+v %v", dead, err)
	}
	if r, err := ReplayDead(ctx, rdb, keys, "ens", []string{dead[0].StreamID}); err != nil || r.Skipped != 1 {
		t.Fatalf("replay of a malformed legacy dead letter: %+v %v", r, err)
	}
	if _, err := RecordOutcome(ctx, rdb.Pipeline(), keys, "ens", bad, "c1", Outcome{Kind: KindRetry}); err == nil {
		t.Fatal("a malformed entry was retried")
	}
}
