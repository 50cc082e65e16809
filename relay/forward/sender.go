package forward

import (
	"context"
	"time"

	"github.com/sony/gobreaker/v2"
)

// sender makes the upstream requests of the jobs the fetcher hands it, one at a time,
// until the fetcher stops. After shutdown starts it attempts nothing new: jobs not yet
// begun stay pending and are reclaimed (by this relay's successor or another relay).
func (f *Forwarder) sender(ctx context.Context) {
	for j := range f.jobs {
		if ctx.Err() == nil {
			f.send(ctx, j)
		}
		f.room.Release(1)
	}
}

// send waits for the job's rate-limit slot and this process's limiter, asks its lane's
// breaker, makes the attempt and hands each entry's outcome to the recorder. A breaker
// that opened or a Retry-After pause that began since the read defers the batch,
// unattempted.
func (f *Forwarder) send(ctx context.Context, j job) {
	if d := time.Until(j.notBefore); d > 0 && !sleep(ctx, d) {
		return
	}
	if f.limiter.Wait(ctx) != nil {
		return
	}
	if f.tooLate(j.batch) {
		// Waited so long (for a slot, a sender or the limiter) that another relay could
		// take the entries over while this request is out, and send them a second time.
		f.deferAll(j.batch, 0, errWaitedTooLong)
		return
	}
	// A batch never mixes lanes (see batches).
	l := f.laneOf(&j.batch[0].Message)
	own := l.breaker.State()
	done, err := l.breaker.Allow()
	if err != nil { // open, or half-open with its probe already out
		f.deferAll(j.batch, f.o.Delivery.Breaker.OpenFor, errBreakerOpen)
		return
	}
	if left := l.sharedOpenLeft(); left > 0 { // another relay's breaker opened
		done(errNoWork)
		f.deferAll(j.batch, left, errBreakerOpen)
		return
	}
	if left := l.pauseLeft(); left > 0 {
		done(errNoWork)
		f.deferAll(j.batch, left, errPaused)
		return
	}
	var probe bool
	if own == gobreaker.StateHalfOpen || l.sharedState() == gobreaker.StateHalfOpen {
		// One probe deployment-wide: the relay that claims it.
		var ok bool
		if ok, probe = f.claimProbe(l); !ok {
			done(errNoWork)
			f.deferAll(j.batch, f.o.Delivery.Breaker.OpenFor, errBreakerOpen)
			return
		}
	}
	start := time.Now()
	results := f.attempt(l, j.batch)
	spent := time.Since(start)
	for _, e := range j.batch {
		e.tried, e.spent = start, spent
	}
	verdict := breakerVerdict(results)
	done(verdict)
	f.share(l, verdict, probe)
	for i, e := range j.batch {
		f.settle(e, results[i])
	}
}

// tooLate reports whether an attempt starting now could outlast the visibility timeout of
// the batch's oldest entry, keeping some slack (up to a second) for recording the outcome.
func (f *Forwarder) tooLate(batch []*entry) bool {
	slack := min(time.Second, (f.o.Visibility-f.o.Delivery.Timeout)/2)
	return time.Since(oldest(batch))+f.o.Delivery.Timeout+slack >= f.o.Visibility
}

// oldest is when the earliest of entries was read or claimed (now if there are none).
func oldest(entries []*entry) time.Time {
	t := time.Now()
	for _, e := range entries {
		if e.took.Before(t) {
			t = e.took
		}
	}
	return t
}
