// Package ingest is the relay's public front: a fasthttp server that authenticates the
// caller (site key or client token), checks Origin, rate-limits per client IP, runs the
// strict JSON pre-pass and the provider's validation, stamps the event and hands it to the
// durable queue, answering 202 only once Redis has it.
//
// Order of checks for POST /v1/<route>: route (404) → method (405) → caller (401) →
// origin and route allowlist (403) → rate limit (429) → content type (415) → body
// (413 at read time, then 400) → identity (401/403) → the site's event filter and consent
// (filter.go, consent.go: a dropped event is answered 202, marked, never queued) →
// enqueue (202 or 503).
//
// Every path is matched after server.path_prefix is removed, in one place (publicPath in
// handle); the Brevo SDK mirror paths (/brevo/v3/events[/batch]) are served by
// brevo_mirror.go in Brevo's reply and error shapes.
package ingest
