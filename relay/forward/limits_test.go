package forward_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventrelay/relay/config"
)

// Guarantee 6, in-flight half: however much is queued (and read ahead: the visibility
// timeout leaves room for it here), no more than `workers` requests are ever in flight to
// one provider, and the senders do run in parallel up to that.
func TestInFlightStaysUnderWorkers(t *testing.T) {
	e := newEnv(t, map[string]config.Delivery{
		"bannerflex": {Workers: 3, RateLimit: 1000, Timeout: time.Second, VisibilityTimeout: 8 * time.Second, MaxAttempts: 5, MaxAge: time.Hour, Backoff: config.Backoff{Base: 50 * ms, Max: 100 * ms}, Breaker: config.Breaker{Failures: 5, OpenFor: time.Second}},
	})
	e.up["bannerflex"].setScript(func(int) reply { return reply{status: 200, body: `{"ok":true}`, delay: 150 * time.Millisecond} })
	for range 24 {
		e.send("bannerflex/banner-events", bfBody)
	}
	e.settledRequests("bannerflex", 24, 15*time.Second)
	if p := e.up["bannerflex"].peakActive(); p != 3 {
		t.Fatalf("at most %d requests in flight at once, want exactly workers = 3", p)
	}
}

// Guarantee 6, rate half, over every window rather than on average: the reserved slots
// of three relays never put more than rate_limit requests into any second.
func TestRateLimitHoldsInEveryWindow(t *testing.T) {
	const rate = 20
	e := newEnvRelays(t, map[string]config.Delivery{
		"ens": {Workers: 4, RateLimit: 20, Timeout: time.Second, MaxAttempts: 5, MaxAge: time.Hour, Backoff: config.Backoff{Base: 50 * ms, Max: 100 * ms}, Breaker: config.Breaker{Failures: 5, OpenFor: time.Second}},
	}, 3)
	for range 60 {
		e.send("ens/impression", ensBody)
	}
	hits := e.settledRequests("ens", 60, 20*time.Second)
	// Slots are spaced by Redis's clock; the fake sees arrivals, which a loaded machine
	// delays by up to a few hundred ms each. Over the whole run the endpoints' jitter is
	// spread over 3 s: the average rate must hold within 5%. In every window rate+1
	// consecutive arrivals must still span 750 ms: a 250 ms allowance for one late
	// request, while a limit broken by sharing (three relays each at 20/s) would put 21
	// requests within about 350 ms.
	if avg := float64(len(hits)-1) / hits[len(hits)-1].at.Sub(hits[0].at).Seconds(); avg > rate*1.05 {
		t.Fatalf("%d requests at %.1f/s on average: over %d/s", len(hits), avg, rate)
	}
	for i := 0; i+rate < len(hits); i++ {
		if span := hits[i+rate].at.Sub(hits[i].at); span < 750*time.Millisecond {
			t.Fatalf("requests %d..%d (%d) within %v: over %d/s", i, i+rate, rate+1, span, rate)
		}
	}
}

// A read of a batching provider can hold more batch keys than there are senders (as Brevo
// with batch: true sends each legacy trackEvent alone; here the fake adapter batches by
// body, and every body differs): the extra batches go back to the
// stream, and every event is still sent exactly once, without stalling the provider.
func TestMoreBatchKeysThanSendersDoNotStall(t *testing.T) {
	e := newEnvWith(t, envOptions{
		delivery: map[string]config.Delivery{
			"brevo": {Workers: 2, RateLimit: 1000, Timeout: 500 * ms, MaxAttempts: 5, MaxAge: time.Hour, Backoff: config.Backoff{Base: 50 * ms, Max: 100 * ms}, Breaker: config.Breaker{Failures: 5, OpenFor: time.Second}},
		},
		batch: map[string]int{"brevo": 100},
	})
	e.up["brevo"].setScript(func(int) reply { return reply{status: 204, delay: 20 * time.Millisecond} })
	for i := range 60 {
		e.send("brevo/track-event", `{"email":"user`+strconv.Itoa(i)+`@example.com","event":"cart_updated"}`)
	}
	seen := map[string]int{}
	for _, h := range e.settledRequests("brevo", 60, 15*time.Second) {
		seen[h.body]++
	}
	if len(seen) != 60 {
		t.Fatalf("%d distinct events sent, want 60", len(seen))
	}
	for body, n := range seen {
		if n != 1 {
			t.Errorf("sent %d times: %s", n, body)
		}
	}
}

