package queue

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// The delivery trace keeps, per provider, about the last trace.keep records of delivery
// attempts (and deferrals without an attempt), so that an operator can ask "what happened
// to event X" by its id. It is one stream, <prefix>:{P}:trace:log, with one entry per
// few recorder pipelines: field "r", their records packed (TraceWriter; the format is in
// trace_format.go). A recorder packs records into one reused buffer and writes them with
// one plain XADD in the pipeline that already carries its outcomes once they are due
// (TraceFlushBytes, or the oldest TraceFlushAfter old; alone when idle): at most one extra
// command per pipeline, one append for many records, no script, no per-record key work.
//
// Bound: MAXLEN counts entries, so the writer asks for keep / (mean records per entry)
// entries, the mean a running average of its own pipelines: about keep records. Redis
// trims "~" by whole stream nodes (stream-node-max-entries 100, stream-node-max-bytes
// 4 KB by default), so the trace holds at most that many entries more than the MAXLEN; at
// a steady rate the records kept stay within keep plus one node. The events stream itself
// is never trimmed.
//
// Lookup (ReadTrace) reads the stream backwards in pages, skips entries not containing the
// id's bytes, and stops at the event's arrival record: a bounded scan of at most the
// trace's entries.

// TraceLogKey names the provider's trace stream (see above).
func (k Keys) TraceLogKey(provider string) string { return k.key(provider, "trace:log") }

// TraceReceived is what a trace keeps of an event's arrival.
type TraceReceived struct {
	// StreamID is the entry's id in the events stream when the record was written (it
	// changes when a retry is moved back).
	StreamID string
	// At is received_at, unix ms.
	At     int64
	Route  string
	Source string
}

// TraceRecord is one attempt (or one deferral without an attempt) of an event.
type TraceRecord struct {
	// At is when the attempt started (a deferral: when it was decided), unix ms.
	At int64
	// Attempt is the attempt's number, from 1 (a deferral: the attempts made before it).
	Attempt int
	// Outcome is "delivered", "retry", "deferred" or "dead".
	Outcome string
	// Status is the upstream's HTTP status, 0 when there was none (no reply, or a
	// delivery: adapters report success without its code).
	Status int
	// DurationMS is how long the upstream request took (the whole batch's request).
	DurationMS int64
	// Class sorts the error: timeout, 5xx, 429, 4xx, permanent, transport, deferred.
	Class string
	// DueAt is when a retry is due again (unix ms, this relay's clock).
	DueAt int64
	// Reason is a dead letter's reason.
	Reason string
	// Error is the error, shortened and redacted as in dead letters.
	Error string
	// Received is the event's arrival, on records written before its first attempt ended.
	Received *TraceReceived
}

// Trace outcomes.
const (
	TraceDelivered = "delivered"
	TraceRetry     = "retry"
	TraceDeferred  = "deferred"
	TraceDead      = "dead"
)

// TraceWriter packs the trace records of one recorder pipeline into a reused buffer and
// queues them as one XADD. It is not safe for concurrent use (one per recorder).
type TraceWriter struct {
	// Keys, Provider and Keep say where to write and about how many records to keep.
	Keys     Keys
	Provider string
	Keep     int

	buf   []byte
	enc   traceEncoder
	n     int
	first time.Time // when the oldest record packed was added
	mean  float64   // running mean of records per entry
}

// A recorder writes its packed records once they reach TraceFlushBytes or the oldest of
// them is TraceFlushAfter old (TraceWriter.Due): fewer, larger entries cost Redis less
// per record, and a record reaches the trace at most TraceFlushAfter after its outcome.
const (
	TraceFlushBytes = 16 << 10
	TraceFlushAfter = 100 * time.Millisecond
)

// Due says whether the packed records are to be written now.
func (w *TraceWriter) Due(now time.Time) bool {
	return w.n > 0 && (len(w.buf) >= TraceFlushBytes || now.Sub(w.first) >= TraceFlushAfter)
}

