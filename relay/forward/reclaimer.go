package forward

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/eventrelay/relay/relay/queue"
)

// reclaimer takes over entries that stayed pending longer than the visibility timeout
// (their consumer died or hung). The fetcher calls claim when a read is due and its
// rate-limit slots are in hand, so claimed entries are sent at once: claiming resets
// their idle time, and entries claimed early and held would be taken over again.
type reclaimer struct {
	// cursor is where the next XAUTOCLAIM starts ("0-0": from the start).
	cursor string
	// next is when the pending list is next scanned from the start.
	next time.Time
	// nextCleanup is when idle consumers are next removed (removeIdle).
	nextCleanup time.Time
}

// claim takes over up to n entries idle longer than the visibility timeout, as consumer,
// once every half visibility timeout (continuing a scan until it wraps). Entries whose
// data was deleted go to the dead-letter stream with reason "trimmed".
func (f *Forwarder) claim(ctx context.Context, r *reclaimer, consumer string, n int) ([]*entry, error) {
	if time.Now().Before(r.next) {
		return nil, nil
	}
	if r.cursor == "" {
		r.cursor = "0-0"
	}
	next, claimed, deleted, err := queue.Claim(ctx, f.o.Client, f.o.Keys, f.provider, consumer, f.o.Visibility, r.cursor, n)
	if err != nil {
		return nil, err
	}
	r.cursor = next
	if next == "0-0" || next == "" {
		r.cursor, r.next = "0-0", time.Now().Add(max(f.o.Visibility/2, 100*time.Millisecond))
		f.removeIdle(ctx, r)
	}
	for _, id := range deleted {
		f.log.Error("pending entry was deleted before delivery (stream trimmed?): dead-lettered",
			zap.String("stream_id", id))
		e := &entry{Entry: *queue.LostEntry(id)}
		f.record(e, outcome{kind: kindLost, reason: e.Reason, err: e.Bad})
	}
	out := held(consumer, claimed)
	for _, e := range out {
		f.log.Info("reclaimed a pending entry", zap.String("stream_id", e.StreamID), zap.String("event_id", e.Message.ID))
	}
	return out, nil
}

// removeIdle removes the consumers of relays that stopped (idle past ConsumerExpiry, with
// nothing pending: the scan that just ended has taken over what they held), at most once
// per quarter of ConsumerExpiry. A failure is only logged: the next round tries again.
func (f *Forwarder) removeIdle(ctx context.Context, r *reclaimer) {
	now := time.Now()
	if now.Before(r.nextCleanup) {
		return
	}
	r.nextCleanup = now.Add(f.o.ConsumerExpiry / 4)
	gone, err := queue.RemoveIdleConsumers(ctx, f.o.Client, f.o.Keys, f.provider, f.o.ConsumerExpiry)
	if err != nil {
		f.log.Warn("could not remove idle consumers", zap.Error(err))
		return
	}
	if len(gone) > 0 {
		f.log.Info("removed consumers of stopped relays from the group",
			zap.Strings("consumers", gone), zap.Duration("idle_at_least", f.o.ConsumerExpiry))
	}
}
