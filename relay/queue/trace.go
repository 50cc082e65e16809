package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The delivery trace keeps, per provider, what happened to its last trace.keep traced
// attempts' events, so that an operator can ask "what happened to event X" by its id:
//
//   - <prefix>:{P}:trace (hash): event id → "<seq>\n<received JSON>\n<attempt JSON>\n...",
//     one line per attempt or deferral (TraceRecord), oldest first. HGET finds an event
//     in O(1).
//   - <prefix>:{P}:trace:order (list): "<seq> <event id>", one item per record, newest
//     first. It is what bounds the hash: traceScript trims it to trace.keep items
//     exactly, and an item popped off its tail deletes its event's hash field when that
//     field's last record is that item (same seq); an event with newer records stays.
//     So the hash never holds more than trace.keep events, nor the list more than
//     trace.keep items, whatever the rate.
//   - <prefix>:{P}:trace:seq (string): the counter that numbers records.
//
// A record is written by the forwarder's recorder in the same pipeline as the outcome it
// describes: one EVALSHA per pipeline and provider, however many records, so never more
// than one extra Redis write per attempt. The events stream itself is never trimmed.

// TraceKey, TraceOrderKey and TraceSeqKey name the provider's trace keys (see above).
func (k Keys) TraceKey(provider string) string      { return k.key(provider, "trace") }
func (k Keys) TraceOrderKey(provider string) string { return k.key(provider, "trace:order") }
func (k Keys) TraceSeqKey(provider string) string   { return k.key(provider, "trace:seq") }

// TraceReceived is what a trace keeps of an event's arrival, written with its first record.
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
	// Attempt is the attempt's number, from 1 (a deferral repeats the last one's).
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
	ID       string
	Received TraceReceived
	Record   TraceRecord
}

// traceScript appends records to events' traces and trims the trace to its bound. KEYS:
// trace hash, order list, seq counter (one {provider} slot). ARGV: keep, then per record
// its event id, received JSON (used only when the event has no trace yet) and record
// JSON. Returns how many events it dropped.
var traceScript = redis.NewScript(`
local keep = tonumber(ARGV[1])
local seq = redis.call('INCRBY', KEYS[3], (#ARGV - 1) / 3) - (#ARGV - 1) / 3
for i = 2, #ARGV, 3 do
  local id = ARGV[i]
  seq = seq + 1
  local cur = redis.call('HGET', KEYS[1], id)
  local body
  if cur then
    local nl = string.find(cur, '\n', 1, true)
    body = string.sub(cur, nl + 1) .. '\n' .. ARGV[i + 2]
  else
    body = ARGV[i + 1] .. '\n' .. ARGV[i + 2]
  end
  redis.call('HSET', KEYS[1], id, seq .. '\n' .. body)
  redis.call('LPUSH', KEYS[2], seq .. ' ' .. id)
end
local dropped = 0
local over = redis.call('LLEN', KEYS[2]) - keep
for _ = 1, over do
  local item = redis.call('RPOP', KEYS[2])
  local sp = string.find(item, ' ', 1, true)
  local id = string.sub(item, sp + 1)
  local cur = redis.call('HGET', KEYS[1], id)
  if cur and string.sub(cur, 1, sp) == string.sub(item, 1, sp - 1) .. '\n' then
    redis.call('HDEL', KEYS[1], id)
    dropped = dropped + 1
  end
end
return dropped
`)

// WriteTrace queues on pipe the one traceScript call that appends writes (at least one)
// to provider's trace, keeping its last keep records. Its error is the caller's to log:
// a failed trace write never affects delivery. The call is EVALSHA: after a NOSCRIPT
// reply, LoadTraceScript.
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
	args := make([]any, 1, 1+3*len(writes))
	args[0] = keep
	for _, w := range writes {
		rcv, _ := json.Marshal(w.Received) // plain struct: cannot fail
		rec, _ := json.Marshal(w.Record)
		args = append(args, w.ID, string(rcv), string(rec))
	}
	return []string{keys.TraceKey(provider), keys.TraceOrderKey(provider), keys.TraceSeqKey(provider)}, args
}

// Trace is one event's trace as stored.
type Trace struct {
	Received TraceReceived
	Records  []TraceRecord
}

// ReadTrace reads the trace of event id; found is false when it has none (never
// attempted, or dropped by the bound).
func ReadTrace(ctx context.Context, c redis.Cmdable, keys Keys, provider, id string) (t Trace, found bool, err error) {
	v, err := c.HGet(ctx, keys.TraceKey(provider), id).Result()
	if errors.Is(err, redis.Nil) {
		return Trace{}, false, nil
	}
	if err != nil {
		return Trace{}, false, err
	}
	lines := strings.Split(v, "\n")
	if len(lines) < 2 {
		return Trace{}, false, fmt.Errorf("queue: trace of %q has %d lines", id, len(lines))
	}
	if err := json.Unmarshal([]byte(lines[1]), &t.Received); err != nil {
		return Trace{}, false, fmt.Errorf("queue: trace of %q: %w", id, err)
	}
	for _, l := range lines[2:] {
		var r TraceRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			return Trace{}, false, fmt.Errorf("queue: trace of %q: %w", id, err)
		}
		t.Records = append(t.Records, r)
	}
	return t, true, nil
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
// SAMPLES 0: every element counted) and the events the hash holds.
func TraceUsage(ctx context.Context, c redis.Cmdable, keys Keys, provider string) (bytes, events int64, err error) {
	for _, k := range []string{keys.TraceKey(provider), keys.TraceOrderKey(provider), keys.TraceSeqKey(provider)} {
		n, err := c.MemoryUsage(ctx, k, 0).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return 0, 0, err
		}
		bytes += n
	}
	events, err = c.HLen(ctx, keys.TraceKey(provider)).Result()
	return bytes, events, err
}

// FormatStreamMS is the arrival time a stream id holds (its ms part), or zero.
func FormatStreamMS(streamID string) time.Time {
	ms, _, _ := strings.Cut(streamID, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n)
}
