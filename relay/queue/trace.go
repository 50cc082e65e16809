package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The delivery trace keeps, per provider, the last trace.keep records of delivery
// attempts (and deferrals without an attempt), so that an operator can ask "what happened
// to event X" by its id:
//
//   - <prefix>:{P}:trace (hash): one field per record, "<event id>#<attempt>" for an
//     attempt and "<event id>#<attempts so far>d" for a deferral, whose value is the
//     record's JSON (TraceRecord; the event's arrival rides on the records made before its
//     first attempt ended). An event's records are found with one HMGET of its possible
//     fields (attempts 0 to TraceMaxAttempts): O(1) each, no scan.
//   - <prefix>:{P}:trace:order (list): the fields, newest first. It is what bounds the
//     hash: traceScript trims it to trace.keep items exactly and deletes the hash fields it
//     pops, so neither holds more than trace.keep records whatever the rate. (Repeated
//     deferrals at one attempt count share a field: the field goes when the oldest of them
//     leaves the list.)
//
// The records of one recorder pipeline are written by one script call in that pipeline
// (HSET, LPUSH, LLEN, and when full RPOP and HDEL, each once for all of them): never more
// than one extra Redis call per attempt, and a few per pipeline. The events stream itself
// is never trimmed.

// TraceKey and TraceOrderKey name the provider's trace keys (see above).
func (k Keys) TraceKey(provider string) string      { return k.key(provider, "trace") }
func (k Keys) TraceOrderKey(provider string) string { return k.key(provider, "trace:order") }

// TraceMaxAttempts is the highest attempt number ReadTrace looks for.
const TraceMaxAttempts = 100

// TraceReceived is what a trace keeps of an event's arrival.
type TraceReceived struct {
	// StreamID is the entry's id in the events stream when the record was written (it
	// changes when a retry is moved back).
	StreamID string `json:"sid,omitempty"`
	// At is received_at, unix ms.
	At     int64  `json:"at"`
	Route  string `json:"route,omitempty"`
	Source string `json:"src,omitempty"`
}

// TraceRecord is one attempt (or one deferral without an attempt) of an event.
type TraceRecord struct {
	// At is when the attempt started (a deferral: when it was decided), unix ms.
	At int64 `json:"at"`
	// Attempt is the attempt's number, from 1 (a deferral: the attempts made before it).
	Attempt int `json:"n"`
	// Outcome is "delivered", "retry", "deferred" or "dead".
	Outcome string `json:"o"`
	// Status is the upstream's HTTP status, 0 when there was none (no reply, or a
	// delivery: adapters report success without its code).
	Status int `json:"s,omitempty"`
	// DurationMS is how long the upstream request took (the whole batch's request).
	DurationMS int64 `json:"d,omitempty"`
	// Class sorts the error: timeout, 5xx, 429, 4xx, permanent, transport, deferred.
	Class string `json:"c,omitempty"`
	// DueAt is when a retry is due again (unix ms, this relay's clock).
	DueAt int64 `json:"due,omitempty"`
	// Reason is a dead letter's reason.
	Reason string `json:"r,omitempty"`
	// Error is the error, shortened and redacted as in dead letters.
	Error string `json:"e,omitempty"`
	// Received is the event's arrival, on records written before its first attempt ended.
	Received *TraceReceived `json:"rcv,omitempty"`
}

// Trace outcomes.
const (
	TraceDelivered = "delivered"
	TraceRetry     = "retry"
	TraceDeferred  = "deferred"
	TraceDead      = "dead"
)

// TraceWrite is one record to write for the event ID.
type TraceWrite struct {
	ID     string
	Record TraceRecord
}

// traceField is the hash field of an event's record.
func traceField(id string, attempt int, deferred bool) string {
	f := id + "#" + strconv.Itoa(attempt)
	if deferred {
		f += "d"
	}
	return f
}

