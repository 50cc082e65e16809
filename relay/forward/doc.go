// Package forward delivers queued events to their providers. Per enabled provider it runs
// a Forwarder, one file per part:
//
//   - fetcher.go: one reader per provider and relay. Per turn it takes the slots of the
//     provider's rate limit that are due soon (one Redis call; a GCRA shared by every
//     relay, slots 1/rate_limit apart, none booked more than a second ahead), as many as
//     there is room for jobs (one being sent per sender, and one read ahead when the
//     visibility timeout leaves room for it), then reads that many requests' worth of
//     entries in one XREADGROUP through consumer group "relay" (entries abandoned past
//     the visibility timeout first, XAUTOCLAIM, when a scan is due) and groups them into
//     upstream batches; batches beyond the slots are kept for the next turn while young
//     (see dispatch), and readsize.go sizes reads from the batch keys seen, so a few busy
//     batch keys fill their requests. An open breaker or a Retry-After pause stops reading, so entries
//     stay queued; jobs already read go back through the retry set, unattempted. An
//     adapter with independent upstream APIs names lanes (Lanes, forwarder.go), each with
//     its own breaker and pause; reading stops only when every lane is stopped.
//   - sender.go: `workers` goroutines, each making one upstream request at a time: wait
//     for the job's slot and this process's own limiter, ask the circuit breaker, call the
//     adapter, decide each entry's outcome.
//   - recorder.go: writes outcomes in pipelines, every delivery of a pipeline acked and
//     deleted by one script call (queue.AckDelivered); retries and dead letters one
//     script call each (queue.RecordOutcome). With Options.TraceKeep the same pipeline
//     carries one trace XADD for all its records (trace.go, queue.TraceWriter), and each
//     recorded outcome goes to Options.Observer (the admin live tail) when someone looks.
//   - shared.go: the lanes' breaker and Retry-After pause are the deployment's: written
//     to Redis (queue.Pause, queue.OpenBreaker), read with every slot reservation
//     (queue.Turn), and while half-open one probe deployment-wide (queue.ClaimProbe).
//   - mover.go puts due retries back into the stream; reclaimer.go is the fetcher's
//     XAUTOCLAIM of entries left pending by dead or stalled consumers.
//
// Per event this costs the upstream request plus a share of one read, one slot
// reservation and one outcome pipeline: a few Redis round trips per read, not per event.
//
// # Outcomes
//
// Delivered: the entry is acked and deleted. Retryable: it is acked, deleted and added to
// the retry sorted set (score = due time in ms from Redis TIME) with its attempt count
// raised. Permanent, or out of attempts or age: it is acked, deleted and appended to the
// dead-letter stream with reason, last status, attempts and a short error (e-mail
// addresses in it are masked in logs, kept in Redis for operators). Each outcome is
// written by a Lua script that only acts while the entry is still pending under the
// consumer that read or claimed it, so a slow or stalled relay whose entry was reclaimed
// records nothing: the new owner's outcome counts, even while its own attempt is in
// progress.
//
// # Stored format
//
// Package queue owns everything stored in Redis: entry fields and their decoding
// (queue.DecodeEntry), retry members, dead letters and their reasons, every Lua script
// and the key names. This package only decides outcomes and calls queue's functions
// (ReadNew, Claim, Turn, RecordOutcome, AckDelivered, MoveDue).
package forward
