package queue

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Fields of a provider's per-minute stats hash (Keys.Stats), counted by the outcome
// scripts: the deployment's deliveries, retries and dead letters in that minute.
const (
	StatDelivered = "delivered"
	StatRetried   = "retried"
	StatDead      = "dead"
)

// Kind is an outcome other than a delivery (AckDelivered writes those).
type Kind string

// Outcome kinds, as recordScript takes them.
const (
	// KindRetry puts the entry into the retry set, due after Outcome.Delay.
	KindRetry Kind = "retry"
	// KindDead appends the entry to the dead-letter stream.
	KindDead Kind = "dead"
	// KindLost dead-letters an entry that is no longer pending (its data was deleted,
	// see LostEntry): gated on a marker rather than on the pending list.
	KindLost Kind = "lost"
)

// Outcome is what RecordOutcome writes for one entry.
type Outcome struct {
	Kind Kind
	// Reason is a dead letter's reason: DeadPermanent, DeadMaxAttempts, ...
	Reason string
	// Attempts is the attempts made so far, Status the last HTTP status (0: no reply)
	// and Error the last error, already shortened and free of secrets.
	Attempts, Status int
	Error            string
	// Delay is a retry's wait before it is due again.
	Delay time.Duration
	// Counted adds the outcome to this minute's stats (StatRetried or StatDead); a
	// deferral that made no attempt is not counted.
	Counted bool
}

// RecordOutcome queues on pipe the recordScript call that writes o for e, an entry
// pending under owner ("" for KindLost), and returns its command: after Exec, Applied
// reads 1 (written) or 0 (another consumer took the entry over or settled it; nothing
// written). The call is EVALSHA: after a NOSCRIPT reply, LoadScripts and redo it.
func RecordOutcome(ctx context.Context, pipe redis.Pipeliner, keys Keys, provider string, e *Entry, owner string, o Outcome) (*redis.Cmd, error) {
	counter := ""
	if o.Counted {
		counter = StatDead
		if o.Kind == KindRetry {
			counter = StatRetried
		}
	}
	args := []any{Group, e.StreamID, string(o.Kind), o.Delay.Milliseconds(), counter, owner}
	switch o.Kind {
	case KindRetry:
		if e.ingest == "" {
			return nil, fmt.Errorf("queue: entry %s cannot be retried: %w", e.StreamID, e.Bad)
		}
		args = append(args, retryMember(e, o.Attempts, o.Status, o.Error))
	case KindDead, KindLost:
		for _, v := range deadLetterPairs(e, o, time.Now()) {
			args = append(args, v)
		}
	}
	k := []string{keys.Events(provider), keys.Retry(provider), keys.Dead(provider), keys.StatsPrefix(provider),
		keys.Lost(provider, e.StreamID)}
	return recordScript.EvalSha(ctx, pipe, k, args...), nil
}

// ackRangeLimit caps the pending entries ackScript's one XPENDING lists: far more than
// one relay's entries in hand, which lie in the range of one batch's ids.
const ackRangeLimit = 10000

// AckDelivered queues on pipe the ackScript call that records the delivery of the
// entries streamIDs (at least one), pending under owner: acked, deleted and counted. After
// Exec, Applied reads one 1 (recorded) or 0 (taken over or settled by another consumer)
// per id, in order. The call is EVALSHA: after a NOSCRIPT reply, LoadScripts and redo it.
func AckDelivered(ctx context.Context, pipe redis.Pipeliner, keys Keys, provider, owner string, streamIDs []string) *redis.Cmd {
	return ackDelivered(ctx, pipe, keys, provider, owner, streamIDs, ackRangeLimit)
}

func ackDelivered(ctx context.Context, pipe redis.Pipeliner, keys Keys, provider, owner string, streamIDs []string, limit int) *redis.Cmd {
	lo, hi := streamIDs[0], streamIDs[0]
	args := make([]any, 5, 5+len(streamIDs))
	for _, id := range streamIDs {
		if streamIDLess(id, lo) {
			lo = id
		}
		if streamIDLess(hi, id) {
			hi = id
		}
		args = append(args, id)
	}
	args[0], args[1], args[2], args[3], args[4] = Group, owner, lo, hi, limit
	return ackScript.EvalSha(ctx, pipe, []string{keys.Events(provider), keys.StatsPrefix(provider)}, args...)
}

// Applied reads the reply of a RecordOutcome (one result) or AckDelivered (one per id)
// call: 1 applied, 0 not.
func Applied(cmd *redis.Cmd) ([]int64, error) {
	if n, err := cmd.Int64(); err == nil {
		return []int64{n}, nil
	}
	return cmd.Int64Slice()
}

// LoadScripts loads the scripts RecordOutcome and AckDelivered call by hash, after Redis
// answered NOSCRIPT (its script cache is empty after a restart or SCRIPT FLUSH).
func LoadScripts(ctx context.Context, c redis.Scripter) error {
	for _, s := range []*redis.Script{recordScript, ackScript} {
		if err := s.Load(ctx, c).Err(); err != nil {
			return err
		}
	}
	return nil
}

// MoveDue moves up to limit retries of provider that are due (by Redis's clock) back into
// its events stream, atomically, and returns how many it moved. Concurrent callers never
// move a retry twice.
func MoveDue(ctx context.Context, c redis.Scripter, keys Keys, provider string, limit int) (int, error) {
	return moveScript.Run(ctx, c, []string{keys.Retry(provider), keys.Events(provider)}, limit).Int()
}

// TakeSlots takes up to n consecutive request slots of provider's deployment-wide rate
// limit, those starting within window from now (by Redis's clock), spaced interval µs
// apart. It returns how many it got, and the time from now to the first granted slot and
// to the next free one (with none granted: when to ask again).
func TakeSlots(ctx context.Context, c redis.Scripter, keys Keys, provider string, interval float64, n int, window time.Duration) (granted int, first, next time.Duration, err error) {
	res, err := slotsScript.Run(ctx, c, []string{keys.Rate(provider)}, interval, n, window.Microseconds()).Int64Slice()
	if err == nil && len(res) != 3 {
		err = fmt.Errorf("queue: the slots script answered %d numbers, not 3 (a relay bug)", len(res))
	}
	if err != nil {
		return 0, 0, 0, err
	}
	return int(res[0]), time.Duration(res[1]) * time.Microsecond, time.Duration(res[2]) * time.Microsecond, nil
}

// streamIDLess orders stream ids ("<ms>-<seq>") as Redis does.
func streamIDLess(a, b string) bool {
	ams, aseq := splitStreamID(a)
	bms, bseq := splitStreamID(b)
	return ams < bms || ams == bms && aseq < bseq
}

func splitStreamID(id string) (ms, seq uint64) {
	l, r, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(l, 10, 64)
	seq, _ = strconv.ParseUint(r, 10, 64)
	return ms, seq
}
