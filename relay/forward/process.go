package forward

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"eventrelay/providers"
	"eventrelay/relay/queue"
)

// maxErrorText caps the error kept in retry members and dead letters.
const maxErrorText = 300

// process attempts the entries of one take. done is the breaker turn already granted;
// batches after the first each take a turn of their own.
func (f *Forwarder) process(ctx context.Context, consumer string, entries []*entry, done func(error)) {
	now := time.Now()
	var live []*entry
	for _, e := range entries {
		switch {
		case e.bad != nil:
			f.log.Error("undeliverable entry: dead-lettered", zap.String("stream_id", e.streamID),
				zap.String("reason", e.reason), zap.Error(e.bad))
			f.record(e, outcome{kind: kindDead, reason: e.reason, attempts: e.attempts, err: e.bad})
		case now.Sub(e.msg.ReceivedAt) > f.o.Delivery.MaxAge:
			f.record(e, outcome{kind: kindDead, reason: reasonMaxAge, attempts: e.attempts,
				status: statusOf(e), err: errors.New("older than max_age before an attempt could be made")})
		default:
			live = append(live, e)
		}
	}
	batches := f.batches(live)
	if len(batches) == 0 {
		done(errNoWork)
		return
	}
	for i, b := range batches {
		if i > 0 {
			f.touch(ctx, consumer, batches[i:])
			var err error
			if !f.waitTurn(ctx) {
				return // shutting down: the rest stay pending and are reclaimed
			}
			if done, err = f.breaker.Allow(); err != nil {
				f.deferAll(batches[i:], f.o.Delivery.Breaker.OpenFor, errBreakerOpen)
				return
			}
		}
		// The turn was taken before the read, which may have blocked for up to Block: the
		// breaker may have opened since (a stale turn's verdict is ignored), or other
		// workers may have been told to wait (Retry-After). Nothing goes out then: the
		// entries wait in the retry set.
		if f.breaker.State() == gobreaker.StateOpen {
			done(errNoWork)
			f.deferAll(batches[i:], f.o.Delivery.Breaker.OpenFor, errBreakerOpen)
			return
		}
		if left := f.pauseLeft(); left > 0 {
			done(errNoWork)
			f.deferAll(batches[i:], left, errPaused)
			return
		}
		results := f.attempt(b)
		done(breakerVerdict(results))
		for j, e := range b {
			f.settle(e, results[j])
		}
	}
}

