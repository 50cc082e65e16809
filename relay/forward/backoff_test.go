package forward

import (
	"testing"
	"time"
)

func TestBackoffBoundsAndGrowth(t *testing.T) {
	base, maxDelay := 100*time.Millisecond, 2*time.Second
	for attempts := 1; attempts <= 12; attempts++ {
		ceiling := min(base<<(attempts-1), maxDelay)
		var lo, hi time.Duration = maxDelay, 0
		for range 500 {
			d := backoff(base, maxDelay, attempts)
			if d < base || d > ceiling {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempts, d, base, ceiling)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// Full jitter: the spread covers most of the range once it is wide.
		if ceiling >= 4*base && hi-lo < (ceiling-base)/2 {
			t.Errorf("attempt %d: delays span only %v–%v of %v–%v", attempts, lo, hi, base, ceiling)
		}
	}
}
