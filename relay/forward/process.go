package forward

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/relay/queue"
)

// maxErrorText caps the error kept in retry members and dead letters.
const maxErrorText = 300

// batches groups entries by the adapter's batch key and lane, in order, each batch
// weighing at most MaxBatchWeight.
func (f *Forwarder) batches(entries []*entry) [][]*entry {
	maxW := max(f.o.Adapter.MaxBatchWeight(), 1)
	var out [][]*entry
	open := map[string]int{} // key -> index in out of its open batch
	weight := map[int]int{}
	for _, e := range entries {
		if !e.keyed { // once per entry: a kept entry is batched again next turn
			e.batchKey, e.weight = f.o.Adapter.BatchKey(&e.Message)
			if e.batchKey != "" && f.laned != nil {
				e.batchKey = f.laneOf(&e.Message).name + "\x00" + e.batchKey
			}
			e.keyed = true
		}
		key, w := e.batchKey, e.weight
		if i, ok := open[key]; ok && key != "" && weight[i]+w <= maxW {
			out[i] = append(out[i], e)
			weight[i] += w
			continue
		}
		out = append(out, []*entry{e})
		open[key] = len(out) - 1
		weight[len(out)-1] = w
	}
	return out
}

// attempt makes one upstream request for batch (all in lane l) and returns one result
// per entry.
func (f *Forwarder) attempt(l *lane, batch []*entry) []error {
	ctx, cancel := context.WithTimeout(f.attempts, f.o.Delivery.Timeout)
	defer cancel()
	msgs := make([]*delivery.Message, len(batch))
	for i, e := range batch {
		msgs[i] = &e.Message
	}
	start := time.Now()
	results := f.o.Adapter.Deliver(ctx, msgs)
	if f.o.Metrics != nil {
		f.o.Metrics.duration.WithLabelValues(f.provider).Observe(time.Since(start).Seconds())
	}
	if len(results) != len(batch) {
		err := errors.New("adapter returned a wrong number of results")
		f.log.Error("adapter bug", zap.Int("want", len(batch)), zap.Int("got", len(results)))
		results = make([]error, len(batch))
		for i := range results {
			results[i] = err
		}
	}
	for _, err := range results {
		if d, ok := delivery.RetryDelay(err); ok {
			l.pause(d)
			f.sharePause(l, d)
			break
		}
	}
	return results
}

// breakerVerdict is what the breaker learns from one request: a failure only when the
// upstream itself failed (transport error, 5xx, 408, 429, 401); a Permanent refusal of
// the event proves the upstream healthy.
func breakerVerdict(results []error) error {
	for _, err := range results {
		if err != nil && !delivery.IsPermanent(err) {
			return err
		}
	}
	return nil
}

// Outcome kinds: a delivery, or one of queue.RecordOutcome's.
const (
	kindOK    = "ok"
	kindRetry = string(queue.KindRetry)
	kindDead  = string(queue.KindDead)
	// kindLost dead-letters an entry that is no longer pending (its data was deleted).
	kindLost = string(queue.KindLost)
)

type outcome struct {
	kind     string
	reason   string // dead only
	attempts int
	status   int
	delay    time.Duration // retry only
	err      error
	// uncounted is true for a deferral that made no attempt (metrics, stats).
	uncounted bool
}

// settle decides and records what happens to e after an attempt that returned err.
func (f *Forwarder) settle(e *entry, err error) {
	d := f.o.Delivery
	switch {
	case err == nil:
		f.record(e, outcome{kind: kindOK, attempts: e.Attempts + 1})
		return
	case errors.Is(err, context.Canceled) && f.attempts.Err() != nil:
		// Abandoned at shutdown: left pending, reclaimed later, no attempt counted.
		return
	}
	o := outcome{attempts: e.Attempts + 1, status: delivery.StatusOf(err), err: err}
	delay, ok := delivery.RetryDelay(err)
	if !ok {
		delay = backoff(d.Backoff.Base, d.Backoff.Max, o.attempts)
	}
	switch {
	case delivery.IsPermanent(err):
		o.kind, o.reason = kindDead, queue.DeadPermanent
	case o.attempts >= d.MaxAttempts:
		o.kind, o.reason = kindDead, queue.DeadMaxAttempts
	case time.Now().Add(delay).Sub(e.Message.ReceivedAt) > d.MaxAge:
		o.kind, o.reason = kindDead, queue.DeadMaxAge
	default:
		o.kind, o.delay = kindRetry, delay
	}
	f.record(e, o)
}

// Why entries were deferred without an attempt.
var (
	errBreakerOpen   = errors.New("deferred: circuit breaker open")
	errPaused        = errors.New("deferred: the upstream asked to wait (Retry-After)")
	errNoRoom        = errors.New("deferred: more batches read than senders free")
	errWaitedTooLong = errors.New("deferred: waited too long for its turn to be sent within the visibility timeout")
)

// deferAll puts entries that may not be sent now back into the retry set for delay (the
// breaker's open period, what is left of a Retry-After pause, or 0), without counting an
// attempt. An entry keeps the error of its last real attempt, if it had one.
func (f *Forwarder) deferAll(batch []*entry, delay time.Duration, why error) {
	for _, e := range batch {
		err := why
		if e.Error != "" {
			err = errors.New(e.Error)
		}
		f.record(e, outcome{kind: kindRetry, attempts: e.Attempts, status: e.Status,
			delay: delay, err: err, uncounted: true})
	}
}

// outcomeNames maps outcome kinds to their metric label and stats field.
var outcomeNames = map[string]string{kindOK: outcomeDelivered, kindRetry: outcomeRetried, kindDead: outcomeDead, kindLost: outcomeDead}

func (f *Forwarder) count(o outcome) {
	if f.o.Metrics == nil || o.uncounted {
		return
	}
	f.o.Metrics.deliveries.WithLabelValues(f.provider, outcomeNames[o.kind]).Inc()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
