package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RemoveIdleConsumers removes from provider's consumer group the consumers idle at least
// minIdle that hold no pending entry, and returns their names. A missing stream or group
// removes nothing.
func RemoveIdleConsumers(ctx context.Context, c redis.Scripter, keys Keys, provider string, minIdle time.Duration) ([]string, error) {
	res, err := removeIdleConsumers.Run(ctx, c, []string{keys.Events(provider)}, Group, minIdle.Milliseconds()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("%w: remove idle consumers of %s: %w", ErrUnavailable, provider, err)
	}
	return res, nil
}
