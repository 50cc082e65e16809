// Package admin is the operator listener, kept apart from the public ingest listener so
// it can stay on a private address: /healthz, /readyz, /metrics, the admin API under
// /admin/api/ and the delivery page at /admin/. It also holds the scrape-time queue
// metrics (Collector).
//
// This package is HTTP only: every Redis read and write, and the stored format of entries,
// retry members and dead letters, are package queue's (queue.Depths, ListDead, GetDead,
// ReplayDead, PurgeDead, ...).
//
// # Probes and metrics (no token)
//
//	GET /healthz   200 {"ok":true} while the process is up
//	GET /readyz    200 {"ok":true}; 503 {"ok":false,"reason":"draining"} once shutdown
//	               started, 503 {"ok":false,"reason":"redis unreachable"} when Redis does
//	               not answer PING within 1 s
//	GET /metrics   Prometheus text. Collector adds, read from Redis at scrape time:
//	               relay_queue_depth{provider,state} (state: ready, pending, retry, dead),
//	               relay_oldest_undelivered_seconds{provider} and
//	               relay_queue_scrape_errors_total{provider}
//
// # The page (no token)
//
// GET /admin/ and GET /admin/index.html serve the embedded, self-contained page with
// Cache-Control: no-store and the Content-Security-Policy
// "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:".
// The page asks the operator for the token and sends it with every API call; the page
// itself holds nothing secret.
//
// # Trace and live tail (token required; trace.go, tail.go)
//
// GET /admin/api/events/{provider}/{id} answers what happened to one event (EventTrace:
// arrival, attempts, where it is now) from the provider's trace (queue.ReadTrace) and a
// bounded scan of its stream per shard, its hashed shard first (queue.FindQueued): even a
// settled event may be queued again (replayed, or resent after its dedupe marker expired). GET
// /admin/api/tail streams, as Server-Sent Events, this process's Tail: an in-memory ring
// fed by the ingest queue's wrapper (Tail.Ingested) and the forwarders' recorded outcomes
// (Tail.Observe, a forward.Observer); publishing never waits for a reader; a shutdown
// ends every stream at once. They are routed
// beside the API's own mux (liveAPI), behind the same token check.
//
// # The API (token required)
//
// Every /admin/api/ request needs "Authorization: Bearer <admin.token>". The token is
// compared in constant time (both sides hashed, then subtle.ConstantTimeCompare). Without
// it, or with a wrong one, the reply is 401 with WWW-Authenticate: Bearer. An empty
// admin.token refuses every call. Replies are JSON (Content-Type: application/json) and
// their shapes below are stable: the page and `relay status` / `relay dlq` depend on them.
// Go types for them are in schema.go. Errors are
//
//	{"ok":false,"error":{"code":"unauthorized","message":"..."}}
//
// with code unauthorized (401), unknown_provider (404), not_found (404), bad_request
// (400: bad JSON, unknown field, bad id or limit), unavailable (503: Redis failed or timed
// out). A provider is known when it is enabled in the configuration.
//
// GET /admin/api/providers
//
//	{"providers":[{"name":"ens","breaker":"closed","ready":3,"pending":1,"retry":2,"dead":4,
//	  "oldest_undelivered_seconds":12.5,"last_minute":{"delivered":10,"retried":2,"dead":1}}]}
//
// One object per enabled provider, in configuration order. breaker is this process's
// circuit breaker for the provider: "closed", "half-open", "open", or "unknown" when this
// process runs no forwarder for it; for a provider with lanes (forward.Lanes), the worst
// lane's. ready is the events stream's length minus its pending
// count (entries not yet read by any consumer); pending is the consumer group's pending
// count (taken by a worker, not yet settled); retry the retry set's size; dead the
// dead-letter stream's length.
//
// oldest_undelivered_seconds is an approximation, cheap enough for every scrape: the age
// (by Redis's clock) of the oldest received_at among the first entry of the events stream
// and the first 100 members of the retry set by due time. An older event further down the
// retry set (one due late after a long Retry-After) is not seen. 0 when nothing is
// undelivered.
//
// last_minute estimates the deployment-wide delivery outcomes of the last 60 s from the
// per-minute stats hashes the forwarders keep (one hash per unix minute of Redis's clock):
// the current minute's counts plus the previous minute's weighted by the part of it that
// lies within the last 60 s (previous × (60 − seconds into the current minute) / 60,
// rounded).
//
// GET /admin/api/series?provider=P[&minutes=N]
//
//	{"provider":"ens","now":"2026-12-02T21:40:12.345Z","points":[{"minute":"2026-12-02T20:41:00.000Z",
//	  "delivered":5,"retried":2,"dead":1,"depth":{"ready":0,"pending":0,"retry":0,"dead":3}}, ...]}
//
// One point per minute of Redis's clock, oldest first, N of them (default and at most
// 60), the last the current minute: the deployment's outcomes from the stats hashes, and
// the queue depth sampled in that minute (null when no relay sampled it). Every admin
// Server samples while it runs (Options.SampleEvery, default 15 s; queue.SampleDepths):
// the first relay in a minute records it. provider is required (400), and must be enabled
// (404).
//
// GET /admin/api/dead/{provider}?limit=N
//
//	{"provider":"ens","total":4,"dead":[{"stream_id":"1718000000000-0",
//	  "events_stream_id":"1717999990000-0","id":"evt_1","route":"ens/click","source":"site:shop",
//	  "reason":"permanent","status":400,"attempts":1,"error":"...",
//	  "dead_at":"2024-06-10T06:13:20.000Z","received_at":"2024-06-10T06:13:10.000Z"}]}
//
// Newest first; limit defaults to 50 and is capped at 1000. total is the dead-letter
// stream's length. stream_id is the dead letter's id in the dead-letter stream: the handle
// that the calls below take. events_stream_id is the id the event had in the events
// stream. reason is permanent, max_attempts, max_age, trimmed or malformed; status is the
// last HTTP status (0: no reply). dead_at and received_at are RFC 3339 in UTC with
// milliseconds, "" when unknown (a trimmed entry has no ingest fields). The list never
// holds the event body.
//
// GET /admin/api/dead/{provider}/{stream_id}
//
// One dead letter: the list fields plus "body" (the validated event JSON as stored, with
// e-mail addresses masked as j***@example.com; a replay still sends the original), "ip",
// "ua", "country" and "customer". 404 not_found when absent.
//
// POST /admin/api/dead/{provider}/replay
//
// Body: none or {} replays every dead letter present when the call started (oldest
// first, in pages of 500, so a huge dead-letter stream never sits in memory);
// {"ids":["<stream_id>",...]} replays those (at most 10000; [] replays nothing). For
// chunked replays (the CLI), {"limit":N,"after":"<stream_id>","until":"<stream_id>"}
// looks at no more than N dead letters after `after` (exclusive) up to `until`
// (inclusive; default: the newest one now). Reply:
//
//	{"replayed":3,"missing":0,"skipped":0,"last_id":"1718000000000-0","until":"1718000000005-0","done":true}
//
// Each entry is replayed by one atomic Lua call: if the dead letter still exists, the
// event as it was ingested (its envelope; for a dead letter of earlier relays its ingest
// fields id, route, body, at, ip, ua, country, customer, src) is appended to the events
// stream, so the attempt count starts again from zero, and the dead letter is deleted. A dead letter already gone counts as missing, so replaying twice never
// duplicates an event. A dead letter without id, route, body or at (reason trimmed) cannot
// be delivered: it is skipped and stays. last_id is the last dead letter looked at (pass
// it as `after` for the next chunk), until the bound used (pass it back), done whether
// the scan reached until.
//
// DELETE /admin/api/dead/{provider}
//
// Body: none or {} deletes the whole dead-letter stream; {"ids":[...]} deletes those
// entries ([] deletes nothing). Reply {"purged":N}.
//
// # Redrive by filter
//
// A replay or purge also takes "filter": {"since":RFC 3339,"until":RFC 3339,"reason":R,
// "status":N,"route":"P/op"} (each optional; since/until bound the dead-letter stream ids,
// that is when Redis appended the letter: since inclusive, until exclusive) and
// "dry_run":true (count, change nothing). With ids, the filter selects among them; without,
// the call scans the stream in pages of 500 (XRANGE over the time range), so memory stays
// bounded; a purge then takes limit/after/until like a replay and answers last_id, until,
// done. Replies add "matched" and "dry_run". A bad field is 400 naming it
// ("filter.reason ..."). redrive.go holds the scan.
//
// Every replay and purge logs one Info line on the "audit" logger with provider, action,
// scope (all or ids, then the filter and "dry-run" when given), count and the caller's
// address; never the token.
package admin
