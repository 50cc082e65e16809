package forward_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/relay/queue"
)

// redisMillis reads a unix-ms value (a shared pause's or breaker's end) from key; ok is
// false when the key is absent.
func (e *env) redisMillis(key string) (t time.Time, ok bool) {
	e.t.Helper()
	v, err := e.rdb.Get(context.Background(), key).Result()
	if err != nil {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		e.t.Fatalf("%s holds %q, not unix ms", key, v)
	}
	return time.UnixMilli(n), true
}

// redisNow is Redis's clock (the one the shared keys are written by).
func (e *env) redisNow() time.Time {
	e.t.Helper()
	now, err := e.rdb.Time(context.Background()).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return now
}

// hitsIn counts the upstream requests that arrived in [from, to).
func hitsIn(hits []hit, from, to time.Time) int {
	n := 0
	for _, h := range hits {
		if !h.at.Before(from) && h.at.Before(to) {
			n++
		}
	}
	return n
}

// TestSharedBreakerOneProbeDeploymentWide: three relays deliver one provider to an
// upstream that keeps failing. Once a breaker opens (its end recorded in Redis), the
// deployment sends at most one probe per open period, not one per relay: over three open
// periods from the first open period's end, at most three requests. Then the upstream
// recovers and every event is delivered.
func TestSharedBreakerOneProbeDeploymentWide(t *testing.T) {
	const openFor = 1500 * ms
	d := config.Delivery{Workers: 1, RateLimit: 50, Timeout: 300 * ms, MaxAttempts: 1000, MaxAge: time.Hour,
		Backoff: config.Backoff{Base: 20 * ms, Max: 50 * ms}, Breaker: config.Breaker{Failures: 3, OpenFor: openFor}}
	e := newEnvRelays(t, map[string]config.Delivery{"ens": d}, 3)
	e.up["ens"].setScript(func(int) reply { return reply{status: 503, body: `{"error":"down"}`} })
	const events = 40
	for i := range events {
		e.send("ens/event", `{"n":`+strconv.Itoa(i)+`}`)
	}
	key := e.keys.Breaker("ens", "")
	var firstEnd time.Time
	e.eventually(10*time.Second, "a shared breaker open in Redis", func() bool {
		var ok bool
		firstEnd, ok = e.redisMillis(key)
		return ok
	})
	windowEnd := firstEnd.Add(3 * openFor)
	e.eventually(20*time.Second, "three open periods past the first", func() bool { return !e.redisNow().Before(windowEnd) })
	n := hitsIn(e.up["ens"].got(), firstEnd, windowEnd)
	t.Logf("requests in the 3 open periods after the first: %d (first open period ended at %v)", n, firstEnd.Format(time.StampMilli))
	if n > 3 {
		t.Fatalf("%d requests reached the failing upstream over 3 open periods of the shared breaker; want at most 3 probes (one per period, deployment-wide)", n)
	}
	if n < 1 {
		t.Fatal("no probe at all over 3 open periods: the breaker never half-opened")
	}

	e.up["ens"].setScript(nil)
	e.eventually(30*time.Second, "every event delivered after recovery", func() bool {
		return e.statsTotal("ens", "delivered") == events && e.idle("ens")
	})
	if _, ok := e.redisMillis(key); ok {
		t.Error("the shared breaker is still in Redis after a successful probe")
	}
}

// TestSharedRetryAfterPausesAllRelays: one relay meets a 429 with Retry-After; the pause
// it writes to Redis stops the other two as well. During the Redis-recorded pause the
// upstream sees at most the one job each other relay already held when the 429 came
// (room: one job per relay here), never a stream of requests; then all resume and
// deliver everything.
func TestSharedRetryAfterPausesAllRelays(t *testing.T) {
	d := config.Delivery{Workers: 1, RateLimit: 30, Timeout: 300 * ms, MaxAttempts: 10, MaxAge: time.Hour,
		Backoff: config.Backoff{Base: 20 * ms, Max: 50 * ms}, Breaker: config.Breaker{Failures: 100, OpenFor: time.Second}}
	e := newEnvRelays(t, map[string]config.Delivery{"linkrunner": d}, 3)
	const limited = 12 // the request answered 429
	e.up["linkrunner"].setScript(func(n int) reply {
		if n == limited {
			return reply{status: 429, header: map[string]string{"Retry-After": "2"}, body: `{"error":"slow down"}`}
		}
		return reply{status: 200, body: `{"ok":true}`}
	})
	const events = 120
	for i := range events {
		e.send("linkrunner/event", `{"n":`+strconv.Itoa(i)+`}`)
	}
	var until time.Time
	e.eventually(15*time.Second, "the shared pause in Redis", func() bool {
		var ok bool
		until, ok = e.redisMillis(e.keys.Pause("linkrunner", ""))
		return ok
	})
	e.eventually(30*time.Second, "every event delivered after the pause", func() bool {
		return e.statsTotal("linkrunner", "delivered") == events && e.idle("linkrunner")
	})
	hits := e.up["linkrunner"].got()
	if len(hits) <= limited || hits[limited].status != 429 {
		t.Fatalf("the upstream's request %d was not the 429", limited)
	}
	at := hits[limited].at
	during := hitsIn(hits, at.Add(time.Nanosecond), until)
	after := hitsIn(hits, until, time.Now().Add(time.Hour))
	t.Logf("pause %v..%v: %d requests during it, %d after", at.Format(time.StampMilli), until.Format(time.StampMilli), during, after)
	if until.Sub(at) < time.Second {
		t.Fatalf("the shared pause ends %v after the 429; want about the 2 s Retry-After", until.Sub(at))
	}
	if during > 2 {
		t.Fatalf("%d requests during the shared Retry-After pause; want at most the 2 jobs the other relays held", during)
	}
	if after == 0 {
		t.Fatal("no request after the pause: delivery did not resume")
	}
}

