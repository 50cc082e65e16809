package forward_test

import (
	"testing"
	"time"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/relay/queue"
)

// maxAgeDelivery are ens's settings for the max_age tests: max_age short, attempts and
// backoff no obstacle, so only max_age can end the events.
func maxAgeDelivery(maxAge time.Duration, b config.Breaker) config.Delivery {
	return config.Delivery{Workers: 1, RateLimit: 200, Timeout: 300 * ms, MaxAttempts: 1000, MaxAge: maxAge,
		Backoff: config.Backoff{Base: 20 * ms, Max: 50 * ms}, Breaker: b}
}

// waitMaxAgeDeadLetters waits for ens's events ids to end as dead letters, ens's stream,
// pending list and retry set empty, and checks each event has exactly one, with reason
// max_age (not lost: trimmed; not given up for attempts). It returns them by event id.
func waitMaxAgeDeadLetters(t *testing.T, e *env, ids map[string]bool) map[string]queue.DeadLetter {
	t.Helper()
	e.eventually(20*time.Second, "every event dead-lettered and nothing left in the stream, pending list or retry set",
		func() bool { return len(e.dead("ens")) >= len(ids) && e.idle("ens") })
	got := map[string]queue.DeadLetter{}
	for _, d := range e.dead("ens") {
		if !ids[d.Message.ID] {
			t.Fatalf("dead letter of an unknown event: %+v", d)
		}
		if _, dup := got[d.Message.ID]; dup {
			t.Fatalf("event %s dead-lettered twice", d.Message.ID)
		}
		if d.Reason != queue.DeadMaxAge {
			t.Errorf("event %s dead-lettered with reason %q, want max_age: %+v", d.Message.ID, d.Reason, d)
		}
		got[d.Message.ID] = d
	}
	if len(got) != len(ids) {
		t.Fatalf("%d dead letters, want %d", len(got), len(ids))
	}
	return got
}

// max_age under a Retry-After longer than it: the attempt that got the 429 is
// dead-lettered with max_age at once (its retry would be due after max_age), not kept
// waiting for the pause; the events the pause held back, never attempted, end as max_age
// dead letters when it is over. Nothing else reaches the upstream.
func TestMaxAgeUnderLongRetryAfter(t *testing.T) {
	const maxAge = 2 * time.Second
	e := newEnv(t, map[string]config.Delivery{
		"ens": maxAgeDelivery(maxAge, config.Breaker{Failures: 100, OpenFor: time.Second}),
	})
	e.up["ens"].setScript(func(int) reply {
		return reply{status: 429, header: map[string]string{"Retry-After": "4"}}
	})
	ids := map[string]bool{}
	for range 3 {
		ids[e.send("ens/click", ensBody)] = true
	}
	dead := waitMaxAgeDeadLetters(t, e, ids)
	hits := e.up["ens"].got()
	if len(hits) != 1 {
		t.Fatalf("%d requests, want 1: the Retry-After pause holds back the rest until max_age ends them", len(hits))
	}
	attempted := hits[0].header.Get(eventIDHeader)
	for id, d := range dead {
		switch {
		case id == attempted:
			if d.Attempts != 1 || d.Status != 429 {
				t.Errorf("the attempted event's dead letter: attempts %d, status %d; want 1, 429", d.Attempts, d.Status)
			}
			if age := d.DeadAt.Sub(d.Message.ReceivedAt); age >= maxAge {
				t.Errorf("the attempted event was dead-lettered %v after it was received: want at once, "+
					"not after its retry (Retry-After 4 s > max_age %v)", age, maxAge)
			}
		case d.Attempts != 0:
			t.Errorf("event %s never sent, yet its dead letter counts %d attempts", id, d.Attempts)
		}
	}
}

// max_age while the upstream keeps failing and the breaker stays open (re-opening after
// each failed probe, or open longer than max_age): every event ends as a max_age dead
// letter, none stuck in the retry set or pending, none given up as max_attempts, and no
// later than the documented limit (the next read after max_age, plus one attempt).
func TestMaxAgeWhileBreakerStaysOpen(t *testing.T) {
	const maxAge = 2 * time.Second
	for _, openFor := range []time.Duration{400 * ms, 3 * time.Second} {
		t.Run("open_for="+openFor.String(), func(t *testing.T) {
			d := maxAgeDelivery(maxAge, config.Breaker{Failures: 2, OpenFor: openFor})
			d.Workers = 2
			e := newEnv(t, map[string]config.Delivery{"ens": d})
			e.up["ens"].setScript(func(int) reply { return reply{status: 503} })
			ids := map[string]bool{}
			for range 5 {
				ids[e.send("ens/click", ensBody)] = true
			}
			dead := waitMaxAgeDeadLetters(t, e, ids)
			opened := false
			for _, l := range e.logs.FilterMessage("circuit breaker").All() {
				opened = opened || (l.ContextMap()["provider"] == "ens" && l.ContextMap()["to"] == "open")
			}
			if !opened {
				t.Fatal("the breaker never opened")
			}
			// Deferred by the open breaker for open_for, read again at most open_for
			// later (the breaker re-opened meanwhile), then one attempt; a second of slack.
			limit := maxAge + 2*openFor + d.Timeout + time.Second
			for id, dl := range dead {
				if dl.Status != 0 && dl.Status != 503 {
					t.Errorf("event %s: last status %d, want 503 or none", id, dl.Status)
				}
				if age := dl.DeadAt.Sub(dl.Message.ReceivedAt); age > limit {
					t.Errorf("event %s dead-lettered %v after it was received, over %v", id, age, limit)
				}
			}
		})
	}
}
