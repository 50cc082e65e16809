package forward

import (
	"context"
	"errors"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/relay/queue"
)

const (
	// readAhead is how many jobs per sender the fetcher keeps in hand when the
	// visibility timeout leaves room (see jobsPerSender): one being sent and one read
	// ahead, so reads stay large while senders free up one at a time.
	readAhead = 2
	// maxRead caps the entries of one read (batching providers read several batches).
	maxRead = 512
	// slotHorizon bounds how far ahead the slots taken for one read may start (see
	// slotWindow): entries read wait at most this long for their slot.
	slotHorizon = time.Second
)

// job is one upstream request's worth of entries for a sender, and the earliest time the
// deployment's rate limit lets it go out.
type job struct {
	batch     []*entry
	notBefore time.Time
}

// fetcher feeds the senders: it waits out a Retry-After pause and an open breaker (of
// every lane, when the adapter has several: see Lanes) and the rate limit's next free
// slot, takes the room there is for jobs (at least one), takes as
// many rate-limit slots as are due soon in one call, reads that many requests' worth of
// entries (abandoned ones first, when a scan for them is due) and hands the batches over.
// An open breaker or a pause thus stops reading; jobs already read are deferred by the
// senders. A sender also defers a job that waited so long its entries could be taken
// over before its request ends (see send).
func (f *Forwarder) fetcher(ctx context.Context, consumer string) {
	var nextFree time.Time // the rate limit's next free slot, as of our last reservation
	size := newReadSizer(f.o.Adapter.MaxBatchWeight())
	var reclaim reclaimer
	// kept are the entries of batches the last read had no request for, sent first next
	// turn (see dispatch); whatever could wait too long goes back to the stream.
	var kept []*entry
	defer func() {
		if len(kept) > 0 { // stopping: back to the stream for whichever relay reads next
			f.deferAll(kept, 0, errNoRoom)
		}
	}()
	for ctx.Err() == nil {
		if d := f.pauseLeft(); d > 0 {
			kept = f.letGo(kept, d)
			if !sleep(ctx, d) {
				return
			}
		}
		if d := time.Until(nextFree); d > 0 {
			kept = f.letGo(kept, d)
			if !sleep(ctx, d) {
				return
			}
		}
		state := f.readState()
		if state == gobreaker.StateOpen {
			d := min(f.o.Delivery.Breaker.OpenFor/4, 250*time.Millisecond)
			kept = f.letGo(kept, d)
			sleep(ctx, d)
			continue
		}
		var (
			requests int
			first    time.Time
		)
		if requests, first, nextFree = f.turn(ctx, state); requests == 0 {
			continue // nextFree says when to ask again (or ctx is done)
		}
		var (
			entries []*entry
			err     error
		)
		if want := requests*size.perBatch - len(kept); want > 0 {
			// With batches kept, their slots are taken: read what is there, not wait.
			block := f.o.Block
			if len(kept) > 0 {
				block = -1
			}
			entries, err = f.take(ctx, &reclaim, consumer, requests, want, block)
		}
		if ctx.Err() != nil { // stopping: no sender attempts them now
			f.room.Release(int64(requests))
			kept = append(kept, entries...)
			return
		}
		// Kept entries first: their batches are the first sent.
		entries, kept = append(kept, entries...), nil
		if len(entries) == 0 {
			f.room.Release(int64(requests))
		} else {
			kept = f.dispatch(entries, requests, first, size)
		}
		if err != nil {
			f.log.Warn("read failed", zap.Error(err))
			kept = f.letGo(kept, time.Second)
			sleep(ctx, time.Second)
		}
	}
}

// letGo sends kept entries back to the stream (through the retry set, due at once, no
// attempt counted) if they could not wait d more and still be sent well within their
// visibility timeout (see keepable); it returns what is still kept.
func (f *Forwarder) letGo(kept []*entry, d time.Duration) []*entry {
	if len(kept) > 0 && !f.keepable(kept, d) {
		f.deferAll(kept, 0, errNoRoom)
		return nil
	}
	return kept
}

// keepable reports whether entries may wait d more in the fetcher and a request made for
// them next turn still fit the visibility timeout's budget (see jobsPerSender; a sender
// checks again: tooLate).
func (f *Forwarder) keepable(entries []*entry, d time.Duration) bool {
	limit := f.slotWindow()
	if f.perSender > 1 {
		// The visibility timeout leaves room for reading ahead (jobsPerSender): three
		// slot horizons to spare, of which kept entries may take one.
		limit *= 2
	}
	return time.Since(oldest(entries))+d < limit
}

// turn takes room for jobs and the rate-limit slots to fill it, and waits for the first
// slot. It returns how many requests the next read may feed (0: none now; the room taken
// is released), when the first of their slots is due, and when the next free slot is.
//
// Room: at least a quarter of a full read, so reads stay large while senders free up one
// by one and the jobs still in hand keep them busy meanwhile. Slots are taken before the
// read, as the turn a request needs, and only those due within slotWindow: entries read
// then wait for no one else's slots, and idle relays cannot book the future. A read that
// finds fewer entries wastes the rest, which only happens when there is no backlog.
func (f *Forwarder) turn(ctx context.Context, state gobreaker.State) (requests int, first, nextFree time.Time) {
	most := f.requestsPerRead(state)
	room := max(1, most/4)
	if f.room.Acquire(ctx, int64(room)) != nil {
		return 0, time.Time{}, time.Time{}
	}
	for room < most && f.room.TryAcquire(1) {
		room++
	}
	requests, first, nextFree = f.reserve(ctx, room, f.slotWindow())
	f.room.Release(int64(room - requests))
	if d := time.Until(first); requests > 0 && d > 0 && !sleep(ctx, d) {
		f.room.Release(int64(requests))
		return 0, first, nextFree
	}
	return requests, first, nextFree
}

