package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

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