// Wait is how long until the packed records are due (0: due now or none packed).
func (w *TraceWriter) Wait(now time.Time) time.Duration {
	if w.n == 0 || len(w.buf) >= TraceFlushBytes {
		return 0
	}
	return max(TraceFlushAfter-now.Sub(w.first), 0)
}

// Reset empties the buffer for the next pipeline (after the previous one was sent: the
// queued XADD refers to the buffer until then).
func (w *TraceWriter) Reset() {
	if w.buf == nil {
		w.buf = make([]byte, 0, 4096)
	}
	w.buf, w.n = append(w.buf[:0], traceVersion), 0
	w.enc.reset()
}

// Len is how many records are packed.
func (w *TraceWriter) Len() int { return w.n }

// Add packs event id's record r (r.Received is used, not kept).
func (w *TraceWriter) Add(id string, r *TraceRecord) {
	if len(w.buf) == 0 {
		w.Reset()
	}
	if w.n == 0 {
		w.first = time.Now()
	}
	w.buf = w.enc.record(w.buf, id, r)
	w.n++
}

// MaxLen is the MAXLEN the next entry is written with: Keep over the running mean of
// records per entry (including the records packed now), at least 1.
func (w *TraceWriter) MaxLen() int64 {
	if w.mean == 0 {
		w.mean = float64(max(w.n, 1))
	} else {
		w.mean += (float64(max(w.n, 1)) - w.mean) / 16
	}
	return max(int64(math.Ceil(float64(w.Keep)/w.mean)), 1)
}

// Queue queues on pipe the XADD of the packed records; nil when there are none. The XADD
// refers to the buffer: Reset only after the pipeline ran. Its error is the caller's to
// log: a failed trace write never affects delivery.
func (w *TraceWriter) Queue(ctx context.Context, pipe redis.Pipeliner) *redis.StringCmd {
	if w.n == 0 {
		return nil
	}
	n := w.MaxLen()
	// "~" trims whole stream nodes (up to 100 entries): cheap, and at most 10% over from
	// 1000 entries up; a smaller trace is trimmed exactly (it is small, so that is cheap).
	return pipe.XAdd(ctx, &redis.XAddArgs{Stream: w.Keys.TraceLogKey(w.Provider), MaxLen: n, Approx: n >= 1000,
		ID: "*", Values: []any{"r", w.buf}})
}

// traceEntries calls fn with each entry of the trace's packed records, newest first, in
// pages, until fn returns false or the stream ends.
func traceEntries(ctx context.Context, c redis.Cmdable, keys Keys, provider string, fn func(sid string, packed []byte) bool) error {
	const page = 200 // entries of up to ~TraceFlushBytes each
	end := "+"
	for {
		msgs, err := c.XRevRangeN(ctx, keys.TraceLogKey(provider), end, "-", page).Result()
		if err != nil {
			return err
		}
		for _, m := range msgs {
			s, _ := m.Values["r"].(string)
			if !fn(m.ID, []byte(s)) {
				return nil
			}
		}
		if len(msgs) < page {
			return nil
		}
		end = "(" + msgs[len(msgs)-1].ID
	}
}

// Trace is one event's trace as stored.
type Trace struct {
	// Received is the arrival, from the earliest record that has it (nil: none kept).
	Received *TraceReceived
	// Records are in order: by attempt, a deferral after the attempt it followed.
	Records []TraceRecord
}

