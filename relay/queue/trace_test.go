package queue

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/internal/redistest"
)

// writeTraces writes one delivered record for each of ids, in pipelines of 100 records
// (as the recorder does: one script call per pipeline), the first call by hash without the
// script loaded (NOSCRIPT: then RunTrace, as the recorder does).
func writeTraces(t *testing.T, rdb *redis.Client, keys Keys, keep int, ids []string) {
	t.Helper()
	ctx := context.Background()
	for lo := 0; lo < len(ids); lo += 100 {
		var writes []TraceWrite
		for _, id := range ids[lo:min(lo+100, len(ids))] {
			writes = append(writes, TraceWrite{ID: id, Record: TraceRecord{At: 1700000000100, Attempt: 1, Outcome: TraceDelivered, DurationMS: 12,
				Received: &TraceReceived{StreamID: "1700000000000-0", At: 1700000000000, Route: "p/click", Source: "client:backend"}}})
		}
		pipe := rdb.Pipeline()
		cmd := WriteTrace(ctx, pipe, keys, "p", keep, writes)
		_, _ = pipe.Exec(ctx)
		if err := cmd.Err(); err != nil {
			if !redis.HasErrorPrefix(err, "NOSCRIPT") {
				t.Fatal(err)
			}
			if err := RunTrace(ctx, rdb, keys, "p", keep, writes); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func ids(from, to int) []string {
	out := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%08d-0000-4000-8000-000000000000", i))
	}
	return out
}

// The trace keeps exactly the last keep records: after keep+X events the oldest X are
// gone, the newest keep are there, and Redis's memory for the trace keys stops growing.
func TestTraceBound(t *testing.T) {
	ctx := context.Background()
	rdb, keys := scriptRedis(t)
	const keep = 1000
	writeTraces(t, rdb, keys, keep, ids(0, keep))
	full, events, err := TraceUsage(ctx, rdb, keys, "p")
	if err != nil {
		t.Fatal(err)
	}
	if events != keep {
		t.Fatalf("%d records kept, want %d", events, keep)
	}
	t.Logf("trace of %d events: %d bytes (%d per event)", keep, full, full/keep)

	writeTraces(t, rdb, keys, keep, ids(keep, 4*keep))
	after, events, err := TraceUsage(ctx, rdb, keys, "p")
	if err != nil {
		t.Fatal(err)
	}
	if events != keep || rdb.LLen(ctx, keys.TraceOrderKey("p")).Val() != keep {
		t.Errorf("after %d more events: %d traced, order list %d, want %d", 3*keep, events,
			rdb.LLen(ctx, keys.TraceOrderKey("p")).Val(), keep)
	}
	// Same count, similar ids: the same memory give or take allocator rounding.
	if after > full+full/10 {
		t.Errorf("trace memory grew from %d to %d bytes with the same %d events kept", full, after, keep)
	}
	for _, id := range []string{ids(0, 1)[0], ids(3*keep-1, 3*keep)[0]} {
		if _, found, err := ReadTrace(ctx, rdb, keys, "p", id); err != nil || found {
			t.Errorf("event %s (older than the last %d) still traced: %v %v", id, keep, found, err)
		}
	}
	for _, id := range []string{ids(3*keep, 3*keep+1)[0], ids(4*keep-1, 4*keep)[0]} {
		if _, found, err := ReadTrace(ctx, rdb, keys, "p", id); err != nil || !found {
			t.Errorf("event %s (among the last %d) not traced: %v %v", id, keep, found, err)
		}
	}
}

// An event's records come back in order (a deferral after the attempt it followed), its
// arrival from the first record; the bound drops records one by one, oldest first.
func TestTraceRecordsAccumulate(t *testing.T) {
	ctx := context.Background()
	rdb, keys := scriptRedis(t)
	const keep = 4
	w := func(id string, r TraceRecord) {
		writes := []TraceWrite{{ID: id, Record: r}}
		if err := RunTrace(ctx, rdb, keys, "p", keep, writes); err != nil {
			t.Fatal(err)
		}
	}
	w("a", TraceRecord{At: 10, Attempt: 1, Outcome: TraceRetry, Status: 503, Class: "5xx", DueAt: 20,
		Received: &TraceReceived{At: 5, Route: "p/click"}})
	w("a", TraceRecord{At: 21, Attempt: 1, Outcome: TraceDeferred, Class: "deferred"})
	w("b", TraceRecord{At: 22, Attempt: 1, Outcome: TraceDelivered, Received: &TraceReceived{At: 6}})
	w("a", TraceRecord{At: 30, Attempt: 2, Outcome: TraceDelivered})
	tr, found, err := ReadTrace(ctx, rdb, keys, "p", "a")
	if err != nil || !found {
		t.Fatalf("a: %v %v", found, err)
	}
	if tr.Received == nil || tr.Received.Route != "p/click" || len(tr.Records) != 3 || tr.Records[0].Status != 503 ||
		tr.Records[1].Outcome != TraceDeferred || tr.Records[2].Outcome != TraceDelivered || tr.Records[2].Attempt != 2 {
		t.Errorf("a's trace %+v", tr)
	}
	w("c", TraceRecord{At: 31, Attempt: 1, Outcome: TraceDelivered}) // pops a#1
	tr, _, _ = ReadTrace(ctx, rdb, keys, "p", "a")
	if len(tr.Records) != 2 || tr.Records[0].Outcome != TraceDeferred || tr.Received != nil {
		t.Errorf("a's trace after its oldest record left: %+v", tr)
	}
	if n := rdb.HLen(ctx, keys.TraceKey("p")).Val(); n != keep {
		t.Errorf("%d records kept, want %d", n, keep)
	}
}

// FindQueued finds an entry among the newest of its stream, pending or not, and not one
// beyond the scan.
func TestFindQueued(t *testing.T) {
	ctx := context.Background()
	rdb, keys := scriptRedis(t)
	stream := keys.Events("p")
	var sids []string
	for i := range 1200 {
		m := testMessage("p", i)
		sids = append(sids, rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []string{FieldEnvelope, EncodeEntry(m)}}).Val())
	}
	if err := CreateGroup(ctx, rdb, keys, "p"); err != nil {
		t.Fatal(err)
	}
	// Take the oldest entry, as a worker.
	if _, err := ReadNew(ctx, rdb, keys, "p", "worker-1", 1, -1); err != nil {
		t.Fatal(err)
	}
	q, found, err := FindQueued(ctx, rdb, keys, "p", "ev-p-0", 2000)
	if err != nil || !found || q.Pending == nil || q.Pending.Consumer != "worker-1" || q.Entry.StreamID != sids[0] {
		t.Fatalf("pending entry: %+v %v %v", q, found, err)
	}
	q, found, err = FindQueued(ctx, rdb, keys, "p", "ev-p-1100", 2000)
	if err != nil || !found || q.Pending != nil || q.Entry.Message.Route != "p/click" {
		t.Fatalf("queued entry: %+v %v %v", q, found, err)
	}
	if _, found, _ := FindQueued(ctx, rdb, keys, "p", "ev-p-0", 1000); found {
		t.Error("found an entry beyond the scan's bound")
	}
	if _, found, _ := FindQueued(ctx, rdb, keys, "p", "nope", 2000); found {
		t.Error("found an unknown id")
	}
}

