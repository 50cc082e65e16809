package queue

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/delivery"
)

// A dead letter is an entry of a provider's dead-letter stream: the event as its envelope
// without trailer (FieldEnvelope; for an entry that could not be decoded, the fields it
// had as they were, none for a trimmed one), then attempts, status, error, reason,
// dead_at (unix ms) and stream_id (the entry's id in the events stream). Dead letters of
// earlier relays hold the nine ingest fields instead of the envelope.

// Dead-letter reasons (FieldReason).
const (
	// DeadPermanent: the upstream refused the event for good (a 4xx).
	DeadPermanent = "permanent"
	// DeadMaxAttempts: out of attempts.
	DeadMaxAttempts = "max_attempts"
	// DeadMaxAge: older than max_age before it could be delivered.
	DeadMaxAge = "max_age"
	// DeadTrimmed: the entry was deleted while pending; only its id is left.
	DeadTrimmed = "trimmed"
	// DeadMalformed: a required field is missing or bad.
	DeadMalformed = "malformed"
)

// deadLetterPairs are the fields of e's dead letter for o, written at now.
func deadLetterPairs(e *Entry, o Outcome, now time.Time) []string {
	return e.ingestPairs(FieldAttempts, strconv.Itoa(o.Attempts), FieldStatus, strconv.Itoa(o.Status),
		FieldError, o.Error, FieldReason, o.Reason, FieldDeadAt, strconv.FormatInt(now.UnixMilli(), 10),
		FieldStreamID, e.StreamID)
}

// DeadLetter is a dead letter decoded.
type DeadLetter struct {
	// StreamID is its id in the dead-letter stream.
	StreamID string
	// Message is what is left of the event: all of it but for a trimmed entry, which has
	// nothing (and a malformed one, which may lack fields). A zero ReceivedAt is unknown.
	Message delivery.Message
	// EventsStreamID is the id the event had in the events stream.
	EventsStreamID string
	// Reason is DeadPermanent, DeadMaxAttempts, ...
	Reason string
	// Status is the last HTTP status (0: no reply), Attempts the attempts made, Error
	// the last error.
	Status, Attempts int
	Error            string
	// DeadAt is when it was dead-lettered; zero when unknown.
	DeadAt time.Time
	// Replayable reports that it holds the event (an envelope, or the required fields of
	// earlier relays): what ReplayDead needs to replay it rather than skip it.
	Replayable bool
}

// DecodeDeadLetter decodes an entry of provider's dead-letter stream, in either format;
// it reads what there is, never failing.
func DecodeDeadLetter(provider string, m redis.XMessage) DeadLetter {
	v := m.Values
	var msg delivery.Message
	if s, ok := v[FieldEnvelope].(string); ok {
		if env, err := decodeEnvelope(provider, s); err == nil {
			msg = env.msg
		}
	} else {
		msg, _ = readMessage(provider, v) // a field of the wrong shape: show the rest
	}
	d := DeadLetter{
		StreamID: m.ID, Message: msg,
		Reason: stringField(v, FieldReason),
		Status: intField(v, FieldStatus), Attempts: intField(v, FieldAttempts),
		Error: stringField(v, FieldError), EventsStreamID: stringField(v, FieldStreamID),
	}
	if ms, err := strconv.ParseInt(stringField(v, FieldDeadAt), 10, 64); err == nil {
		d.DeadAt = time.UnixMilli(ms)
	}
	_, d.Replayable = v[FieldEnvelope]
	if !d.Replayable {
		d.Replayable = true
		for _, name := range entryFields[:requiredFields] {
			if _, ok := v[name]; !ok {
				d.Replayable = false
			}
		}
	}
	return d
}

func stringField(values map[string]any, name string) string {
	s, _ := values[name].(string)
	return s
}

// ListDead returns the length of provider's dead-letter stream and its newest limit
// entries, newest first, in one round trip.
func ListDead(ctx context.Context, c redis.Cmdable, keys Keys, provider string, limit int) (total int64, dead []DeadLetter, err error) {
	key := keys.Dead(provider)
	var (
		n    *redis.IntCmd
		list *redis.XMessageSliceCmd
	)
	if _, err := c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		n = pipe.XLen(ctx, key)
		list = pipe.XRevRangeN(ctx, key, "+", "-", int64(limit))
		return nil
	}); err != nil {
		return 0, nil, err
	}
	dead = make([]DeadLetter, 0, len(list.Val()))
	for _, m := range list.Val() {
		dead = append(dead, DecodeDeadLetter(provider, m))
	}
	return n.Val(), dead, nil
}