// ReadTrace reads the trace of event id: a backwards scan of the trace stream (entries
// without the id's bytes are skipped undecoded) that stops at the event's arrival record,
// so at most the trace's ~keep records. found is false when it has none (never attempted,
// or dropped by the bound). Repeated deferrals at one attempt count come back as one
// record, the newest.
func ReadTrace(ctx context.Context, c redis.Cmdable, keys Keys, provider, id string) (t Trace, found bool, err error) {
	type slot struct {
		n        int
		deferred bool
	}
	seen := map[slot]bool{}
	var recs []TraceRecord // newest first
	var derr error
	err = traceEntries(ctx, c, keys, provider, func(sid string, packed []byte) bool {
		if !mayHold(packed, id) {
			return true
		}
		var here []TraceRecord
		if e := decodeTrace(packed, id, func(r *TraceRecord) { here = append(here, *r) }); e != nil {
			derr = fmt.Errorf("queue: trace entry %s: %w", sid, e)
			return false
		}
		arrived := false
		for i := len(here) - 1; i >= 0; i-- { // newest first
			r := here[i]
			s := slot{r.Attempt, r.Outcome == TraceDeferred}
			if s.deferred && seen[s] {
				continue
			}
			seen[s] = true
			recs = append(recs, r)
			arrived = arrived || r.Received != nil
		}
		return !arrived // nothing older belongs to this event
	})
	if err = errors.Join(err, derr); err != nil {
		return Trace{}, false, err
	}
	slices.Reverse(recs) // oldest first
	slices.SortStableFunc(recs, func(a, b TraceRecord) int {
		if a.Attempt != b.Attempt {
			return a.Attempt - b.Attempt
		}
		return boolInt(a.Outcome == TraceDeferred) - boolInt(b.Outcome == TraceDeferred)
	})
	for i := range recs {
		if t.Received == nil {
			t.Received = recs[i].Received
		}
		recs[i].Received = nil
	}
	t.Records = recs
	return t, len(recs) > 0, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Pending is a pending entry's place in the consumer group.
type Pending struct {
	Consumer   string
	Idle       time.Duration
	Deliveries int64
}

// Queued is an entry found in the events stream.
type Queued struct {
	Entry *Entry
	// Pending is set when a consumer holds the entry (in flight).
	Pending *Pending
}

// FindQueued looks for event id in provider's events stream among its newest scan
// entries (a bounded scan, newest first: an event still queued is usually recent), and
// reports whether a consumer holds it.
func FindQueued(ctx context.Context, c redis.Cmdable, keys Keys, provider, id string, scan int) (Queued, bool, error) {
	const page = 500
	stream := keys.Events(provider)
	end := "+"
	for seen := 0; seen < scan; {
		msgs, err := c.XRevRangeN(ctx, stream, end, "-", int64(min(page, scan-seen))).Result()
		if err != nil {
			return Queued{}, false, err
		}
		for _, m := range msgs {
			e := DecodeEntry(provider, m.ID, m.Values)
			if e.Bad != nil || e.Message.ID != id {
				continue
			}
			q := Queued{Entry: e}
			p, err := c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: Group, Start: m.ID, End: m.ID, Count: 1}).Result()
			if err != nil && !IsNoGroup(err) {
				return Queued{}, false, err
			}
			if len(p) == 1 {
				q.Pending = &Pending{Consumer: p[0].Consumer, Idle: p[0].Idle, Deliveries: p[0].RetryCount}
			}
			return q, true, nil
		}
		seen += len(msgs)
		if len(msgs) < page {
			break
		}
		end = "(" + msgs[len(msgs)-1].ID
	}
	return Queued{}, false, nil
}

// TraceUsage is the memory Redis reports for provider's trace stream (MEMORY USAGE,
// SAMPLES 0: every element counted) and the records it holds (read through).
func TraceUsage(ctx context.Context, c redis.Cmdable, keys Keys, provider string) (bytes, records int64, err error) {
	bytes, err = c.MemoryUsage(ctx, keys.TraceLogKey(provider), 0).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, err
	}
	var derr error
	err = traceEntries(ctx, c, keys, provider, func(sid string, packed []byte) bool {
		if e := decodeTrace(packed, "", func(*TraceRecord) { records++ }); e != nil {
			derr = fmt.Errorf("queue: trace entry %s: %w", sid, e)
			return false
		}
		return true
	})
	return bytes, records, errors.Join(err, derr)
}
