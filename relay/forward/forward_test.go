package forward_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/config"
)

const (
	ensBody = `{"campaignId":1,"placement":"header_banner"}`
	bfBody  = `{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","event":"impression"}`
)

func TestEveryRouteDeliveredOnce(t *testing.T) {
	// A generous upstream timeout: "exactly one request each" must not depend on the fake
	// answering within fastDelivery's 500 ms on a loaded machine (a timed-out attempt the
	// upstream processed is a legitimate duplicate, Guarantee 4, and not what this tests).
	d := fastDelivery()
	d.Timeout, d.VisibilityTimeout = 5*time.Second, 15*time.Second
	e := newEnv(t, map[string]config.Delivery{"linkrunner": d, "ens": d, "brevo": d, "bannerflex": d})
	cases := []struct{ route, body, provider, secret string }{
		{"linkrunner/capture-event", `{"event_name":"product_viewed","user_id":"user_12345"}`, "linkrunner", lrKey},
		{"linkrunner/capture-payment", `{"user_id":"user_12345","amount":149.99}`, "linkrunner", lrKey},
		{"ens/impression", ensBody, "ens", ensKey},
		{"ens/click", ensBody, "ens", ensKey},
		{"brevo/events", `{"event_name":"cart_updated","identifiers":{"email_id":"jane@example.com"}}`, "brevo", bvKey},
		{"brevo/track-event", `{"email":"jane@example.com","event":"cart_updated"}`, "brevo", bvKey},
		{"bannerflex/banner-events", bfBody, "bannerflex", bfKey},
	}
	ids := map[string]string{}
	for _, c := range cases {
		ids[c.route] = e.send(c.route, c.body)
	}
	for p, n := range map[string]int{"linkrunner": 2, "ens": 2, "brevo": 2, "bannerflex": 1} {
		e.settledRequests(p, n, 20*time.Second)
	}
	seen := map[string]int{}
	for _, p := range []string{"linkrunner", "ens", "brevo", "bannerflex"} {
		for _, h := range e.up[p].got() {
			seen[p+h.path]++
		}
	}
	// The fake adapter posts to /<route>; the real adapters' paths, headers and bodies
	// are the providers package's conformance tests.
	for _, c := range cases {
		path := "/" + c.route
		if seen[c.provider+path] != 1 {
			t.Errorf("%s: %d requests to %s, want exactly 1", c.route, seen[c.provider+path], path)
		}
		for _, h := range e.up[c.provider].got() {
			if h.path != path {
				continue
			}
			if h.header.Get(secretHeader) != c.secret {
				t.Errorf("%s: header %s = %q", c.route, secretHeader, h.header.Get(secretHeader))
			}
			if h.body != c.body || !json.Valid([]byte(h.body)) {
				t.Errorf("%s: body %q, want %q", c.route, h.body, c.body)
			}
			if h.header.Get(eventIDHeader) != ids[c.route] {
				t.Errorf("%s: request for event %q, want the event id %q", c.route, h.header.Get(eventIDHeader), ids[c.route])
			}
		}
	}
	for _, p := range []string{"linkrunner", "ens", "brevo", "bannerflex"} {
		if d := e.dead(p); len(d) != 0 {
			t.Errorf("%s: %d dead letters: %v", p, len(d), d)
		}
	}
}

