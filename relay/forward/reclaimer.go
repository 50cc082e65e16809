package forward

import (
	"context"
	"fmt"
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
	// Raw command: go-redis drops XAUTOCLAIM's third element, the deleted ids.
	res, err := f.o.Client.Do(ctx, "XAUTOCLAIM", f.events, queue.Group, consumer,
		f.o.Visibility.Milliseconds(), r.cursor, "COUNT", max(1, n)).Slice()
	if err != nil {
		return nil, err
	}
	next, claimed, deleted, err := parseAutoClaim(res)
	if err != nil {
		return nil, err
	}
	r.cursor = next
	if next == "0-0" || next == "" {
		r.cursor, r.next = "0-0", time.Now().Add(max(f.o.Visibility/2, 100*time.Millisecond))
	}
	for _, id := range deleted {
		f.log.Error("pending entry was deleted before delivery (stream trimmed?): dead-lettered",
			zap.String("stream_id", id))
		e := &entry{streamID: id, bad: queue.ErrMalformedEntry, reason: reasonTrimmed}
		f.record(e, outcome{kind: kindLost, reason: reasonTrimmed, err: e.bad})
	}
	out := make([]*entry, 0, len(claimed))
	for _, c := range claimed {
		e := newEntry(f.provider, consumer, c.streamID, c.values)
		f.log.Info("reclaimed a pending entry", zap.String("stream_id", e.streamID), zap.String("event_id", e.msg.ID))
		out = append(out, e)
	}
	return out, nil
}

// parseAutoClaim reads [next, [[id, [field, value, ...]], ...], [deleted ids]].
func parseAutoClaim(res []any) (next string, claimed []*entry, deleted []string, err error) {
	if len(res) < 2 {
		return "", nil, nil, fmt.Errorf("XAUTOCLAIM: unexpected reply of %d elements", len(res))
	}
	next, _ = res[0].(string)
	msgs, _ := res[1].([]any)
	for _, raw := range msgs {
		pair, ok := raw.([]any)
		if !ok || len(pair) != 2 {
			continue
		}
		id, _ := pair[0].(string)
		values := map[string]any{}
		if fv, ok := pair[1].([]any); ok {
			for i := 0; i+1 < len(fv); i += 2 {
				k, _ := fv[i].(string)
				values[k] = fv[i+1]
			}
		}
		claimed = append(claimed, &entry{streamID: id, values: values})
	}
	if len(res) >= 3 {
		ids, _ := res[2].([]any)
		for _, v := range ids {
			if s, ok := v.(string); ok {
				deleted = append(deleted, s)
			}
		}
	}
	return next, claimed, deleted, nil
}
