package forward

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"eventrelay/relay/queue"
)

// reclaimCount caps the entries one XAUTOCLAIM call takes over.
const reclaimCount = 100

// reclaimer takes over entries that stayed pending longer than the visibility timeout
// (their consumer died or hung) and hands them to this forwarder's workers. Entries whose
// data was deleted go to the dead-letter stream with reason "trimmed".
func (f *Forwarder) reclaimer(ctx context.Context, consumer string) {
	t := time.NewTicker(max(f.o.Visibility/2, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := f.reclaim(ctx, consumer); err != nil && ctx.Err() == nil {
			f.log.Warn("reclaim failed", zap.Error(err))
		}
	}
}

func (f *Forwarder) reclaim(ctx context.Context, consumer string) error {
	start := "0-0"
	for {
		// Raw command: go-redis drops XAUTOCLAIM's third element, the deleted ids.
		res, err := f.o.Client.Do(ctx, "XAUTOCLAIM", f.events, queue.Group, consumer,
			f.o.Visibility.Milliseconds(), start, "COUNT", reclaimCount).Slice()
		if err != nil {
			return err
		}
		next, claimed, deleted, err := parseAutoClaim(res)
		if err != nil {
			return err
		}
		for _, id := range deleted {
			f.log.Error("pending entry was deleted before delivery (stream trimmed?): dead-lettered",
				zap.String("stream_id", id))
			e := &entry{streamID: id, bad: queue.ErrMalformedEntry, reason: reasonTrimmed}
			f.record(e, outcome{kind: kindLost, reason: reasonTrimmed, err: e.bad})
		}
		for _, c := range claimed {
			e := newEntry(f.provider, consumer, c.streamID, c.values)
			f.log.Info("reclaimed a pending entry", zap.String("stream_id", e.streamID), zap.String("event_id", e.msg.ID))
			select {
			case f.reclaimed <- e:
			case <-ctx.Done():
				return nil // stays pending under our name; reclaimed again later
			}
		}
		if next == "0-0" || next == "" {
			return nil
		}
		start = next
	}
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
