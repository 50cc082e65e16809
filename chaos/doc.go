// Package chaos proves the relay's delivery guarantees (docs/guarantees.md) by
// fault injection against real processes: the relay binary built once from ./cmd/relay,
// real redis-server processes (relay/redistest), and fake upstreams over HTTP on
// loopback that record every request they receive, by event id.
//
// # Pieces
//
//   - harness.go: building the relay binary and the config of a Setup (all five
//     providers; Cardlytics in bearer mode over mutual TLS). relay.go: Relay, one `relay
//     serve` process that a test starts, kills (SIGKILL), pauses (SIGSTOP/SIGCONT) or
//     stops (SIGTERM) by its own PID, and whose /metrics it reads. upstream.go, ids.go:
//     Upstream, a fake provider that records every request (arrival, reply, status,
//     whether the relay had already given up on it, the event ids inside) and can be told
//     to fail, throttle, stall or hold a request, or to refuse some events of a
//     multi-event request while accepting the others (Reply.Refuse: a Brevo 207). The
//     fake Cardlytics answers like the real one: mutual TLS, a session token per customer
//     from startSession, 401 for a clientEvent request whose bearer token was not issued
//     for its customer, {"requestId":...} echoing X-CDLX-Request-Id. driver.go: Driver, a
//     bounded load generator that sends events with unique ids and resends after anything
//     but a 202, with the same Idempotency-Key; Inspector, a Redis client that reads dead
//     letters, backlogs and per-consumer pending entries.
//   - ledger.go: the Ledger of every id a relay answered 202 for, per provider, and the
//     Checker that compares it with what the upstreams saw and the dead-letter streams
//     hold (Report, printed as a table); exact.go: Report.Exact, the exact accounting of
//     a report against what a scenario justifies (Expect).
//   - scenarios_test.go: one test per scenario (kill -9 under load, kill between the
//     upstream's success and the ack, a relay stalled past the visibility timeout, Redis
//     crash and hang, a failing, a throttling and a slow provider, SIGTERM, and a negative
//     control that must report loss); poison_test.go: the refusals inside merged and
//     batched requests (poison) and the merging set-up; isolation_test.go: isolation
//     measured against a baseline in the same test.
//
// # Ids and the ledger
//
// Every event carries a unique id (Idempotency-Key), which the relay uses as its event id,
// and which the driver also embeds in the body where the upstream can see it:
//
//	ens/click, ens/impression      placement "p-<id>"
//	bannerflex/banner-events       campaignId "bnrflx-<id>"
//	linkrunner/capture-event       event_data {"rid":"<id>"}
//	linkrunner/capture-payment     payment_id (absent in the body: the relay fills in its event id)
//	brevo/events                   event_properties {"rid":"<id>"} (also inside /v3/events/batch)
//	brevo/track-event              properties {"rid":"<id>"}
//	cardlytics/client-events       clientEventMetadata.curationId "<id>/<k>/<n>" in each of
//	                               the message's n clientEvents (1 or 3), X-Relay-Customer-Id
//	                               one of 3 customers
//
// The ledger counts per event id, never per request: a Brevo batch delivers each of its
// events, except those its 207 refuses; a Cardlytics request merging several messages
// (one customer's) delivers each message once per complete set of its clientEvents (twice
// in one request is a duplicate). A message torn apart (not all its clientEvents in the
// request), or redelivered with another clientEventId (the relay derives it from the
// event id: it must not change), makes a malformed request, which fails the exact
// accounting.
//
// Per provider the Checker computes:
//
//	accepted    ids answered 202
//	delivered   accepted ids the upstream accepted (answered 2xx) at least once
//	dead        accepted ids in <prefix>:{P}:dead
//	lost        accepted − (delivered ∪ dead): must be 0
//	duplicates  2xx deliveries beyond the first per id (any id)
//	phantom     ids delivered that were never answered 202 (a 503 whose write went
//	            through, then abandoned by the client): allowed, reported
//
// and the latency from the accepted request to the first delivery (p50, p99).
//
// # Exact accounting
//
// "lost is 0" alone would let a relay that dead-letters healthy events pass. So every
// scenario also states an Expect and checks Report.Exact (exact.go): each id answered 202
// must be delivered exactly once, or duplicated only within the bound the scenario states
// from its crash window (in total, and per provider where it says so), or dead-lettered
// with the reason the scenario justifies for that id (only the poison events, reason
// permanent, in the scenarios that inject them; none elsewhere); every id in a
// dead-letter stream, accepted or not, must be one so justified, and every accepted id so
// justified must be dead-lettered, not delivered. Where a scenario can name the ids its
// crash window may duplicate (pending under a killed relay; first delivered around a
// Redis crash), a duplicate of any other id is over the bound, whatever the count.
// Anything else fails, with the offending ids listed by category: lost, duplicated (over
// the bound), unexpectedly dead-lettered, dead-lettered with the wrong reason, delivered
// although refused for good, malformed upstream requests. The checker has its own unit tests
// (exact_test.go, no processes), negative controls included; `go test -short ./chaos/`
// runs only those.
//
// A delivery is counted when the fake upstream decides to answer 2xx, even when the relay
// has already hung up (killed, or timed out): a real upstream would have processed the
// request too, so that is exactly the duplicate risk the guarantees bound.
//
// # Running
//
// The bounded scenarios run with the normal `go test ./...` (a few minutes in all). Long
// mode multiplies durations and loads:
//
//	CHAOS_LONG=1 go test ./chaos/ -run . -v -timeout 60m    (make chaos)
//
// CHAOS_LONG=N (N > 1) multiplies by N instead of the default 6. CHAOS_RACE_RELAY=1 builds
// the relay binary with the race detector. Everything listens on 127.0.0.1 only, every
// process a test starts is stopped by its PID in t.Cleanup, and every wait is bounded.
package chaos
