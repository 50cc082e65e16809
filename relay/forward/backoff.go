package forward

import (
	"math/rand/v2"
	"time"
)

// backoff returns the delay before attempt number attempts+1, exponential with full
// jitter: uniformly between base and min(max, base·2^(attempts-1)). Jitter spreads the
// retries of a burst that failed together.
func backoff(base, maxDelay time.Duration, attempts int) time.Duration {
	if attempts < 1 {
		attempts = 1
	}
	ceiling := base
	for i := 1; i < attempts && ceiling < maxDelay; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, maxDelay)
	if ceiling <= base {
		return base
	}
	return base + rand.N(ceiling-base+1)
}
