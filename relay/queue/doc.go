// Package queue is the Redis side of ingest: it connects to Redis (Open), checks that
// the server keeps what it accepts, and appends validated events durably to their
// provider's stream (Enqueuer), group-committing concurrent requests into pipelines.
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
// # Failure semantics
//
// Enqueue returns nil only once Redis has the entry (or had it: duplicate). Any error
// wraps ErrUnavailable and means "answer 503": the event may or may not be in Redis, and
// a resend with the same id is safe thanks to the Seen marker.
package queue
