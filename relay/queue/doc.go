// Package queue owns the Redis queue and its stored format: it connects to Redis (Open),
// checks that the server keeps what it accepts, and appends validated events durably to
// their provider's stream (Enqueuer), group-committing concurrent requests into
// pipelines. It is the one package that knows how entries, retry members and dead
// letters are stored and every Lua script that touches them; the forwarders
// (relay/forward) and the admin API (relay/admin) call its functions. One file per idea:
//
//   - keys.go: key names (Keys), shards (Keys.ShardOf, ForShard) and the consumer group.
//   - shards.go: the start-time check that a lowered redis.shards strands nothing.
//   - entry.go: stream entry fields, their encoding on enqueue and decoding (DecodeEntry).
//   - read.go: reading entries through the consumer group, and claiming abandoned ones.
//   - outcome.go: recording outcomes (RecordOutcome, AckDelivered), moving due retries
//     (MoveDue), the shared rate limit (TakeSlots), the per-minute stats fields.
//   - retry.go: retry set members. dead.go: dead letters, their reasons, listing,
//     replaying and purging them. depth.go: queue depths for the admin API and metrics.
//   - deadfilter.go: selecting dead letters by time range, reason, status and route,
//     page by page (ScanDead). series.go: the per-minute series (SampleDepths, Series)
//     and its sample script.
//   - pause.go: the lanes' shared Retry-After pause and circuit breaker (Pause,
//     OpenBreaker, ClaimProbe, CloseBreaker), read with the rate-limit slots (Turn).
//   - scripts.go: every other Lua script, with its KEYS and ARGV (the trace's is in trace.go).
//   - trace.go: the delivery trace: its bounded keys, the script that writes a pipeline's
//     records, the lookup by event id, and the bounded scan for a queued event.
//
// # Keys
//
// Every key of provider P carries the hash tag {P} (see Keys): the events stream
// <prefix>:{P}:events (consumer group "relay"), the retry sorted set <prefix>:{P}:retry,
// the dead-letter stream <prefix>:{P}:dead and the 24 h dedupe markers
// <prefix>:{P}:seen:<caller>:<client id> of events whose id their caller chose. With
// Keys.Shards > 1 shard k ≥ 1 has the same keys under {P:k} (docs/storage.md, "Shards").
//
// # Stream entry format
//
// One event is one entry of <prefix>:{P}:events. An event whose id the relay generated
// is one plain XADD in a group-commit pipeline: nobody can resend it, so it needs no
// marker. An event whose id its caller chose (IDSource ClientID) is written atomically
// with its Seen marker (SET NX EX 86400, then XADD; a duplicate id adds nothing) by a Lua
// script; one script call carries all of one provider's keyed events of a pipeline and
// answers for each separately (added, duplicate or its own error; see enqueueScript).
//
// An entry has one field, "e" (FieldEnvelope): a versioned binary envelope of the event
// (envelope.go has the layout). Version 1 is a version byte, a flags byte, received_at
// as a varint of unix ms, then id, route, body, ip, ua, country, customer and src, each
// length-prefixed (the body is JSON and may hold any byte); a UUID id, an IPv4 address
// and the route's "<provider>/" prefix are stored in shorter forms that decode to the
// same strings. An entry moved back from the retry set has a trailer: attempts, last
// status, last error. One field instead of nine spares Redis eight field names to parse,
// store and replicate per event (BenchmarkStoredBytes: a typical backend event with a
// ~150-byte body takes 264 bytes of stream instead of 315).
//
// Earlier relays wrote nine string fields instead (FieldID ... FieldSource: id, route,
// body, at as decimal unix ms, ip, ua, country, customer, src), plus attempts, status and
// error after a retry. Such entries, retry members and dead letters (a rolling upgrade, or
// a backlog left queued) are still read, retried, dead-lettered and replayed: DecodeEntry
// and DecodeDeadLetter read both formats, the move and replay scripts handle both.
//
// An entry never holds a provider secret: the forwarder attaches it when it sends.
// Streams are never trimmed with MAXLEN (that deletes undelivered events); delivered
// entries are deleted one by one. DecodeEntry marks an entry whose fields are gone (what
// XREADGROUP returns for a trimmed pending entry) as undeliverable.
//
// # Retry members and dead letters
//
// A retry member (the retry sorted set, score = due time in unix ms by Redis's clock) is
// the entry's envelope with its trailer (attempts, status: the last HTTP status, 0 when
// there was no reply, and error: the last error, secrets redacted); the move script XADDs
// it back as the entry's "e". Earlier relays' members, JSON arrays of field/value pairs,
// are moved back as their fields. A dead letter is an entry of the dead-letter stream:
// the envelope without trailer (for an entry that could not be decoded, the fields it
// had; none for a trimmed one), then attempts, status, error, reason (permanent,
// max_attempts, max_age, trimmed, malformed), dead_at (unix ms) and stream_id (the
// entry's id in the events stream), as separate fields the admin API reads.
//
// # Failure semantics
//
// Enqueue returns nil only once Redis has the entry (or had it: duplicate). Any error
// wraps ErrUnavailable and means "answer 503": the event may or may not be in Redis, and
// a resend with the same id is safe thanks to the Seen marker (an event without a client
// id cannot be resent as the same event: its caller never learnt its id).
package queue
