package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// trimDeadScript applies a dead-letter stream's retention in one step. KEYS: dead. ARGV:
// max age in ms, max count. Letters added before now − max age go first (the stream ids
// are their XADD times; now is Redis's clock, so relays with skewed clocks agree), then
// the oldest beyond max count. Exact trimming (no ~), so the counts are the letters
// dropped. Returns {dropped by age, dropped by count}.
var trimDeadScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local byAge = redis.call('XTRIM', KEYS[1], 'MINID', string.format('%.0f', math.max(now - tonumber(ARGV[1]), 0)))
local byCount = redis.call('XTRIM', KEYS[1], 'MAXLEN', ARGV[2])
return {byAge, byCount}
`)

// Trimmed is what one TrimDead dropped.
type Trimmed struct {
	// ByAge are the letters older than the max age, ByCount the oldest beyond the max count.
	ByAge, ByCount int64
}

// TrimDead drops the dead letters of provider that are older than maxAge and the oldest
// beyond maxCount.
func TrimDead(ctx context.Context, c redis.Scripter, keys Keys, provider string, maxAge time.Duration, maxCount int64) (Trimmed, error) {
	res, err := trimDeadScript.Run(ctx, c, []string{keys.Dead(provider)}, maxAge.Milliseconds(), maxCount).Int64Slice()
	if err != nil {
		return Trimmed{}, fmt.Errorf("trim dead letters of %s: %w", provider, err)
	}
	if len(res) != 2 {
		return Trimmed{}, fmt.Errorf("trim dead letters of %s: reply %v", provider, res)
	}
	return Trimmed{ByAge: res[0], ByCount: res[1]}, nil
}
