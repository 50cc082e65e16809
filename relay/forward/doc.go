// Package forward delivers queued events to their providers. Per enabled provider it runs
// a Forwarder: `workers` goroutines that read the provider's stream through consumer group
// "relay", each attempt going rate limiter → circuit breaker → adapter (one upstream
// request) → outcome recorded atomically with the XACK; a mover that puts due retries back
// into the stream; and a reclaimer that takes over entries left pending by dead consumers.
//
// # Outcomes
//
// Delivered: the entry is acked and deleted. Retryable: it is acked, deleted and added to
// the retry sorted set (score = due time in ms from Redis TIME) with its attempt count
// raised. Permanent, or out of attempts or age: it is acked, deleted and appended to the
// dead-letter stream with reason, last status, attempts and a short error. Each outcome is
// one Lua call that only acts while the entry is still pending under the consumer that
// read or claimed it, so a slow or stalled worker whose entry was reclaimed records
// nothing: the new owner's outcome counts, even while its own attempt is in progress.
//
// # Entry fields beyond the ingest ones (named in package queue: FieldAttempts, ...)
//
//	attempts  upstream attempts made so far (absent: 0)
//	error     last attempt's error (retry set members and dead letters)
//	status    last HTTP status, 0 when there was no reply
//
// Dead letters also carry reason (permanent, max_attempts, max_age, trimmed, malformed),
// dead_at (unix ms) and stream_id (the entry's id in the events stream).
package forward