// BenchmarkTraceWrite is the trace's cost per record: one script call per 32 records (a
// recorder pipeline's share), on a trace kept at 5000 records (trimming on every call).
func BenchmarkTraceWrite(b *testing.B) {
	ctx := context.Background()
	rs := redistest.Start(b, redistest.Options{})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	b.Cleanup(func() { _ = rdb.Close() })
	keys := Keys{Prefix: "t"}
	const per = 32
	batch := func(i int) []TraceWrite {
		w := make([]TraceWrite, per)
		for k := range w {
			w[k] = TraceWrite{ID: fmt.Sprintf("%08d-0000-4000-8000-%012d", i, k), Record: TraceRecord{At: 1700000000100, Attempt: 1,
				Outcome: TraceDelivered, DurationMS: 12, Received: &TraceReceived{StreamID: "1700000000000-0", At: 1700000000000,
					Route: "ens/click", Source: "client:backend"}}}
		}
		return w
	}
	for i := range 200 { // fill to the bound first
		if err := RunTrace(ctx, rdb, keys, "p", 5000, batch(-i-1)); err != nil {
			b.Fatal(err)
		}
	}
	m := redistest.StartCPU(b, rdb)
	b.ResetTimer()
	for i := range b.N {
		if err := RunTrace(ctx, rdb, keys, "p", 5000, batch(i)); err != nil {
			b.Fatal(err)
		}
	}
	m.Report(b)
	b.ReportMetric(float64(b.N*per), "records")
}