// gaugeValue reads a gauge of the env's registry for provider p (-1: absent).
func (e *env) gaugeValue(name, p string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "provider" && l.GetValue() == p {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

// TestBreakerOpenedElsewhereStopsThisRelay: another relay's open breaker (written to
// Redis, and seen by this relay, before any event is queued) stops this one, whose own breaker never saw a
// failure: no request before the Redis-recorded end, the state and gauge say open
// meanwhile; then this relay probes, the upstream is healthy, the shared breaker is
// deleted and everything is delivered.
func TestBreakerOpenedElsewhereStopsThisRelay(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	if err := queue.OpenBreaker(ctx, e.rdb, e.keys, "ens", "", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	end, ok := e.redisMillis(e.keys.Breaker("ens", ""))
	if !ok {
		t.Fatal("no shared breaker written")
	}
	// A turn already under way when the breaker was written may still send what it
	// reads: send the events once this relay has seen the shared breaker.
	e.eventually(5*time.Second, "this relay's breaker state open", func() bool {
		return e.fwd["ens"].BreakerState() == gobreaker.StateOpen
	})
	const events = 10
	for i := range events {
		e.send("ens/event", `{"n":`+strconv.Itoa(i)+`}`)
	}
	if g := e.gaugeValue("relay_breaker_state", "ens"); g != 2 && e.redisNow().Before(end) {
		t.Errorf("relay_breaker_state{provider=ens} = %v while the shared breaker is open; want 2", g)
	}
	e.eventually(30*time.Second, "every event delivered after the shared open period", func() bool {
		return e.statsTotal("ens", "delivered") == events && e.idle("ens")
	})
	hits := e.up["ens"].got()
	if n := hitsIn(hits, time.Time{}, end); n != 0 {
		t.Fatalf("%d requests before the shared breaker's open period ended; want 0", n)
	}
	if _, ok := e.redisMillis(e.keys.Breaker("ens", "")); ok {
		t.Error("the shared breaker is still in Redis after a successful probe")
	}
	if s := e.fwd["ens"].BreakerState(); s != gobreaker.StateClosed {
		t.Errorf("breaker %v after recovery", s)
	}
}

// TestPauseSetElsewhereHoldsThisRelay: another relay's Retry-After pause (in Redis, and
// seen by this relay, before any event is queued) holds this relay's requests until its Redis-recorded end:
// 0 requests before it, all delivered after.
func TestPauseSetElsewhereHoldsThisRelay(t *testing.T) {
	e := newEnv(t, nil)
	if err := queue.Pause(context.Background(), e.rdb, e.keys, "linkrunner", "", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	until, ok := e.redisMillis(e.keys.Pause("linkrunner", ""))
	if !ok {
		t.Fatal("no shared pause written")
	}
	// A turn already under way when the pause was written may still send what it reads:
	// send the events once this relay has seen the shared pause.
	e.eventually(5*time.Second, "this relay paused", func() bool { return e.fwd["linkrunner"].PausedFor() > 0 })
	const events = 10
	for i := range events {
		e.send("linkrunner/event", `{"n":`+strconv.Itoa(i)+`}`)
	}
	e.eventually(30*time.Second, "every event delivered after the shared pause", func() bool {
		return e.statsTotal("linkrunner", "delivered") == events && e.idle("linkrunner")
	})
	if n := hitsIn(e.up["linkrunner"].got(), time.Time{}, until); n != 0 {
		t.Fatalf("%d requests before the shared pause ended; want 0", n)
	}
}
