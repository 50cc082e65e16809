package queue

import (
	"hash/fnv"
	"strconv"
	"strings"
)

// Group is the consumer group every relay reads each provider's events stream through.
const Group = "relay"

// Keys names a provider's Redis keys. Every key of provider P carries the hash tag {P},
// so one provider's keys share a Redis Cluster slot and one Lua script may touch them all.
//
// With Shards > 1 a provider's events spread over that many shards, each with its own
// events stream, retry set, dead-letter stream, per-minute stats, lost and seen markers
// (the keys one script touches together): shard 0 keeps the tag {P}, shard k ≥ 1 uses
// {P:k}, so on a Cluster the shards of a provider sit on different slots. A Keys names
// the shard-local keys of its Shard (ForShard); the rate limiter's slots and the trace
// stay provider-wide, under {P}, whichever shard a Keys addresses.
type Keys struct {
	// Prefix starts every key ("relay").
	Prefix string
	// Shards is the number of shards per provider (redis.shards); below 1 means 1.
	Shards int
	// Shard is the shard whose keys Events, Retry, Dead, Stats, Lost and Seen name.
	Shard int
}

// NumShards is Shards, at least 1.
func (k Keys) NumShards() int { return max(k.Shards, 1) }

// ForShard is k addressing shard i.
func (k Keys) ForShard(i int) Keys {
	k.Shard = i
	return k
}

// EachShard is k addressing each shard in turn: shard 0 first.
func (k Keys) EachShard() []Keys {
	out := make([]Keys, k.NumShards())
	for i := range out {
		out[i] = k.ForShard(i)
	}
	return out
}

// ShardOf is the shard of an event: a hash (FNV-1a) of its id modulo NumShards. The id
// is the caller's when it chose one, so a resend lands on the shard of its Seen marker.
func (k Keys) ShardOf(id string) int {
	n := k.NumShards()
	if n == 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return int(h.Sum32() % uint32(n))
}

// Tag is the hash tag (without braces) of the shard k addresses: "P" for shard 0, "P:k".
func (k Keys) Tag(provider string) string {
	if k.Shard == 0 {
		return provider
	}
	return provider + ":" + strconv.Itoa(k.Shard)
}

// Events is the provider's stream of undelivered events: "<prefix>:{P}:events".
func (k Keys) Events(provider string) string { return k.shardKey(provider, "events") }

// Retry is the provider's retry sorted set (score = due time in unix ms): "<prefix>:{P}:retry".
func (k Keys) Retry(provider string) string { return k.shardKey(provider, "retry") }

// Dead is the provider's dead-letter stream: "<prefix>:{P}:dead".
func (k Keys) Dead(provider string) string { return k.shardKey(provider, "dead") }

// Stats is the provider's delivery counters for one minute (a hash with fields
// delivered, retried, dead; kept one hour): "<prefix>:{P}:stats:<unix minute>". Every
// relay adds to the same hash, so the counts are the whole deployment's.
func (k Keys) Stats(provider string, minute int64) string {
	return k.shardKey(provider, "stats:"+strconv.FormatInt(minute, 10))
}

// Rate is the provider's deployment-wide rate limiter state: the unix µs (by Redis TIME)
// of the next free request slot, a GCRA's theoretical arrival time: "<prefix>:{P}:slots".
func (k Keys) Rate(provider string) string { return k.key(provider, "slots") }

// StatsPrefix is Stats without the minute: "<prefix>:{P}:stats:".
func (k Keys) StatsPrefix(provider string) string { return k.shardKey(provider, "stats:") }

// Lost marks that the entry streamID, found deleted before delivery, was dead-lettered
// (24 h), so a retried write appends its dead letter once: "<prefix>:{P}:lost:<stream id>".
func (k Keys) Lost(provider, streamID string) string { return k.shardKey(provider, "lost:"+streamID) }

// Seen is the dedupe marker (24 h) of an event whose id its caller chose:
// "<prefix>:{P}:seen:<caller>:<client id>", caller being the site or client (the
// message's Source, e.g. "site:shop"), so two callers' ids never collide. Events with an
// id the relay generated have none: nobody can resend them.
func (k Keys) Seen(provider, caller, clientID string) string {
	return string(appendSeenCaller([]byte(k.seenPrefix(provider)), caller)) + clientID
}

// seenPrefix is Seen without the caller and the id.
func (k Keys) seenPrefix(provider string) string { return k.shardKey(provider, "seen:") }

// appendSeenCaller appends caller and the ':' that ends it. Within the caller, '%' and
// the ':' after its kind's are the only bytes written escaped (%25, %3A): a ':' in a site's
// name could otherwise make "site:a:b" + "c" and "site:a" + "b:c" the same key.
func appendSeenCaller(dst []byte, caller string) []byte {
	kind, name, ok := strings.Cut(caller, ":")
	if ok {
		dst = append(append(dst, kind...), ':')
	} else {
		name = caller
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; c {
		case '%':
			dst = append(dst, "%25"...)
		case ':':
			dst = append(dst, "%3A"...)
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, ':')
}

// key is a provider-wide key, under {P} whatever the shard.
func (k Keys) key(provider, suffix string) string {
	return k.Prefix + ":{" + provider + "}:" + suffix
}

// shardKey is a key of k's shard, under {P} or {P:k}.
func (k Keys) shardKey(provider, suffix string) string {
	return k.Prefix + ":{" + k.Tag(provider) + "}:" + suffix
}
