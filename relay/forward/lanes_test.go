package forward_test

import (
	"context"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/relay/queue"
)

const (
	v3Body    = `{"event_name":"cart_updated","identifiers":{"email_id":"jane@example.com"}}`
	trackBody = `{"email":"jane@example.com","event":"cart_updated"}`
)

// lanesEnv is brevo with two lanes (v3, tracker), a breaker that opens after 2 failures
// and stays open past the test.
func lanesEnv(t *testing.T) *env {
	d := fastDelivery()
	d.MaxAttempts = 100
	d.Breaker = config.Breaker{Failures: 2, OpenFor: 30 * time.Second}
	return newEnvWith(t, envOptions{delivery: map[string]config.Delivery{"brevo": d}, laned: map[string]bool{"brevo": true}})
}

// hitsTo counts the brevo upstream's requests to path.
func hitsTo(e *env, path string) int {
	n := 0
	for _, h := range e.up["brevo"].got() {
		if h.path == path {
			n++
		}
	}
	return n
}

// TestLaneBreakerOpensOnlyItsLane: a 401 from the legacy tracker (a bad ma_key) opens the
// tracker lane's breaker only; v3 events keep being delivered. The provider's breaker
// state, for the admin API and the gauge, is open (the worst lane's); the tracker's events
// wait for the fix, not dead-lettered.
func TestLaneBreakerOpensOnlyItsLane(t *testing.T) {
	e := lanesEnv(t)
	e.up["brevo"].setByPath(func(path string) reply {
		if path == "/brevo/track-event" {
			return reply{status: 401, body: `{"message":"Key not found"}`}
		}
		return reply{status: 204}
	})
	for range 3 {
		e.send("brevo/track-event", trackBody)
	}
	e.eventually(5*time.Second, "the tracker lane's breaker open", func() bool {
		for _, l := range e.logs.FilterMessage("circuit breaker").All() {
			if c := l.ContextMap(); c["lane"] == "tracker" && c["to"] == "open" {
				return true
			}
		}
		return false
	})
	v3KeepsDelivering(e, "open")
	// The breaker opens at the 2nd failure; a request another sender was already allowed
	// to make (the breaker was still closed then) may be in flight: at most workers-1 more.
	if n, most := hitsTo(e, "/brevo/track-event"), 2+fastDelivery().Workers-1; n < 2 || n > most {
		t.Errorf("%d tracker requests, want 2 to %d (the breaker opened after 2 failures)", n, most)
	}
	if s := e.fwd["brevo"].BreakerState(); s != gobreaker.StateOpen {
		t.Errorf("provider breaker state %v, want open (a lane is open)", s)
	}
	for _, l := range e.logs.FilterMessage("circuit breaker").All() {
		if c := l.ContextMap(); c["lane"] == "v3" {
			t.Errorf("the v3 lane's breaker changed: %v", c)
		}
	}
	if d := e.dead("brevo"); len(d) != 0 {
		t.Errorf("dead letters: %+v", d)
	}
}

// TestLaneRetryAfterPausesOnlyItsLane: a 429 with Retry-After from the tracker pauses the
// tracker lane; v3 events go on being delivered meanwhile.
func TestLaneRetryAfterPausesOnlyItsLane(t *testing.T) {
	e := lanesEnv(t)
	e.up["brevo"].setByPath(func(path string) reply {
		if path == "/brevo/track-event" {
			return reply{status: 429, header: map[string]string{"Retry-After": "30"}}
		}
		return reply{status: 204}
	})
	e.send("brevo/track-event", trackBody)
	e.eventually(5*time.Second, "the tracker's 429", func() bool { return hitsTo(e, "/brevo/track-event") == 1 })
	// Its outcome, a retry, is recorded after the pause was set: wait for that in Redis.
	e.eventually(5*time.Second, "the tracker event in the retry set", func() bool {
		ctx := context.Background()
		pend, _ := e.rdb.XPending(ctx, e.keys.Events("brevo"), queue.Group).Result()
		return e.rdb.ZCard(ctx, e.keys.Retry("brevo")).Val() == 1 && e.rdb.XLen(ctx, e.keys.Events("brevo")).Val() == 0 &&
			pend != nil && pend.Count == 0
	})
	v3KeepsDelivering(e, "paused")
	if n := hitsTo(e, "/brevo/track-event"); n != 1 {
		t.Errorf("%d tracker requests during its 30 s pause, want 1", n)
	}
	if s := e.fwd["brevo"].BreakerState(); s != gobreaker.StateClosed {
		t.Errorf("breaker %v after a 429", s)
	}
}

// v3KeepsDelivering sends five v3 events and waits until Redis counts all five delivered
// (the count is written with each ack, so none can be sent again), while the tracker lane
// is in state (open, paused); then the upstream must have exactly five v3 requests.
// The provider as a whole never goes idle here (the tracker's events wait), so this is
// the per-lane form of settledRequests.
func v3KeepsDelivering(e *env, state string) {
	e.t.Helper()
	for range 5 {
		e.send("brevo/events", v3Body)
	}
	e.eventually(5*time.Second, "v3 events delivered and acked while the tracker lane is "+state,
		func() bool { return e.statsTotal("brevo", "delivered") >= 5 })
	if n, d := hitsTo(e, "/brevo/events"), e.statsTotal("brevo", "delivered"); n != 5 || d != 5 {
		e.t.Fatalf("%d v3 requests and %d deliveries counted in Redis, want exactly 5 each", n, d)
	}
}
