// Package sdk holds the relay's browser SDK: relay.js, one dependency-free script a page
// loads with <script src="https://relay.example.com/v1/relay.js">, and relay.d.ts, its
// TypeScript declarations. The ingest server serves the script (relay/ingest, path
// ingest.SDKPath) as Served returns it: minified once, with a gzip form and strong ETags.
//
// The script batches tracked events into POST {endpoint}/v1/batch, gives each one a
// client id so a resend is queued once, retries 408/429/5xx and network failures with
// backoff that honours Retry-After, sends what is left by navigator.sendBeacon when the
// page is hidden or unloaded, keeps a bounded queue and never throws into the page. Its
// API and behaviour are documented in docs/api.md (Browser SDK).
package sdk
