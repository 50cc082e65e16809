package forward

import (
	"testing"
	"time"
)

// Reading ahead must never make an entry wait past the visibility timeout: with the
// default (2×timeout + 10s) there is room for it, with a tight one there is none.
func TestJobsPerSenderFitsTheVisibilityTimeout(t *testing.T) {
	for _, c := range []struct {
		timeout, visibility time.Duration
		want                int
	}{
		{10 * time.Second, 30 * time.Second, readAhead}, // the defaults
		{500 * time.Millisecond, 11 * time.Second, readAhead},
		{10 * time.Second, 15 * time.Second, 1},
		{time.Second, 2 * time.Second, 1}, // the forward tests' setting
	} {
		if got := jobsPerSender(c.timeout, c.visibility); got != c.want {
			t.Errorf("timeout %v, visibility %v: %d jobs per sender, want %d", c.timeout, c.visibility, got, c.want)
		}
	}
}
