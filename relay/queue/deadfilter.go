package queue

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// DeadFilter selects dead letters for a replay or purge by filter. A zero field matches
// every dead letter.
type DeadFilter struct {
	// Since and Until bound when the letter was dead-lettered, by its dead-letter stream
	// id (the time Redis appended it): at or after Since, before Until.
	Since, Until time.Time
	// Reason is one of DeadPermanent, DeadMaxAttempts, ...
	Reason string
	// Status is the last HTTP status (0: no reply), checked when HasStatus.
	Status    int
	HasStatus bool
	// Route is the event's ingest route ("ens/click").
	Route string
}

// IsZero reports that f matches every dead letter.
func (f DeadFilter) IsZero() bool { return f == DeadFilter{} }

// Match reports whether d passes every condition of f but the time range, which
// ScanDead applies through the stream ids it reads.
func (f DeadFilter) Match(d DeadLetter) bool {
	return (f.Reason == "" || d.Reason == f.Reason) &&
		(!f.HasStatus || d.Status == f.Status) &&
		(f.Route == "" || d.Message.Route == f.Route)
}

// ScanDead reads up to n of provider's dead letters, oldest first: after the stream id
// after (exclusive; "" from the first) up to until (inclusive), within f's time range.
// It returns them all, matching f or not (the caller counts what it looked at), and
// never more than n: callers page through a large stream with it.
func ScanDead(ctx context.Context, c redis.Cmdable, keys Keys, provider string, f DeadFilter, after, until string, n int) ([]DeadLetter, error) {
	start, end := "-", until
	if after != "" {
		start = "(" + after
	}
	if !f.Since.IsZero() {
		if since := strconv.FormatInt(f.Since.UnixMilli(), 10) + "-0"; after == "" || streamIDLess(after, since) {
			start = since
		}
	}
	if !f.Until.IsZero() {
		if before := strconv.FormatInt(f.Until.UnixMilli(), 10) + "-0"; !streamIDLess(until, before) {
			end = "(" + before
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return nil, nil // an empty range; XRANGE would refuse the exclusive end below the start
	}
	page, err := c.XRangeN(ctx, keys.Dead(provider), start, end, int64(n)).Result()
	if err != nil {
		return nil, err
	}
	out := make([]DeadLetter, len(page))
	for i, m := range page {
		out[i] = DecodeDeadLetter(provider, m)
	}
	return out, nil
}

// GetDeadByIDs reads provider's dead letters ids in one pipeline; those already gone are
// left out.
func GetDeadByIDs(ctx context.Context, c redis.Cmdable, keys Keys, provider string, ids []string) ([]DeadLetter, error) {
	cmds := make([]*redis.XMessageSliceCmd, len(ids))
	key := keys.Dead(provider)
	if _, err := c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = pipe.XRangeN(ctx, key, id, id, 1)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([]DeadLetter, 0, len(ids))
	for _, cmd := range cmds {
		for _, m := range cmd.Val() {
			out = append(out, DecodeDeadLetter(provider, m))
		}
	}
	return out, nil
}