// GetDead returns the dead letter streamID of provider, false when there is none.
func GetDead(ctx context.Context, c redis.Cmdable, keys Keys, provider, streamID string) (DeadLetter, bool, error) {
	msgs, err := c.XRangeN(ctx, keys.Dead(provider), streamID, streamID, 1).Result()
	if err != nil || len(msgs) == 0 {
		return DeadLetter{}, false, err
	}
	return DecodeDeadLetter(provider, msgs[0]), true, nil
}

// NewestDeadID is the id of provider's newest dead letter, "" when there is none.
func NewestDeadID(ctx context.Context, c redis.Cmdable, keys Keys, provider string) (string, error) {
	newest, err := c.XRevRangeN(ctx, keys.Dead(provider), "+", "-", 1).Result()
	if err != nil || len(newest) == 0 {
		return "", err
	}
	return newest[0].ID, nil
}

// DeadIDs returns the ids of up to n of provider's dead letters after the id after
// (exclusive; "" from the first) up to until (inclusive), oldest first.
func DeadIDs(ctx context.Context, c redis.Cmdable, keys Keys, provider, after, until string, n int) ([]string, error) {
	start := "-"
	if after != "" {
		start = "(" + after
	}
	page, err := c.XRangeN(ctx, keys.Dead(provider), start, until, int64(n)).Result()
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(page))
	for i, m := range page {
		ids[i] = m.ID
	}
	return ids, nil
}

// PurgeDead deletes provider's whole dead-letter stream in one step and returns how many
// entries it had.
func PurgeDead(ctx context.Context, c redis.Cmdable, keys Keys, provider string) (int64, error) {
	return purgeDeadScript.Run(ctx, c, []string{keys.Dead(provider)}).Int64()
}

// DeleteDead deletes the dead letters ids of provider and returns how many there were.
func DeleteDead(ctx context.Context, c redis.Cmdable, keys Keys, provider string, ids []string) (int64, error) {
	return c.XDel(ctx, keys.Dead(provider), ids...).Result()
}

// Replayed counts what ReplayDead did.
type Replayed struct {
	// Replayed were appended to the events stream and deleted from the dead letters.
	Replayed int64
	// Missing were gone already (replaying twice never duplicates an event).
	Missing int64
	// Skipped lack the event's data (trimmed): they cannot be delivered and stay.
	Skipped int64
}

// Results of replayScript.
const (
	replayMissing = 0
	replayDone    = 1
	replaySkipped = -1
)

// ReplayDead replays provider's dead letters ids, each atomically (replayScript), in one
// pipeline: the event goes back to the events stream as it was ingested, so its attempts
// start again from zero, and the dead letter is deleted.
func ReplayDead(ctx context.Context, c redis.Cmdable, keys Keys, provider string, ids []string) (Replayed, error) {
	var out Replayed
	// Load once so the pipelined EVALSHAs find the script (NOSCRIPT is handled below too,
	// for a Redis restarted in between).
	if err := replayScript.Load(ctx, c).Err(); err != nil {
		return out, err
	}
	k := []string{keys.Dead(provider), keys.Events(provider)}
	args := func(id string) []any { return append([]any{id, requiredFields}, replayFields[:]...) }
	cmds := make([]*redis.Cmd, len(ids))
	_, _ = c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = replayScript.EvalSha(ctx, pipe, k, args(id)...)
		}
		return nil
	}) // errors are per command, read below
	for i, cmd := range cmds {
		n, err := cmd.Int64()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			n, err = replayScript.Run(ctx, c, k, args(ids[i])...).Int64()
		}
		if err != nil {
			return out, err
		}
		switch n {
		case replayDone:
			out.Replayed++
		case replayMissing:
			out.Missing++
		case replaySkipped:
			out.Skipped++
		}
	}
	return out, nil
}

// replayFields are entryFields as replayScript's arguments: the fields a replay carries
// back from a dead letter of earlier relays, the first requiredFields of them required.
var replayFields = [numFields]any{
	FieldID, FieldRoute, FieldBody, FieldAt, FieldIP, FieldUA, FieldCountry, FieldCustomer, FieldSource,
}