// dispatch dead-letters what cannot be sent, batches the rest and hands up to requests
// batches to the senders, each at its slot from first on; it sizes the next read (size)
// and returns the entries to keep for the next turn. The room of the requests not used
// is released.
//
// More batches than requests (batch keys vary: Cardlytics batches one customer's events)
// leave some without a request. Up to requests of them are kept, in memory, for the
// next turn, and merged there with what it reads; the rest go back to the stream.
func (f *Forwarder) dispatch(entries []*entry, requests int, first time.Time, size *readSizer) (kept []*entry) {
	live := f.live(entries)
	batches := f.batches(live)
	for _, e := range live {
		if !e.sampled { // read this turn, not kept from the last
			e.sampled = true
			size.add(e.batchKey)
		}
	}
	size.update(requests, len(live), len(batches))
	if len(batches) > requests {
		for i, b := range batches[requests:] {
			if i < requests && f.keepable(b, 0) {
				kept = append(kept, b...)
			} else {
				f.deferAll(b, 0, errNoRoom)
			}
		}
		batches = batches[:requests]
	}
	f.room.Release(int64(requests - len(batches)))
	for i, b := range batches {
		f.jobs <- job{batch: b, notBefore: first.Add(time.Duration(float64(i) * f.interval * float64(time.Microsecond)))}
	}
	return kept
}

// requestsPerRead is how many requests one read may feed: the room for jobs, one while
// the breaker is half-open (its single probe), and no more than the rate limit allows
// within slotHorizon.
func (f *Forwarder) requestsPerRead(state gobreaker.State) int {
	if state == gobreaker.StateHalfOpen {
		return 1
	}
	return max(1, min(f.perSender*f.o.Delivery.Workers, int(f.o.Delivery.RateLimit*slotHorizon.Seconds())))
}

// jobsPerSender is how many jobs per sender may be in hand. A job read ahead waits for a
// sender for up to one upstream request (≤ timeout) before its own (≤ timeout), plus its
// rate-limit slot (about slotHorizon): all of it must fit well inside the visibility
// timeout, or another relay would take the entry over and send it a second time. With a
// tighter visibility_timeout than the default 2×timeout + 10s, there is no read-ahead.
func jobsPerSender(timeout, visibility time.Duration) int {
	if visibility > 2*timeout+4*slotHorizon {
		return readAhead
	}
	return 1
}

// reserve takes up to n consecutive slots of the deployment's rate limit, those starting
// within window from now, and returns how many it got, when the first is due and when the
// next free one is (with none granted: when to ask again). The same call reads the
// lanes' shared pauses and breakers (see shared.go); with all of them stopped, none is
// granted. If Redis cannot be asked, the local limiter alone spaces requests: all n are
// granted.
func (f *Forwarder) reserve(ctx context.Context, n int, window time.Duration) (granted int, first, nextFree time.Time) {
	now := time.Now()
	r, err := queue.Turn(ctx, f.o.Client, f.o.Keys, f.provider, f.laneNames(), f.interval, n, window)
	if err != nil {
		if ctx.Err() == nil {
			f.log.Warn("could not reserve rate-limit slots; this relay's own limiter still applies", zap.Error(err))
		}
		return n, now, now
	}
	f.applyGates(r.Lanes)
	return r.Granted, now.Add(r.First), now.Add(r.Next)
}

// slotWindow is how far ahead the slots taken before a read may start, where the rate
// limit binds: entries read wait at most that long for their slot, well inside the
// visibility timeout.
func (f *Forwarder) slotWindow() time.Duration {
	return min(slotHorizon, (f.o.Visibility-f.o.Delivery.Timeout)/4)
}

// live dead-letters the entries that cannot or may no longer be attempted (malformed,
// trimmed, older than max_age) and returns the rest.
func (f *Forwarder) live(entries []*entry) []*entry {
	now := time.Now()
	out := entries[:0]
	for _, e := range entries {
		switch {
		case e.Bad != nil:
			f.log.Error("undeliverable entry: dead-lettered", zap.String("stream_id", e.StreamID),
				zap.String("reason", e.Reason), zap.Error(e.Bad))
			f.record(e, outcome{kind: kindDead, reason: e.Reason, attempts: e.Attempts, err: e.Bad})
		case now.Sub(e.Message.ReceivedAt) > f.o.Delivery.MaxAge:
			f.record(e, outcome{kind: kindDead, reason: queue.DeadMaxAge, attempts: e.Attempts,
				status: e.Status, err: errors.New("older than max_age before an attempt could be made")})
		default:
			out = append(out, e)
		}
	}
	return out
}

// take returns entries for up to requests requests: entries another consumer left pending
// past the visibility timeout when a scan for them is due (see claim), else up to count
// new entries from the stream.
func (f *Forwarder) take(ctx context.Context, r *reclaimer, consumer string, requests, count int, block time.Duration) ([]*entry, error) {
	claimed, err := f.claim(ctx, r, consumer, requests)
	switch {
	case err != nil && ctx.Err() == nil:
		// Not fatal for reading (e.g. NOGROUP after Redis lost the group: the read below
		// recreates it); the scan is tried again a second later.
		f.log.Warn("could not claim abandoned entries", zap.Error(err))
		r.next = time.Now().Add(time.Second)
	case len(claimed) > 0:
		return claimed, nil
	}
	read, err := queue.ReadNew(ctx, f.o.Client, f.o.Keys, f.provider, consumer, min(count, maxRead), block)
	switch {
	case queue.IsNoGroup(err):
		f.log.Error("consumer group missing (Redis restarted without persistence?): recreating it")
		return nil, f.ensureGroup(ctx)
	case err != nil:
		return nil, err
	}
	return held(consumer, read), nil
}