// batches groups entries by the adapter's batch key, in order, each batch weighing at
// most MaxBatchWeight.
func (f *Forwarder) batches(entries []*entry) [][]*entry {
	maxW := max(f.o.Adapter.MaxBatchWeight(), 1)
	var out [][]*entry
	open := map[string]int{} // key -> index in out of its open batch
	weight := map[int]int{}
	for _, e := range entries {
		key, w := f.o.Adapter.BatchKey(&e.msg)
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

// attempt makes one upstream request for batch and returns one result per entry.
func (f *Forwarder) attempt(batch []*entry) []error {
	ctx, cancel := context.WithTimeout(f.attempts, f.o.Delivery.Timeout)
	defer cancel()
	msgs := make([]*queue.Message, len(batch))
	for i, e := range batch {
		msgs[i] = &e.msg
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
		if d, ok := providers.RetryDelay(err); ok {
			f.pause(d)
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
		if err != nil && !providers.IsPermanent(err) {
			return err
		}
	}
	return nil
}

// Outcome kinds, as the record script takes them.
const (
	kindOK    = "ok"
	kindRetry = "retry"
	kindDead  = "dead"
	// kindLost dead-letters an entry that is no longer pending (its data was deleted).
	kindLost = "lost"
)

type outcome struct {
	kind     string
	reason   string // dead only
	attempts int
	status   int
	delay    time.Duration // retry only
	err      error
	// counted is false for a deferral that made no attempt (metrics).
	uncounted bool
}

// settle decides and records what happens to e after an attempt that returned err.
func (f *Forwarder) settle(e *entry, err error) {
	d := f.o.Delivery
	switch {
	case err == nil:
		f.record(e, outcome{kind: kindOK, attempts: e.attempts + 1})
		return
	case errors.Is(err, context.Canceled) && f.attempts.Err() != nil:
		// Abandoned at shutdown: left pending, reclaimed later, no attempt counted.
		return
	}
	o := outcome{attempts: e.attempts + 1, status: providers.StatusOf(err), err: err}
	delay, ok := providers.RetryDelay(err)
	if !ok {
		delay = backoff(d.Backoff.Base, d.Backoff.Max, o.attempts)
	}
	switch {
	case providers.IsPermanent(err):
		o.kind, o.reason = kindDead, reasonPermanent
	case o.attempts >= d.MaxAttempts:
		o.kind, o.reason = kindDead, reasonMaxAttempts
	case time.Now().Add(delay).Sub(e.msg.ReceivedAt) > d.MaxAge:
		o.kind, o.reason = kindDead, reasonMaxAge
	default:
		o.kind, o.delay = kindRetry, delay
	}
	f.record(e, o)
}

// Why entries were deferred without an attempt.
var (
	errBreakerOpen = errors.New("deferred: circuit breaker open")
	errPaused      = errors.New("deferred: the upstream asked to wait (Retry-After)")
)

// deferAll puts entries that may not be sent now back into the retry set for delay (the
// breaker's open period, or what is left of a Retry-After pause), without counting an
// attempt.
func (f *Forwarder) deferAll(batches [][]*entry, delay time.Duration, why error) {
	for _, b := range batches {
		for _, e := range b {
			f.record(e, outcome{kind: kindRetry, attempts: e.attempts, status: statusOf(e),
				delay: delay, err: why, uncounted: true})
		}
	}
}

// touch resets the idle time of entries still waiting in this worker's hands, so the
// reclaimer of another relay does not take them over while earlier batches are sent.
func (f *Forwarder) touch(ctx context.Context, consumer string, batches [][]*entry) {
	var ids []string
	for _, b := range batches {
		for _, e := range b {
			ids = append(ids, e.streamID)
		}
	}
	if err := f.o.Client.XClaimJustID(ctx, &redis.XClaimArgs{Stream: f.events, Group: queue.Group,
		Consumer: consumer, MinIdle: 0, Messages: ids}).Err(); err != nil {
		f.log.Warn("could not refresh pending entries", zap.Error(err))
		return
	}
	for _, b := range batches {
		for _, e := range b {
			e.owner = consumer
		}
	}
}

func statusOf(e *entry) int {
	s, _ := e.values[queue.FieldStatus].(string)
	n, _ := strconv.Atoi(s)
	return n
}

// recordTries bounds how often an outcome is retried against Redis before it is left to
// the reclaimer (the entry stays pending: redelivered later, never lost).
const recordTries = 3

// record runs the record script for e. The context is not the worker's: an outcome of
// an attempt already made must be written even while shutting down.
func (f *Forwarder) record(e *entry, o outcome) {
	counter := ""
	if !o.uncounted {
		counter = outcomeNames[o.kind]
	}
	args := []any{queue.Group, e.streamID, o.kind, o.delay.Milliseconds(), counter, e.owner}
	errText := ""
	if o.err != nil {
		errText = truncate(o.err.Error(), maxErrorText)
	}
	switch o.kind {
	case kindRetry:
		member, err := e.retryMember(o.attempts, o.status, errText)
		if err != nil {
			f.log.Error("encode retry", zap.Error(err))
			return
		}
		args = append(args, member)
	case kindDead, kindLost:
		for _, v := range e.pairs(queue.FieldAttempts, strconv.Itoa(o.attempts), queue.FieldStatus, strconv.Itoa(o.status),
			queue.FieldError, errText, queue.FieldReason, o.reason,
			queue.FieldDeadAt, strconv.FormatInt(time.Now().UnixMilli(), 10), queue.FieldStreamID, e.streamID) {
			args = append(args, v)
		}
	}
	keys := []string{f.events, f.retry, f.dead, f.o.Keys.StatsPrefix(f.provider)}
	var (
		err     error
		applied int64
	)
	for try := range recordTries {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(f.attempts), 2*time.Second)
		applied, err = recordScript.Run(ctx, f.o.Client, keys, args...).Int64()
		cancel()
		if err == nil {
			break
		}
		time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
	}
	switch {
	case err != nil:
		f.log.Error("could not record an outcome: the entry stays pending and will be redelivered",
			zap.String("event_id", e.msg.ID), zap.String("outcome", o.kind), zap.Error(err))
		return
	case applied == 0:
		// Another consumer took the entry over (and may have settled it): its outcome, not
		// this one, counts. One outcome per entry.
		f.log.Info("outcome not recorded: the entry was taken over or settled by another consumer",
			zap.String("event_id", e.msg.ID), zap.String("stream_id", e.streamID))
		return
	}
	f.count(o)
	if o.kind == kindDead || o.kind == kindLost {
		f.log.Warn("dead-lettered", zap.String("event_id", e.msg.ID), zap.String("reason", o.reason),
			zap.Int("status", o.status), zap.Int("attempts", o.attempts), zap.String("error", maskEmails(errText)))
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
