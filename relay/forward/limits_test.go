package forward_test

import (
	"testing"
	"time"
)

// Guarantee 6, in-flight half: however much is queued (and read ahead: the visibility
// timeout leaves room for it here), no more than `workers` requests are ever in flight to
// one provider, and the senders do run in parallel up to that.
func TestInFlightStaysUnderWorkers(t *testing.T) {
	e := newEnv(t, map[string]string{
		"bannerflex": `workers: 3, rate_limit: 1000, timeout: 1s, visibility_timeout: 8s, max_attempts: 5, max_age: 1h, backoff: {base: 50ms, max: 100ms}, breaker: {failures: 5, open_for: 1s}`,
	})
	e.up["bannerflex"].setScript(func(int) reply { return reply{status: 200, body: `{"ok":true}`, delay: 150 * time.Millisecond} })
	for range 24 {
		e.send("bannerflex/banner-events", bfBody)
	}
	e.eventually(15*time.Second, "drained", func() bool { return e.idle("bannerflex") })
	if n := len(e.up["bannerflex"].got()); n != 24 {
		t.Fatalf("%d requests, want 24", n)
	}
	if p := e.up["bannerflex"].peakActive(); p != 3 {
		t.Fatalf("at most %d requests in flight at once, want exactly workers = 3", p)
	}
}

// Guarantee 6, rate half, over every window rather than on average: the reserved slots
// of three relays never put more than rate_limit requests into any second.
func TestRateLimitHoldsInEveryWindow(t *testing.T) {
	const rate = 20
	e := newEnvRelays(t, map[string]string{
		"ens": `workers: 4, rate_limit: 20, timeout: 1s, max_attempts: 5, max_age: 1h, backoff: {base: 50ms, max: 100ms}, breaker: {failures: 5, open_for: 1s}`,
	}, 3)
	for range 60 {
		e.send("ens/impression", ensBody)
	}
	e.eventually(20*time.Second, "drained", func() bool { return e.idle("ens") })
	hits := e.up["ens"].got()
	if len(hits) != 60 {
		t.Fatalf("%d requests, want 60", len(hits))
	}
	// rate+1 consecutive requests span at least one second; 10% slack for the arrival
	// jitter of requests sent on time.
	for i := 0; i+rate < len(hits); i++ {
		if span := hits[i+rate].at.Sub(hits[i].at); span < 900*time.Millisecond {
			t.Fatalf("requests %d..%d (%d) within %v: over %d/s", i, i+rate, rate+1, span, rate)
		}
	}
}