// Where the rate limit binds, slots are reserved after a read, so a relay's entries could
// wait for slots other relays took meanwhile, past the visibility timeout, and be taken
// over and sent twice. Four relays at 2 requests/s with a short visibility timeout: each
// event (its id in the request, as Linkrunner's payment_id) reaches the upstream exactly
// once.
func TestLowRateManyRelaysSendEachOnce(t *testing.T) {
	e := newEnvRelays(t, map[string]config.Delivery{
		"linkrunner": {Workers: 2, RateLimit: 2, Timeout: 300 * ms, VisibilityTimeout: 1200 * ms, MaxAttempts: 5, MaxAge: time.Hour, Backoff: config.Backoff{Base: 50 * ms, Max: 100 * ms}, Breaker: config.Breaker{Failures: 5, OpenFor: time.Second}},
	}, 4)
	ids := map[string]bool{}
	for range 12 {
		ids[e.send("linkrunner/capture-payment", `{"user_id":"user_12345","amount":1.5}`)] = true
	}
	sent := map[string]int{}
	for _, h := range e.settledRequests("linkrunner", 12, 20*time.Second) {
		id := h.header.Get(eventIDHeader)
		if !ids[id] || h.body != `{"user_id":"user_12345","amount":1.5}` {
			t.Fatalf("unexpected request %s for %q", h.body, id)
		}
		sent[id]++
	}
	for id := range ids {
		if sent[id] != 1 {
			t.Errorf("event %s sent %d times, want once", id, sent[id])
		}
	}
}

// A few heavy batch keys (Cardlytics customers), more than the requests one read may
// feed where the rate limit binds (2 here): each request must still carry most of a
// batch. The read's batches without a request are kept for the next turn, and reads are
// sized to fill every key's batch; before, the extra batches went back to the stream and
// reads shrank towards one or two events per request (this test then timed out). Every
// event is sent exactly once.
func TestFewHeavyBatchKeysFillTheirRequests(t *testing.T) {
	const total, maxBatch = 300, 50
	for _, keys := range []int{3, 5, 10} {
		t.Run(strconv.Itoa(keys)+" keys", func(t *testing.T) {
			e := newEnvWith(t, envOptions{
				delivery: map[string]config.Delivery{
					"ens": {Workers: 2, RateLimit: 2, Timeout: 500 * ms, VisibilityTimeout: 8 * time.Second, MaxAttempts: 5, MaxAge: time.Hour,
						Backoff: config.Backoff{Base: 50 * ms, Max: 100 * ms}, Breaker: config.Breaker{Failures: 5, OpenFor: time.Second}},
				},
				batch: map[string]int{"ens": maxBatch},
			})
			ids := map[string]bool{}
			for i := range total {
				ids[e.send("ens/impression", `{"customer":`+strconv.Itoa(i%keys)+`}`)] = true
			}
			var hits []hit
			e.eventually(60*time.Second, "every event sent", func() bool {
				hits = e.up["ens"].got()
				n := 0
				for _, h := range hits {
					n += len(strings.Split(h.header.Get(eventIDHeader), ","))
				}
				return n >= len(ids) && e.idle("ens")
			})
			sent := map[string]int{}
			for _, h := range hits {
				for _, id := range strings.Split(h.header.Get(eventIDHeader), ",") {
					sent[id]++
				}
			}
			for id := range ids {
				if sent[id] != 1 {
					t.Errorf("event %s sent %d times, want once", id, sent[id])
				}
			}
			if len(sent) != len(ids) {
				t.Errorf("%d distinct ids sent, want %d", len(sent), len(ids))
			}
			// The ideal is one request per full batch of a key; allow three times that
			// (a slow start while the backlog arrives, batches split over turns).
			ideal := max(keys, total/maxBatch)
			t.Logf("%d events of %d keys in %d requests (%.1f per request; ideal %d requests)",
				total, keys, len(hits), float64(total)/float64(len(hits)), ideal)
			if len(hits) > 3*ideal {
				t.Errorf("%d requests for %d events of %d keys, want at most %d", len(hits), total, keys, 3*ideal)
			}
		})
	}
}

// A batch kept for the next turn goes out at its slot: the next turn's read does not
// block (here 2 s) waiting for entries while the kept batch's slot is already taken.
func TestKeptBatchDoesNotWaitForTheRead(t *testing.T) {
	e := newEnvWith(t, envOptions{
		delivery: map[string]config.Delivery{
			"ens": {Workers: 2, RateLimit: 2, Timeout: 500 * ms, VisibilityTimeout: 8 * time.Second, MaxAttempts: 5, MaxAge: time.Hour,
				Backoff: config.Backoff{Base: 50 * ms, Max: 100 * ms}, Breaker: config.Breaker{Failures: 5, OpenFor: time.Second}},
		},
		batch: map[string]int{"ens": 50},
		block: 2 * time.Second,
	})
	e.send("ens/impression", `{"customer":"warm-up"}`)
	e.eventually(5*time.Second, "the warm-up request", func() bool { return len(e.up["ens"].got()) >= 1 })
	for i := range 3 { // one read of three keys for two requests: one batch kept
		e.send("ens/impression", `{"customer":`+strconv.Itoa(i)+`}`)
	}
	e.eventually(10*time.Second, "the three keys sent", func() bool { return len(e.up["ens"].got()) >= 4 })
	h := e.up["ens"].got()
	// Slots are 500 ms apart; a kept batch stuck behind the 2 s block would come ≥ 2 s
	// after the read's second request.
	if gap := h[3].at.Sub(h[2].at); gap > 1500*time.Millisecond {
		t.Errorf("the kept batch went out %v after the read's second request; slots are 500 ms apart", gap)
	}
	e.settledRequests("ens", 4, 10*time.Second)
}
