package queue

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/internal/redistest"
)

// writeTraces writes one delivered record for each of ids, per pipelines of per records
// (as the recorder does: one XADD per pipeline), through w.
func writeTraces(t testing.TB, rdb *redis.Client, w *TraceWriter, per int, ids []string) {
	t.Helper()
	ctx := context.Background()
	for lo := 0; lo < len(ids); lo += per {
		w.Reset()
		for _, id := range ids[lo:min(lo+per, len(ids))] {
			w.Add(id, &TraceRecord{At: 1700000000100, Attempt: 1, Outcome: TraceDelivered, DurationMS: 12,
				Received: &TraceReceived{StreamID: "1700000000000-0", At: 1700000000000, Route: "p/click", Source: "client:backend"}})
		}
		pipe := rdb.Pipeline()
		cmd := w.Queue(ctx, pipe)
		_, _ = pipe.Exec(ctx)
		if err := cmd.Err(); err != nil {
			t.Fatal(err)
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

// The trace keeps about the last keep records: after keep+X events the oldest X are
// gone, the newest keep are there, and Redis's memory for the trace stops growing. With
// 100 records per pipeline the MAXLEN is 10 entries, trimmed exactly; with one record per
// pipeline it is 2000 entries, trimmed by whole nodes ("~"): at most 10% over.
func TestTraceBound(t *testing.T) {
	for _, c := range []struct{ keep, per, slack int }{{1000, 100, 0}, {2000, 1, 200}} {
		t.Run(fmt.Sprintf("keep%d_per%d", c.keep, c.per), func(t *testing.T) {
			ctx := context.Background()
			rdb, keys := scriptRedis(t)
			w := &TraceWriter{Keys: keys, Provider: "p", Keep: c.keep}
			keep := c.keep
			writeTraces(t, rdb, w, c.per, ids(0, keep))
			full, events, err := TraceUsage(ctx, rdb, keys, "p")
			if err != nil {
				t.Fatal(err)
			}
			if events != int64(keep) {
				t.Fatalf("%d records kept, want %d", events, keep)
			}
			t.Logf("trace of %d events: %d bytes (%d per event)", keep, full, full/int64(keep))

			writeTraces(t, rdb, w, c.per, ids(keep, 4*keep))
			after, events, err := TraceUsage(ctx, rdb, keys, "p")
			if err != nil {
				t.Fatal(err)
			}
			if events < int64(keep) || events > int64(keep+c.slack) {
				t.Errorf("after %d more events: %d traced, want %d to %d", 3*keep, events, keep, keep+c.slack)
			}
			if after > full+full/10+full*int64(c.slack)/int64(keep) {
				t.Errorf("trace memory grew from %d to %d bytes with about the same %d events kept", full, after, keep)
			}
			oldest := 4*keep - int(events)
			for _, id := range []string{ids(0, 1)[0], ids(oldest-1, oldest)[0]} {
				if _, found, err := ReadTrace(ctx, rdb, keys, "p", id); err != nil || found {
					t.Errorf("event %s (older than the last %d) still traced: %v %v", id, events, found, err)
				}
			}
			for _, id := range []string{ids(oldest, oldest+1)[0], ids(4*keep-1, 4*keep)[0]} {
				if _, found, err := ReadTrace(ctx, rdb, keys, "p", id); err != nil || !found {
					t.Errorf("event %s (among the last %d) not traced: %v %v", id, events, found, err)
				}
			}
		})
	}
}

// An event's records come back in order (a deferral after the attempt it followed,
// repeated deferrals at one count as the newest), its arrival from the first record; the
// bound drops records one by one, oldest first, when each pipeline writes one.
func TestTraceRecordsAccumulate(t *testing.T) {
	ctx := context.Background()
	rdb, keys := scriptRedis(t)
	const keep = 5
	tw := &TraceWriter{Keys: keys, Provider: "p", Keep: keep}
	w := func(id string, r TraceRecord) {
		tw.Reset()
		tw.Add(id, &r)
		pipe := rdb.Pipeline()
		cmd := tw.Queue(ctx, pipe)
		_, _ = pipe.Exec(ctx)
		if err := cmd.Err(); err != nil {
			t.Fatal(err)
		}
	}
	w("a", TraceRecord{At: 10, Attempt: 1, Outcome: TraceRetry, Status: 503, Class: "5xx", DueAt: 20, Error: "HTTP 503",
		Received: &TraceReceived{StreamID: "5-0", At: 5, Route: "p/click", Source: "client:web"}})
	w("a", TraceRecord{At: 21, Attempt: 1, Outcome: TraceDeferred, Class: "deferred"})
	w("a", TraceRecord{At: 22, Attempt: 1, Outcome: TraceDeferred, Class: "deferred"})
	w("b", TraceRecord{At: 22, Attempt: 1, Outcome: TraceDelivered, Received: &TraceReceived{At: 6}})
	w("a", TraceRecord{At: 30, Attempt: 2, Outcome: TraceDead, Reason: "max_attempts", DurationMS: 7})
	tr, found, err := ReadTrace(ctx, rdb, keys, "p", "a")
	if err != nil || !found {
		t.Fatalf("a: %v %v", found, err)
	}
	want := Trace{Received: &TraceReceived{StreamID: "5-0", At: 5, Route: "p/click", Source: "client:web"}, Records: []TraceRecord{
		{At: 10, Attempt: 1, Outcome: TraceRetry, Status: 503, Class: "5xx", DueAt: 20, Error: "HTTP 503"},
		{At: 22, Attempt: 1, Outcome: TraceDeferred, Class: "deferred"},
		{At: 30, Attempt: 2, Outcome: TraceDead, Reason: "max_attempts", DurationMS: 7},
	}}
	if !reflect.DeepEqual(tr, want) {
		t.Errorf("a's trace\n%+v\nwant\n%+v", tr, want)
	}
	w("c", TraceRecord{At: 31, Attempt: 1, Outcome: TraceDelivered}) // drops a#1
	tr, _, _ = ReadTrace(ctx, rdb, keys, "p", "a")
	if len(tr.Records) != 2 || tr.Records[0].At != 22 || tr.Received != nil {
		t.Errorf("a's trace after its oldest record left: %+v", tr)
	}
	if _, n, err := TraceUsage(ctx, rdb, keys, "p"); err != nil || n != keep {
		t.Errorf("%d records kept, want %d (%v)", n, keep, err)
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

// BenchmarkTraceWrite is the trace's cost per pipeline: one XADD of per records (a
// recorder pipeline's share), on a trace kept at keep records (trimming on every call):
// exact MAXLEN below 1000 entries, "~" from there.
func BenchmarkTraceWrite(b *testing.B) {
	for _, c := range []struct{ per, keep int }{{1, 5000}, {32, 5000}, {128, 5000}, {32, 100000}, {128, 100000}} {
		b.Run(fmt.Sprintf("per%d_keep%d", c.per, c.keep), func(b *testing.B) {
			rs := redistest.Start(b, redistest.Options{})
			rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
			b.Cleanup(func() { _ = rdb.Close() })
			keys := Keys{Prefix: "t"}
			w := &TraceWriter{Keys: keys, Provider: "p", Keep: c.keep}
			writeTraces(b, rdb, w, c.per, ids(0, c.keep+c.keep/2)) // fill to the bound first
			batch := ids(0, c.per)
			m := redistest.StartCPU(b, rdb)
			b.ResetTimer()
			for range b.N {
				writeTraces(b, rdb, w, c.per, batch)
			}
			m.Report(b)
			b.ReportMetric(float64(c.per), "records/op")
		})
	}
}

// BenchmarkTraceLookup is a lookup by id on a full trace of 100,000 records (160 per
// entry, ~16 KB: as a busy recorder writes them): an event that is not there (the whole trace read) and the oldest one traced.
func BenchmarkTraceLookup(b *testing.B) {
	ctx := context.Background()
	rs := redistest.Start(b, redistest.Options{})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	b.Cleanup(func() { _ = rdb.Close() })
	keys := Keys{Prefix: "t"}
	const keep = 100000
	w := &TraceWriter{Keys: keys, Provider: "p", Keep: keep}
	writeTraces(b, rdb, w, 160, ids(0, 2*keep))
	_, n, err := TraceUsage(ctx, rdb, keys, "p")
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d records kept", n)
	for _, c := range []struct{ name, id string }{{"missing", "nope"}, {"oldest", ids(2*keep-int(n), 2*keep-int(n)+1)[0]}} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				if _, found, err := ReadTrace(ctx, rdb, keys, "p", c.id); err != nil || found != (c.name != "missing") {
					b.Fatal(found, err)
				}
			}
		})
	}
}

// A writer's records are due once they reach TraceFlushBytes or the oldest is
// TraceFlushAfter old, and Wait counts down to that.
func TestTraceWriterDue(t *testing.T) {
	w := &TraceWriter{Keep: 10}
	now := time.Now()
	if w.Due(now) || w.Wait(now) != 0 {
		t.Fatal("an empty writer is due or waits")
	}
	w.Add("a", &TraceRecord{At: 1, Attempt: 1, Outcome: TraceDelivered})
	now = time.Now()
	if w.Due(now) || w.Wait(now) <= 0 || w.Wait(now) > TraceFlushAfter {
		t.Fatalf("one fresh record: due %v, wait %v", w.Due(now), w.Wait(now))
	}
	if later := now.Add(TraceFlushAfter + time.Millisecond); !w.Due(later) || w.Wait(later) != 0 {
		t.Fatalf("a record %v old: due %v, wait %v", TraceFlushAfter, w.Due(later), w.Wait(later))
	}
	w.Reset()
	for i := 0; !w.Due(now); i++ {
		if i > TraceFlushBytes {
			t.Fatal("never due by size")
		}
		w.Add(fmt.Sprintf("%08d-0000-4000-8000-000000000000", i), &TraceRecord{At: 1, Attempt: 1, Outcome: TraceDelivered})
	}
	if len(w.buf) < TraceFlushBytes || w.Wait(now) != 0 {
		t.Fatalf("due by size at %d bytes, wait %v", len(w.buf), w.Wait(now))
	}
}
