// Package queue owns the Redis queue and its stored format: it connects to Redis (Open),
// checks that the server keeps what it accepts, and appends validated events durably to
// their provider's stream (Enqueuer), group-committing concurrent requests into
// pipelines. It is the one package that knows how entries, retry members and dead
// letters are stored and every Lua script that touches them; the forwarders
// (relay/forward) and the admin API (relay/admin) call its functions. One file per idea:
//
//   - keys.go: key names (Keys) and the consumer group.
//   - entry.go: stream entry fields, their encoding on enqueue and decoding (DecodeEntry).
//   - read.go: reading entries through the consumer group, and claiming abandoned ones.
//   - outcome.go: recording outcomes (RecordOutcome, AckDelivered), moving due retries
//     (MoveDue), the shared rate limit (TakeSlots), the per-minute stats fields.
//   - retry.go: retry set members. dead.go: dead letters, their reasons, listing,
//     replaying and purging them. depth.go: queue depths for the admin API and metrics.
//   - scripts.go: every Lua script, with its KEYS and ARGV.
//
// # Keys
//
// Every key of provider P carries the hash tag {P} (see Keys): the events stream
// <prefix>:{P}:events (consumer group "relay"), the retry sorted set <prefix>:{P}:retry,
// the dead-letter stream <prefix>:{P}:dead and the 24 h dedupe markers
// <prefix>:{P}:seen:<event_id>.
//
// # Stream entry format
//
// One event is one entry of <prefix>:{P}:events, written atomically with its Seen marker
// (SET NX EX 86400, then XADD; a duplicate id adds nothing) by a Lua script. One script
// call carries all of one provider's events of a group-commit pipeline and answers for
// each event separately (added, duplicate or its own error; see enqueueScript).
// Every entry has these nine fields, in this order; values are strings:
//
//	id        event id (client Idempotency-Key or generated)
//	route     ingest route without /v1/, e.g. "ens/click"
//	body      the validated provider body, JSON
//	at        received_at, unix milliseconds, decimal
//	ip        client IP, or empty
//	ua        client User-Agent, or empty
//	country   country from the edge's geo header, or empty
//	customer  Cardlytics customer id, or empty
//	src       the calling site or client name
//
// An entry never holds a provider secret: the forwarder attaches it when it sends.
// Streams are never trimmed with MAXLEN (that deletes undelivered events); delivered
// entries are deleted one by one. DecodeMessage rebuilds a Message and rejects an entry
// whose fields are gone (what XREADGROUP returns for a trimmed pending entry).
//
// # Retry members and dead letters
//
// A retry member (the retry sorted set, score = due time in unix ms by Redis's clock) is
// a JSON array of field/value pairs: the entry's ingest fields, then attempts, status
// (the last HTTP status, 0 when there was no reply) and error (the last error, secrets
// redacted). A dead letter is an entry of the dead-letter stream: the ingest fields (none
// for a trimmed entry), attempts, status, error, reason (permanent, max_attempts,
// max_age, trimmed, malformed), dead_at (unix ms) and stream_id (the entry's id in the
// events stream).
//
// # Failure semantics
//
// Enqueue returns nil only once Redis has the entry (or had it: duplicate). Any error
// wraps ErrUnavailable and means "answer 503": the event may or may not be in Redis, and
// a resend with the same id is safe thanks to the Seen marker.
package queue
