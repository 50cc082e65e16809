package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// CreateGroup creates provider's consumer group (Group) at the start of its events
// stream, and the stream if need be; an existing group is left as it is. After a Redis
// restart that lost the group, starting at 0 re-reads what is still in the stream: only
// undelivered entries are there, since delivered ones are deleted.
func CreateGroup(ctx context.Context, c redis.Cmdable, keys Keys, provider string) error {
	err := c.XGroupCreateMkStream(ctx, keys.Events(provider), Group, "0").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return err
	}
	return nil
}

// IsNoGroup reports whether err is Redis's answer to a read through a consumer group that
// does not exist (Redis restarted without persistence): CreateGroup, then read again.
func IsNoGroup(err error) bool { return err != nil && redis.HasErrorPrefix(err, "NOGROUP") }

// ReadNew reads up to count entries of provider's events stream that no consumer has read
// yet, as consumer, waiting up to block for some to arrive; none is nil, not an error.
func ReadNew(ctx context.Context, c redis.Cmdable, keys Keys, provider, consumer string, count int, block time.Duration) ([]*Entry, error) {
	res, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: Group, Consumer: consumer, Streams: []string{keys.Events(provider), ">"},
		Count: int64(count), Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Entry
	for _, s := range res {
		for _, m := range s.Messages {
			out = append(out, DecodeEntry(provider, m.ID, m.Values))
		}
	}
	return out, nil
}

// Claim takes over, as consumer, up to count entries of provider's events stream that
// stayed pending longer than minIdle, scanning the pending list from cursor ("0-0": its
// start). It returns where the next scan continues ("0-0": the scan wrapped), the entries
// claimed, and the ids of pending entries found deleted (trimmed): XAUTOCLAIM drops
// those from the pending list, so only the caller can still dead-letter them (LostEntry).
func Claim(ctx context.Context, c redis.UniversalClient, keys Keys, provider, consumer string, minIdle time.Duration, cursor string, count int) (next string, claimed []*Entry, deleted []string, err error) {
	// Raw command: go-redis drops XAUTOCLAIM's third element, the deleted ids.
	res, err := c.Do(ctx, "XAUTOCLAIM", keys.Events(provider), Group, consumer,
		minIdle.Milliseconds(), cursor, "COUNT", max(1, count)).Slice()
	if err != nil {
		return "", nil, nil, err
	}
	return parseAutoClaim(provider, res)
}

// parseAutoClaim reads [next, [[id, [field, value, ...]], ...], [deleted ids]].
func parseAutoClaim(provider string, res []any) (next string, claimed []*Entry, deleted []string, err error) {
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
		claimed = append(claimed, DecodeEntry(provider, id, values))
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
