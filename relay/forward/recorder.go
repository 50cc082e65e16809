package forward

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/relay/queue"
)

const (
	// recordQueue bounds the outcomes waiting for the recorder; producers wait when full.
	recordQueue = 1024
	// maxRecordBatch caps the outcomes one pipeline writes.
	maxRecordBatch = 256
	// recordTries is the fewest tries of an outcome against Redis before it is left to
	// a later reclaim (the entry stays pending: redelivered later, never lost); see write.
	recordTries = 3
	// ackRangeLimit caps the pending entries ackScript's one XPENDING lists: far more
	// than one relay's entries in hand, which lie in the range of one batch's ids.
	ackRangeLimit = 10000
)

// record is one entry's outcome, waiting to be written.
type record struct {
	e *entry
	o outcome
}

// record hands e's outcome to the recorder. The entry stays pending until it is written.
func (f *Forwarder) record(e *entry, o outcome) { f.records <- record{e: e, o: o} }

// recorder writes outcomes until Run closes the queue: it takes one, drains what else is
// waiting, and writes them as one pipeline, all deliveries in one script call. Outcomes
// of attempts already made must be written even while shutting down, so it does not
// watch Run's context.
func (f *Forwarder) recorder() {
	batch := make([]record, 0, maxRecordBatch)
	for r := range f.records {
		batch = append(batch[:0], r)
	fill:
		for len(batch) < maxRecordBatch {
			select {
			case r, ok := <-f.records:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		f.write(batch)
		clear(batch)
	}
}

// write records batch in Redis, retrying what failed, then counts and logs each outcome.
func (f *Forwarder) write(batch []record) {
	applied := make([]int64, len(batch))
	errs := make([]error, len(batch))
	todo := make([]int, len(batch)) // indexes in batch not yet written
	for i := range todo {
		todo[i] = i
	}
	// An outcome not written leaves its entry pending, to be sent again after the
	// visibility timeout: a duplicate for a delivery. So while running, keep trying for
	// half of it; once shutdown's grace is over, recordTries times.
	deadline := time.Now().Add(f.o.Visibility / 2)
	for try := 0; len(todo) > 0; try++ {
		if try >= recordTries && (f.attempts.Err() != nil || time.Now().After(deadline)) {
			break
		}
		if try > 0 {
			time.Sleep(min(time.Duration(try)*200*time.Millisecond, 2*time.Second))
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(f.attempts), 2*time.Second)
		todo = f.writeOnce(ctx, batch, todo, applied, errs)
		cancel()
	}
	for i, r := range batch {
		switch {
		case errs[i] != nil:
			f.log.Error("could not record an outcome: the entry stays pending and will be redelivered",
				zap.String("event_id", r.e.msg.ID), zap.String("outcome", r.o.kind), zap.Error(errs[i]))
		case applied[i] == 0:
			// Another consumer took the entry over (and may have settled it): its
			// outcome, not this one, counts. One outcome per entry.
			f.log.Info("outcome not recorded: the entry was taken over or settled by another consumer",
				zap.String("event_id", r.e.msg.ID), zap.String("stream_id", r.e.streamID))
		default:
			f.count(r.o)
			if r.o.kind == kindDead || r.o.kind == kindLost {
				f.log.Warn("dead-lettered", zap.String("event_id", r.e.msg.ID), zap.String("reason", r.o.reason),
					zap.Int("status", r.o.status), zap.Int("attempts", r.o.attempts),
					zap.String("error", maskEmails(errorText(r.o))))
			}
		}
	}
}

// writeOnce sends one pipeline for the records at todo: one ackScript call per owner
// for the deliveries, one recordScript call per other outcome. It fills applied and errs
// and returns the indexes to try again. A NOSCRIPT reply ran nothing, so the script is
// loaded and the call redone.
func (f *Forwarder) writeOnce(ctx context.Context, batch []record, todo []int, applied []int64, errs []error) []int {
	pipe := f.o.Client.Pipeline()
	cmds := map[*redis.Cmd][]int{} // each call → the indexes of its records, in its order
	acks := map[string][]int{}     // owner → indexes of its deliveries
	for _, i := range todo {
		r := batch[i]
		if r.o.kind == kindOK {
			acks[r.e.owner] = append(acks[r.e.owner], i)
			continue
		}
		args, err := f.recordArgs(r)
		if err != nil {
			errs[i] = err
			continue
		}
		cmds[recordScript.EvalSha(ctx, pipe, f.recordKeys(r.e.streamID), args...)] = []int{i}
	}
	for owner, idx := range acks {
		lo, hi := batch[idx[0]].e.streamID, batch[idx[0]].e.streamID
		args := make([]any, 5, 5+len(idx))
		for _, i := range idx {
			id := batch[i].e.streamID
			if streamIDLess(id, lo) {
				lo = id
			}
			if streamIDLess(hi, id) {
				hi = id
			}
			args = append(args, id)
		}
		args[0], args[1], args[2], args[3], args[4] = queue.Group, owner, lo, hi, ackRangeLimit
		cmds[ackScript.EvalSha(ctx, pipe, []string{f.events, f.o.Keys.StatsPrefix(f.provider)}, args...)] = idx
	}
	if pipe.Len() == 0 {
		return nil
	}
	_, _ = pipe.Exec(ctx) // per-command errors are read below

	var again []int
	noScript := false
	for cmd, idx := range cmds {
		res, err := replyInts(cmd)
		for k, i := range idx {
			switch {
			case err != nil:
				errs[i] = err
				again = append(again, i)
				noScript = noScript || redis.HasErrorPrefix(err, "NOSCRIPT")
			case k < len(res):
				applied[i], errs[i] = res[k], nil
			}
		}
	}
	if noScript {
		for _, s := range []*redis.Script{recordScript, ackScript} {
			_ = s.Load(ctx, f.o.Client).Err()
		}
	}
	return again
}

// replyInts reads a script's reply: one integer (recordScript) or a list of them
// (ackScript).
func replyInts(cmd *redis.Cmd) ([]int64, error) {
	if n, err := cmd.Int64(); err == nil {
		return []int64{n}, nil
	}
	return cmd.Int64Slice()
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

// recordKeys are recordScript's KEYS for the entry streamID.
func (f *Forwarder) recordKeys(streamID string) []string {
	return []string{f.events, f.retry, f.dead, f.o.Keys.StatsPrefix(f.provider), f.o.Keys.Lost(f.provider, streamID)}
}

// recordArgs are recordScript's ARGV for one outcome other than a delivery.
func (f *Forwarder) recordArgs(r record) ([]any, error) {
	e, o := r.e, r.o
	counter := ""
	if !o.uncounted {
		counter = outcomeNames[o.kind]
	}
	args := []any{queue.Group, e.streamID, o.kind, o.delay.Milliseconds(), counter, e.owner}
	errText := errorText(o)
	switch o.kind {
	case kindRetry:
		member, err := e.retryMember(o.attempts, o.status, errText)
		if err != nil {
			return nil, err
		}
		args = append(args, member)
	case kindDead, kindLost:
		for _, v := range e.pairs(queue.FieldAttempts, strconv.Itoa(o.attempts), queue.FieldStatus, strconv.Itoa(o.status),
			queue.FieldError, errText, queue.FieldReason, o.reason,
			queue.FieldDeadAt, strconv.FormatInt(time.Now().UnixMilli(), 10), queue.FieldStreamID, e.streamID) {
			args = append(args, v)
		}
	}
	return args, nil
}

// errorText is the outcome's error as kept in retry members and dead letters.
func errorText(o outcome) string {
	if o.err == nil {
		return ""
	}
	return truncate(o.err.Error(), maxErrorText)
}