func TestRetriesThenDelivers(t *testing.T) {
	e := newEnv(t, nil)
	e.up["bannerflex"].setScript(func(n int) reply {
		if n < 3 {
			return reply{status: 500, body: `{"error":"boom"}`}
		}
		return reply{status: 200, body: `{"ok":true}`}
	})
	e.send("bannerflex/banner-events", bfBody)
	// Idle: nothing is left in the stream, pending or in the retry set, so no further
	// request can come; the delivery's stats were written with its ack, atomically.
	e.settledRequests("bannerflex", 4, 10*time.Second) // three 500s, then 200
	if len(e.dead("bannerflex")) != 0 {
		t.Fatal("dead-lettered")
	}
	if s := e.fwd["bannerflex"].BreakerState(); s != gobreaker.StateClosed {
		t.Fatalf("breaker %v after recovery", s)
	}
	// The deployment-wide per-minute counters saw the same.
	totals := map[string]int64{}
	for _, k := range e.rdb.Keys(context.Background(), e.keys.StatsPrefix("bannerflex")+"*").Val() {
		for f, v := range e.rdb.HGetAll(context.Background(), k).Val() {
			n, _ := strconv.ParseInt(v, 10, 64)
			totals[f] += n
		}
	}
	if totals["delivered"] != 1 || totals["retried"] != 3 || totals["dead"] != 0 {
		t.Fatalf("stats %v, want delivered 1, retried 3", totals)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	// One worker: a request already in flight when the 429 arrives cannot be recalled.
	e := newEnv(t, map[string]config.Delivery{"ens": {Workers: 1, RateLimit: 200, Timeout: 500 * ms, MaxAttempts: 6, MaxAge: time.Hour, Backoff: config.Backoff{Base: 50 * ms, Max: 200 * ms}, Breaker: config.Breaker{Failures: 3, OpenFor: time.Second}}})
	e.up["ens"].setScript(func(n int) reply {
		if n == 0 {
			return reply{status: 429, header: map[string]string{"Retry-After": "2"}}
		}
		return reply{status: 200, body: `{"status":"success"}`}
	})
	e.send("ens/click", ensBody)
	e.send("ens/click", ensBody)
	hits := e.settledRequests("ens", 3, 10*time.Second) // one 429, two deliveries
	for _, h := range hits[1:] {
		if gap := h.at.Sub(hits[0].at); gap < 2*time.Second {
			t.Fatalf("request %v after the 429 asked for 2 s", gap)
		}
	}
}

// A delay the adapter read from the reply (here Retry-After; Brevo's
// x-sib-ratelimit-reset is the providers package's conformance tests) holds back the
// retry of a lone event, which then succeeds with a 204.
func TestRateLimitResetIsHonoured(t *testing.T) {
	e := newEnv(t, nil)
	e.up["brevo"].setScript(func(n int) reply {
		if n == 0 {
			return reply{status: 429, header: map[string]string{"Retry-After": "2"}}
		}
		return reply{status: 204}
	})
	e.send("brevo/track-event", `{"email":"jane@example.com","event":"cart_updated"}`)
	hits := e.settledRequests("brevo", 2, 10*time.Second)
	if hits[1].at.Sub(hits[0].at) < 2*time.Second {
		t.Fatalf("hits %d, gap %v: want a retry no sooner than 2 s", len(hits), hits[len(hits)-1].at.Sub(hits[0].at))
	}
}

func TestPermanentErrorDeadLettersAtOnce(t *testing.T) {
	e := newEnv(t, nil)
	e.up["ens"].setScript(func(int) reply {
		return reply{status: 400, body: `{"status":"error","message":"campaignId is required; key was ` + ensKey + `"}`}
	})
	id := e.send("ens/click", ensBody)
	e.eventually(5*time.Second, "dead letter", func() bool { return len(e.dead("ens")) == 1 })
	d := e.dead("ens")[0]
	if d.Message.ID != id || d.Reason != "permanent" || d.Status != 400 || d.Attempts != 1 || d.Message.Route != "ens/click" ||
		string(d.Message.Body) != ensBody {
		t.Fatalf("dead letter %+v", d)
	}
	if strings.Contains(d.Error, ensKey) || !strings.Contains(d.Error, "campaignId is required") {
		t.Fatalf("dead letter error %q: want the upstream message with the secret redacted", d.Error)
	}
	e.settledRequests("ens", 1, 5*time.Second) // a permanent error is not retried
	if s := e.fwd["ens"].BreakerState(); s != gobreaker.StateClosed {
		t.Fatalf("a 400 changed the breaker to %v", s)
	}
	assertNoSecrets(t, e)
}

// A configuration fault (a redirect: base_url moved; a 401: the relay's key) is not the
// event's fault: it is retried, counts against the breaker, and each failed attempt is
// logged at Warn with the provider and the adapter's error text naming the setting; the
// event is delivered once the fault is fixed, never dead-lettered on the way.
func TestConfigFaultIsRetriedNotDeadLettered(t *testing.T) {
	e := newEnv(t, map[string]config.Delivery{
		"ens": {Workers: 1, RateLimit: 200, Timeout: 500 * ms, MaxAttempts: 10, MaxAge: time.Hour, Backoff: config.Backoff{Base: 20 * ms, Max: 50 * ms}, Breaker: config.Breaker{Failures: 2, OpenFor: 300 * ms}},
	})
	e.up["ens"].setScript(func(n int) reply {
		switch n {
		case 0:
			return reply{status: 301, header: map[string]string{"Location": "https://moved.example/"}}
		case 1:
			return reply{status: 401, body: `{"message":"unauthorized"}`}
		case 2:
			return reply{status: 307, header: map[string]string{"Location": "https://moved.example/"}}
		}
		return reply{status: 200, body: `{"status":"success"}`}
	})
	e.send("ens/click", ensBody)
	e.settledRequests("ens", 4, 10*time.Second) // 301, 401, 307, 200
	if d := e.dead("ens"); len(d) != 0 {
		t.Fatalf("dead-lettered: %+v", d)
	}
	opened := false
	for _, l := range e.logs.FilterMessage("circuit breaker").All() {
		opened = opened || (l.ContextMap()["provider"] == "ens" && l.ContextMap()["to"] == "open")
	}
	if !opened {
		t.Error("the breaker never opened: the faults did not count as failures")
	}
	var warned []string
	for _, l := range e.logs.FilterMessage("attempt failed, will retry").All() {
		if c := l.ContextMap(); c["provider"] == "ens" && l.Level == zap.WarnLevel {
			warned = append(warned, fmt.Sprint(c["error"]))
		}
	}
	if len(warned) != 3 || !strings.Contains(warned[0], "base_url") || !strings.Contains(warned[1], "key") ||
		!strings.Contains(warned[2], "base_url") {
		t.Fatalf("retry warnings %q: want one per failed attempt, each naming the setting", warned)
	}
}

func TestMaxAttemptsAndMaxAge(t *testing.T) {
	e := newEnv(t, map[string]config.Delivery{
		"bannerflex": {Workers: 1, RateLimit: 200, Timeout: 500 * ms, MaxAttempts: 3, MaxAge: time.Hour, Backoff: config.Backoff{Base: 20 * ms, Max: 50 * ms}, Breaker: config.Breaker{Failures: 100, OpenFor: time.Second}},
		"ens":        {Workers: 1, RateLimit: 200, Timeout: 500 * ms, MaxAttempts: 100, MaxAge: time.Second, Backoff: config.Backoff{Base: 300 * ms, Max: 300 * ms}, Breaker: config.Breaker{Failures: 100, OpenFor: time.Second}},
	})
	e.up["bannerflex"].setScript(func(int) reply { return reply{status: 503} })
	e.up["ens"].setScript(func(int) reply { return reply{status: 503} })
	e.send("bannerflex/banner-events", bfBody)
	e.send("ens/click", ensBody)
	e.eventually(10*time.Second, "bannerflex dead letter", func() bool { return len(e.dead("bannerflex")) == 1 })
	if d := e.dead("bannerflex")[0]; d.Reason != "max_attempts" || d.Attempts != 3 || d.Status != 503 {
		t.Fatalf("dead letter %+v", d)
	}
	e.settledRequests("bannerflex", 3, 5*time.Second) // max_attempts
	e.eventually(10*time.Second, "ens dead letter", func() bool { return len(e.dead("ens")) == 1 })
	if d := e.dead("ens")[0]; d.Reason != "max_age" {
		t.Fatalf("dead letter %+v", d)
	}
	if !e.idle("ens") || !e.idle("bannerflex") {
		t.Fatal("entries left behind")
	}
}

func TestBreakerOpensAndIsolatesProvider(t *testing.T) {
	e := newEnv(t, map[string]config.Delivery{
		"ens": {Workers: 2, RateLimit: 20, Timeout: 300 * ms, MaxAttempts: 100, MaxAge: time.Hour, Backoff: config.Backoff{Base: 50 * ms, Max: 100 * ms}, Breaker: config.Breaker{Failures: 3, OpenFor: time.Second}},
	})
	var down atomic.Bool
	down.Store(true)
	e.up["ens"].setScript(func(int) reply {
		if down.Load() {
			return reply{status: 503}
		}
		return reply{status: 200, body: `{"status":"success"}`}
	})
	// Baseline: how long 20 BannerFlex events take on this (busy) machine with ENS idle.
	bannerflex20 := func(wantTotal int) time.Duration {
		start := time.Now()
		for range 20 {
			e.send("bannerflex/banner-events", bfBody)
		}
		e.settledRequests("bannerflex", wantTotal, 15*time.Second)
		return time.Since(start)
	}
	baseline := bannerflex20(20)
	for range 30 {
		e.send("ens/click", ensBody)
	}
	e.eventually(5*time.Second, "breaker open", func() bool { return e.fwd["ens"].BreakerState() == gobreaker.StateOpen })
	// While ENS is down, BannerFlex delivers as usual: within a few baselines (a stall
	// behind ENS would cost its timeouts or open periods, seconds).
	if took := bannerflex20(40); took > 3*baseline+time.Second {
		t.Errorf("20 bannerflex events took %v next to a broken provider, %v with it idle", took, baseline)
	}
	// Open breaker: one probe per open period (each half-open state admits one request)
	// reaches the upstream. Count the half-open states from the breaker's log over two
	// open periods; a worker that passed the breaker just before it opened may add one
	// request each.
	halfOpens := func() int {
		n := 0
		for _, l := range e.logs.FilterMessage("circuit breaker").All() {
			if c := l.ContextMap(); c["provider"] == "ens" && c["to"] == "half-open" {
				n++
			}
		}
		return n
	}
	before, ho := len(e.up["ens"].got()), halfOpens()
	e.eventually(10*time.Second, "two more open periods", func() bool { return halfOpens() >= ho+2 })
	extra := len(e.up["ens"].got()) - before // read before the probes: each request follows its half-open
	if probes := halfOpens() - ho; extra > probes+2 {
		t.Fatalf("%d requests while the breaker was open, over %d half-open probes (+2 in flight)", extra, probes)
	}
	// Recovery: the backlog drains, within the rate limit (20/s).
	down.Store(false)
	recovered := time.Now()
	e.eventually(15*time.Second, "ens backlog drained", func() bool { return e.idle("ens") })
	var ok []time.Time
	for _, h := range e.up["ens"].got() {
		if h.at.After(recovered) {
			ok = append(ok, h.at)
		}
	}
	if len(ok) < 30 {
		t.Fatalf("%d deliveries after recovery, want 30", len(ok))
	}
	if span := ok[len(ok)-1].Sub(ok[0]); span < time.Duration(float64(len(ok)-1)/20*float64(time.Second))*9/10 {
		t.Fatalf("%d requests in %v: faster than the 20/s rate limit", len(ok), span)
	}
	if len(e.dead("ens")) != 0 {
		t.Fatal("events dead-lettered during an outage")
	}
}

func TestRateLimitAndWorkersBound(t *testing.T) {
	e := newEnv(t, map[string]config.Delivery{
		"bannerflex": {Workers: 3, RateLimit: 50, Timeout: time.Second, MaxAttempts: 5, MaxAge: time.Hour, Backoff: config.Backoff{Base: 50 * ms, Max: 100 * ms}, Breaker: config.Breaker{Failures: 5, OpenFor: time.Second}},
	})
	e.up["bannerflex"].setScript(func(int) reply { return reply{status: 200, body: `{"ok":true}`, delay: 80 * time.Millisecond} })
	for range 40 {
		e.send("bannerflex/banner-events", bfBody)
	}
	hits := e.settledRequests("bannerflex", 40, 10*time.Second)
	// Workers bound concurrency: with 80 ms replies and 3 workers, at most 3 overlap.
	for i := range hits {
		overlap := 0
		for j := range hits {
			if hits[j].at.Before(hits[i].at.Add(1)) && hits[j].at.After(hits[i].at.Add(-80*time.Millisecond)) {
				overlap++
			}
		}
		if overlap > 3 {
			t.Fatalf("%d requests within 80 ms of one another: more than 3 workers in flight", overlap)
		}
	}
	if span := hits[len(hits)-1].at.Sub(hits[0].at); span < 700*time.Millisecond {
		t.Fatalf("40 requests in %v: over the 50/s limit", span)
	}
}

func assertNoSecrets(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	var dump strings.Builder
	for _, k := range e.rdb.Keys(ctx, "*").Val() {
		dump.WriteString(k)
		switch e.rdb.Type(ctx, k).Val() {
		case "stream":
			for _, m := range e.rdb.XRange(ctx, k, "-", "+").Val() {
				fmt.Fprint(&dump, m.Values) // raw: an envelope is binary
			}
		case "zset":
			dump.WriteString(strings.Join(e.rdb.ZRange(ctx, k, 0, -1).Val(), "\n"))
		}
	}
	for _, l := range e.logs.All() {
		b, _ := json.Marshal(l.ContextMap())
		dump.WriteString(l.Message)
		dump.Write(b)
	}
	for _, s := range fwdSecrets {
		if strings.Contains(dump.String(), s) {
			t.Errorf("secret %q found in Redis or logs", s)
		}
	}
}

// Guarantee 6 holds for the deployment, not per process: three relays together stay
// under one provider's rate_limit.
func TestRateLimitIsSharedAcrossRelays(t *testing.T) {
	e := newEnvRelays(t, map[string]config.Delivery{
		"bannerflex": {Workers: 2, RateLimit: 20, Timeout: time.Second, MaxAttempts: 5, MaxAge: time.Hour, Backoff: config.Backoff{Base: 50 * ms, Max: 100 * ms}, Breaker: config.Breaker{Failures: 5, OpenFor: time.Second}},
	}, 3)
	for range 40 {
		e.send("bannerflex/banner-events", bfBody)
	}
	hits := e.settledRequests("bannerflex", 40, 15*time.Second)
	// 40 requests at 20/s take at least 39/20 s; per-process limiters would allow 3× that rate.
	if span := hits[len(hits)-1].at.Sub(hits[0].at); span < 1700*time.Millisecond {
		t.Fatalf("40 requests from 3 relays in %v: over the shared 20/s limit", span)
	}
}