// traceScript writes records and trims the trace to its bound. KEYS: trace hash, order
// list (one {provider} slot). ARGV: keep, then per record its field and value. Returns
// how many records it dropped.
var traceScript = redis.NewScript(`
local hs, fs = {}, {}
for i = 2, #ARGV, 2 do
  hs[#hs + 1] = ARGV[i]
  hs[#hs + 1] = ARGV[i + 1]
  fs[#fs + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], unpack(hs))
redis.call('LPUSH', KEYS[2], unpack(fs))
local over = redis.call('LLEN', KEYS[2]) - tonumber(ARGV[1])
if over > 0 then
  local old = redis.call('RPOP', KEYS[2], over)
  redis.call('HDEL', KEYS[1], unpack(old))
  return over
end
return 0
`)

// WriteTrace queues on pipe the one traceScript call that writes writes (at least one)
// to provider's trace, keeping its last keep records. Its error is the caller's to log:
// a failed trace write never affects delivery. The call is EVALSHA: after a NOSCRIPT
// reply, RunTrace.
func WriteTrace(ctx context.Context, pipe redis.Pipeliner, keys Keys, provider string, keep int, writes []TraceWrite) *redis.Cmd {
	k, args := traceArgs(keys, provider, keep, writes)
	return traceScript.EvalSha(ctx, pipe, k, args...)
}

// RunTrace is WriteTrace as one call of its own, loading the script if need be: for a
// pipeline's trace call that found the script missing.
func RunTrace(ctx context.Context, c redis.Scripter, keys Keys, provider string, keep int, writes []TraceWrite) error {
	k, args := traceArgs(keys, provider, keep, writes)
	return traceScript.Run(ctx, c, k, args...).Err()
}

func traceArgs(keys Keys, provider string, keep int, writes []TraceWrite) ([]string, []any) {
	args := make([]any, 1, 1+2*len(writes))
	args[0] = keep
	for _, w := range writes {
		rec, _ := json.Marshal(w.Record) // plain struct: cannot fail
		args = append(args, traceField(w.ID, w.Record.Attempt, w.Record.Outcome == TraceDeferred), string(rec))
	}
	return []string{keys.TraceKey(provider), keys.TraceOrderKey(provider)}, args
}

// Trace is one event's trace as stored.
type Trace struct {
	// Received is the arrival, from the earliest record that has it (nil: none kept).
	Received *TraceReceived
	// Records are in order: by attempt, a deferral after the attempt it followed.
	Records []TraceRecord
}

// ReadTrace reads the trace of event id with one HMGET; found is false when it has none
// (never attempted, or dropped by the bound).
func ReadTrace(ctx context.Context, c redis.Cmdable, keys Keys, provider, id string) (t Trace, found bool, err error) {
	fields := make([]string, 0, 2*(TraceMaxAttempts+1))
	for n := 0; n <= TraceMaxAttempts; n++ {
		fields = append(fields, traceField(id, n, false), traceField(id, n, true))
	}
	vals, err := c.HMGet(ctx, keys.TraceKey(provider), fields...).Result()
	if err != nil {
		return Trace{}, false, err
	}
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		var r TraceRecord
		if err := json.Unmarshal([]byte(s), &r); err != nil {
			return Trace{}, false, fmt.Errorf("queue: trace record %s: %w", fields[i], err)
		}
		if t.Received == nil {
			t.Received = r.Received
		}
		r.Received = nil
		t.Records = append(t.Records, r)
	}
	return t, len(t.Records) > 0, nil
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

// TraceUsage is the memory Redis reports for provider's trace keys (MEMORY USAGE,
// SAMPLES 0: every element counted) and the records the hash holds.
func TraceUsage(ctx context.Context, c redis.Cmdable, keys Keys, provider string) (bytes, records int64, err error) {
	for _, k := range []string{keys.TraceKey(provider), keys.TraceOrderKey(provider)} {
		n, err := c.MemoryUsage(ctx, k, 0).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return 0, 0, err
		}
		bytes += n
	}
	records, err = c.HLen(ctx, keys.TraceKey(provider)).Result()
	return bytes, records, err
}
