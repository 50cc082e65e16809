package queue

import "strconv"

// Group is the consumer group every relay reads each provider's events stream through.
const Group = "relay"

// Keys names a provider's Redis keys. Every key of provider P carries the hash tag {P},
// so one provider's keys share a Redis Cluster slot and one Lua script may touch them all.
type Keys struct {
	// Prefix starts every key ("relay").
	Prefix string
}

// Events is the provider's stream of undelivered events: "<prefix>:{P}:events".
func (k Keys) Events(provider string) string { return k.key(provider, "events") }

// Retry is the provider's retry sorted set (score = due time in unix ms): "<prefix>:{P}:retry".
func (k Keys) Retry(provider string) string { return k.key(provider, "retry") }

// Dead is the provider's dead-letter stream: "<prefix>:{P}:dead".
func (k Keys) Dead(provider string) string { return k.key(provider, "dead") }

// Stats is the provider's delivery counters for one minute (a hash with fields
// delivered, retried, dead; kept one hour): "<prefix>:{P}:stats:<unix minute>". Every
// relay adds to the same hash, so the counts are the whole deployment's.
func (k Keys) Stats(provider string, minute int64) string {
	return k.key(provider, "stats:"+strconv.FormatInt(minute, 10))
}

// Rate is the provider's deployment-wide rate limiter state: the unix µs (by Redis TIME)
// of the next free request slot, a GCRA's theoretical arrival time: "<prefix>:{P}:slots".
func (k Keys) Rate(provider string) string { return k.key(provider, "slots") }

// StatsPrefix is Stats without the minute: "<prefix>:{P}:stats:".
func (k Keys) StatsPrefix(provider string) string { return k.key(provider, "stats:") }

// Lost marks that the entry streamID, found deleted before delivery, was dead-lettered
// (24 h), so a retried write appends its dead letter once: "<prefix>:{P}:lost:<stream id>".
func (k Keys) Lost(provider, streamID string) string { return k.key(provider, "lost:"+streamID) }

// Seen is the ingest dedupe marker of one event (24 h): "<prefix>:{P}:seen:<event_id>".
func (k Keys) Seen(provider, eventID string) string {
	return k.Prefix + ":{" + provider + "}:seen:" + eventID
}

func (k Keys) key(provider, suffix string) string {
	return k.Prefix + ":{" + provider + "}:" + suffix
}
