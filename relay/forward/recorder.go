package forward

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/internal/redact"
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
	tw := f.traceWriter()
	for {
		r, ok := f.nextRecord(tw)
		if !ok {
			break
		}
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
		f.write(batch, tw)
		clear(batch)
	}
	f.traceFlush(tw)
}

// write records batch in Redis, retrying what failed, then counts and logs each outcome.
// tw, when not nil, traces the batch (with its first try).
func (f *Forwarder) write(batch []record, tw *queue.TraceWriter) {
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
		var trace *queue.TraceWriter
		if try == 0 {
			trace = tw
		}
		todo = f.writeOnce(ctx, batch, todo, applied, errs, trace)
		cancel()
	}
	for i, r := range batch {
		switch {
		case errs[i] != nil:
			f.log.Error("could not record an outcome: the entry stays pending and will be redelivered",
				zap.String("event_id", r.e.Message.ID), zap.String("outcome", r.o.kind), zap.Error(errs[i]))
		case applied[i] == 0:
			// Another consumer took the entry over (and may have settled it): its
			// outcome, not this one, counts. One outcome per entry.
			f.log.Info("outcome not recorded: the entry was taken over or settled by another consumer",
				zap.String("event_id", r.e.Message.ID), zap.String("stream_id", r.e.StreamID))
		default:
			f.count(r.o)
			f.observe(r)
			if r.o.kind == kindRetry && !r.o.uncounted {
				// The error says what is wrong (a 401, a redirect: which setting to
				// check); a configuration fault shows here first, long before max_age.
				f.log.Warn("attempt failed, will retry", zap.String("event_id", r.e.Message.ID), zap.Int("status", r.o.status),
					zap.Int("attempts", r.o.attempts), zap.Duration("retry_in", r.o.delay),
					zap.String("error", redact.Emails(errorText(r.o))))
			}
			if r.o.kind == kindDead || r.o.kind == kindLost {
				f.log.Warn("dead-lettered", zap.String("event_id", r.e.Message.ID), zap.String("reason", r.o.reason),
					zap.Int("status", r.o.status), zap.Int("attempts", r.o.attempts),
					zap.String("error", redact.Emails(errorText(r.o))))
			}
		}
	}
}

// writeOnce sends one pipeline for the records at todo: one queue.AckDelivered call per
// owner for the deliveries, one queue.RecordOutcome call per other outcome. It fills
// applied and errs and returns the indexes to try again. A NOSCRIPT reply ran nothing, so
// the scripts are loaded and the call redone.
// With tw, the records are traced, their XADD in this pipeline when due (see traceWrite).
func (f *Forwarder) writeOnce(ctx context.Context, batch []record, todo []int, applied []int64, errs []error, tw *queue.TraceWriter) []int {
	pipe := f.o.Client.Pipeline()
	cmds := map[*redis.Cmd][]int{} // each call → the indexes of its records, in its order
	acks := map[string][]int{}     // owner → indexes of its deliveries
	for _, i := range todo {
		r := batch[i]
		if r.o.kind == kindOK {
			acks[r.e.owner] = append(acks[r.e.owner], i)
			continue
		}
		cmd, err := queue.RecordOutcome(ctx, pipe, f.o.Keys, f.provider, &r.e.Entry, r.e.owner, r.o.stored())
		if err != nil {
			errs[i] = err
			continue
		}
		cmds[cmd] = []int{i}
	}
	for owner, idx := range acks {
		ids := make([]string, len(idx))
		for k, i := range idx {
			ids[k] = batch[i].e.StreamID
		}
		cmds[queue.AckDelivered(ctx, pipe, f.o.Keys, f.provider, owner, ids)] = idx
	}
	if pipe.Len() == 0 {
		return nil
	}
	tr := f.traceWrite(ctx, pipe, tw, batch, todo)
	_, _ = pipe.Exec(ctx) // per-command errors are read below
	f.traceWritten(tw, tr)

	var again []int
	noScript := false
	for cmd, idx := range cmds {
		res, err := queue.Applied(cmd)
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
		_ = queue.LoadScripts(ctx, f.o.Client)
	}
	return again
}

// stored is o as queue.RecordOutcome writes it (not for a delivery).
func (o outcome) stored() queue.Outcome {
	return queue.Outcome{Kind: queue.Kind(o.kind), Reason: o.reason, Attempts: o.attempts, Status: o.status,
		Error: errorText(o), Delay: o.delay, Counted: !o.uncounted}
}

// errorText is the outcome's error as kept in retry members and dead letters.
func errorText(o outcome) string {
	if o.err == nil {
		return ""
	}
	return truncate(o.err.Error(), maxErrorText)
}
