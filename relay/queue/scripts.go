package queue

import "github.com/redis/go-redis/v9"

// Every Lua script of the stored format is here, each with its KEYS and ARGV. All keys
// of one call carry the same {provider} hash tag: one cluster slot.

// enqueueScript appends several events to one provider's stream, each atomically: its
// Seen marker (SET NX EX 86400), then XADD of its envelope as the one field 'e'
// (FieldEnvelope). KEYS[1] is the events stream and KEYS[1+i] event i's Seen marker, all
// under the provider's {P} tag (one cluster slot). ARGV[i] is event i's envelope. It
// returns one reply per event: 1 added, 0 duplicate (a marker from an earlier call, or
// from an earlier event of this call with the same id), or that event's error.
//
// A failed XADD (pcall) fails only its own event, and since scripts are not rolled back
// it removes the marker it just set: otherwise the client's resend would be answered as a
// duplicate of an event that is not there. The SET is a plain call: it can fail only with
// OOM (or an ACL refusal), and Redis refuses a script's write for OOM only while the
// script has written nothing yet, so such an error ends the call before any event of it
// was written and fails them all, which is the truth. Never MAXLEN: trimming deletes
// undelivered events.
//
// Why this shape (measured on redis-server 7.0 with AOF, see BenchmarkEnqueue): one call
// per provider and pipeline instead of one per event saves the call, its reply and the
// MULTI/EXEC wrapping its effects in the AOF; one envelope instead of nine fields saves
// Redis eight argument strings per event, parsed, turned into Lua strings and stored; the
// TTL as a string saves a number-to-string conversion per event.
const enqueueScript = `local out = {}
for i = 2, #KEYS do
  if not redis.call('SET', KEYS[i], '1', 'NX', 'EX', '86400') then
    out[i - 1] = 0
  else
    local added = redis.pcall('XADD', KEYS[1], '*', 'e', ARGV[i - 1])
    if type(added) == 'table' and added.err then
      redis.call('DEL', KEYS[i])
      out[i - 1] = added
    else
      out[i - 1] = 1
    end
  end
end
return out
`

// recordScript records one outcome other than a delivery (ackScript writes those) for
// one entry, atomically with its XACK. KEYS: events, retry, dead, stats prefix, lost
// marker (one {provider} hash slot). ARGV: group, entry id, kind ("retry" | "dead" |
// "lost"), delay ms (retry), counter field ("retried", "dead" or "" for none), owner (the
// consumer the entry was read or claimed as), then for "retry" the member, for "dead" and
// "lost" the field/value pairs. The counter goes
// into this minute's stats hash (Redis TIME). Kind "lost" dead-letters an entry whose
// data is gone and which XAUTOCLAIM already dropped from the pending list: there is
// nothing left to ack, so it is gated instead on a marker (KEYS[5], 24 h) that makes a
// retried write append one dead letter, not two. Any other outcome applies only while the
// entry is still pending under its owner: it returns 0 and changes nothing when another
// consumer has taken the entry over (a stalled relay's stale outcome must not override
// the new owner's attempt in progress) or finished it. One outcome per entry.
var recordScript = redis.NewScript(`
if ARGV[3] == 'lost' then
  if not redis.call('SET', KEYS[5], '1', 'NX', 'EX', 86400) then
    return 0
  end
else
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
  if #p == 0 or p[1][2] ~= ARGV[6] then
    return 0
  end
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
end
local t = redis.call('TIME')
if ARGV[3] == 'retry' then
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[7])
elseif ARGV[3] == 'dead' or ARGV[3] == 'lost' then
  redis.call('XADD', KEYS[3], '*', unpack(ARGV, 7))
end
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[5] ~= '' then
  local stats = KEYS[4] .. math.floor(tonumber(t[1]) / 60)
  redis.call('HINCRBY', stats, ARGV[5], 1)
  redis.call('EXPIRE', stats, 3600)
end
return 1
`)

// moveScript moves up to ARGV[1] due members of the retry set back into the stream, by
// Redis's clock so relays with skewed clocks agree. KEYS: retry, events. A member is an
// envelope with its trailer, XADDed as the one field 'e' (FieldEnvelope), or, written by
// earlier relays, a JSON array of field/value pairs ('[' first). Returns how many it
// moved.
var moveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, m in ipairs(due) do
  if string.byte(m, 1) == 91 then
    redis.call('XADD', KEYS[2], '*', unpack(cjson.decode(m)))
  else
    redis.call('XADD', KEYS[2], '*', 'e', m)
  end
  redis.call('ZREM', KEYS[1], m)
end
return #due
`)

// ackScript records the delivery of many entries pending under one owner: the same
// owner gate as recordScript, then one XACK and one XDEL for all applied, and one counter
// increment. KEYS: events, stats prefix. ARGV: group, owner, the lowest and highest id,
// a limit, then the ids. One XPENDING over [lowest, highest] filtered to the owner finds
// which are still its own; if that reply is cut at the limit, the ids it did not list are
// checked one by one. Returns one 1 (recorded) or 0 (taken over or already settled by another
// consumer) per id, in order.
var ackScript = redis.NewScript(`
local limit = tonumber(ARGV[5])
local owner = ARGV[2]
local mine = {}
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[4], limit, owner)
for _, e in ipairs(p) do
  mine[e[1]] = true
end
local out, ids = {}, {}
for i = 6, #ARGV do
  local id = ARGV[i]
  local own = mine[id]
  if not own and #p >= limit then
    local q = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
    own = #q > 0 and q[1][2] == owner
  end
  if own then
    ids[#ids + 1] = id
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if #ids > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
  redis.call('XDEL', KEYS[1], unpack(ids))
  local t = redis.call('TIME')
  local stats = KEYS[2] .. math.floor(tonumber(t[1]) / 60)
  redis.call('HINCRBY', stats, 'delivered', #ids)
  redis.call('EXPIRE', stats, 3600)
end
return out
`)

// slotsScript hands out request slots of a provider's deployment-wide rate limit: a GCRA
// whose state is the theoretical arrival time (TAT, unix µs by Redis TIME) of the next
// free slot. ARGV: the interval between requests in µs, how many slots are wanted, and a
// window in µs. It grants the wanted slots after max(TAT, now), one interval apart, so
// relays sharing the key never send closer than the interval however many slots each
// takes per call, but only those starting within the window from now (none if the first
// does not: then nothing is taken, and nobody can book far ahead). Returns {granted, µs from now to
// the first granted slot, µs from now to the next free slot}.
//
// KEYS[1] is the slots key; after it may come, per lane of the provider, its pause key
// and its breaker key (see pause.go): the reply then also carries, per lane, the ms left
// of its Retry-After pause (0: none) and of its shared breaker (-1: closed, 0: half-open,
// > 0: open), read in the same call so honouring them costs no extra round trip. When
// every lane given is paused or open, no slot is granted: nothing could be sent.
var slotsScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nowms = math.floor(now / 1000)
local lanes, blocked = {}, 0
for i = 2, #KEYS, 2 do
  local p = tonumber(redis.call('GET', KEYS[i]) or '0')
  local b = redis.call('GET', KEYS[i + 1])
  local pause = math.max(p - nowms, 0)
  local open = -1
  if b then
    open = math.max(tonumber(b) - nowms, 0)
  end
  lanes[#lanes + 1] = string.format('%.0f', pause)
  lanes[#lanes + 1] = string.format('%.0f', open)
  if pause > 0 or open > 0 then
    blocked = blocked + 1
  end
end
local interval = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local first = math.max(tat, now)
n = math.min(n, math.floor((now + window - first) / interval) + 1)
if #KEYS > 1 and blocked == (#KEYS - 1) / 2 then
  n = 0
end
if n < 1 then
  return {0, string.format('%.0f', first - now), string.format('%.0f', first - now), unpack(lanes)}
end
tat = first + n * interval
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
return {n, string.format('%.0f', first - now), string.format('%.0f', tat - now), unpack(lanes)}
`)

// purgeDeadScript deletes a dead-letter stream and returns how many entries it had, in one
// step. UNLINK frees a large stream off Redis's main thread. KEYS: dead.
var purgeDeadScript = redis.NewScript(`
local n = redis.call('XLEN', KEYS[1])
redis.call('UNLINK', KEYS[1])
return n
`)

// replayScript replays one dead letter atomically. KEYS: dead, events (one {provider}
// slot). ARGV: the dead letter's stream id, the number of required fields, then the
// names of the nine fields of earlier relays. If the entry exists and holds the event,
// the event is XADDed to the events stream (its envelope as the one field 'e', or, in a
// dead letter of earlier relays, those of the nine fields it has) and the dead letter is
// XDELed: returns 1. Absent: 0. Without the event (no envelope and a required field
// missing: a trimmed entry, undeliverable): -1, left in place. Attempts, status, error and
// the dead-letter fields stay behind, so the event's attempts start again from zero.
var replayScript = redis.NewScript(`
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then
  return 0
end
local f = e[1][2]
local v = {}
for i = 1, #f, 2 do
  v[f[i]] = f[i + 1]
end
local args = {}
if v['e'] then
  args = {'e', v['e']}
else
  for i = 3, #ARGV do
    local name = ARGV[i]
    if v[name] == nil then
      if i - 2 <= tonumber(ARGV[2]) then
        return -1
      end
    else
      args[#args + 1] = name
      args[#args + 1] = v[name]
    end
  end
end
redis.call('XADD', KEYS[2], '*', unpack(args))
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
`)

// trimDeadScript applies a dead-letter stream's retention in one step. KEYS: dead. ARGV:
// max age in ms, max count. Letters added before now − max age go first (the stream ids
// are their XADD times; now is Redis's clock, so relays with skewed clocks agree), then
// the oldest beyond max count. Exact trimming (no ~), so the counts are the letters
// dropped. Returns {dropped by age, dropped by count}.
var trimDeadScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local byAge = redis.call('XTRIM', KEYS[1], 'MINID', string.format('%.0f', math.max(now - tonumber(ARGV[1]), 0)))
local byCount = redis.call('XTRIM', KEYS[1], 'MAXLEN', ARGV[2])
return {byAge, byCount}
`)

// removeIdleConsumersScript removes, from the events stream's consumer group, every
// consumer idle at least ARGV[2] ms that holds no pending entry (a relay process that
// stopped; each process reads under its own name, so names pile up as relays are
// replaced). KEYS[1] is the events stream, ARGV[1] the group. It returns the removed
// names. Atomic: a consumer cannot take an entry between the check and the removal, so an
// entry is never dropped from the pending list by it. A removed consumer that comes back
// is recreated by its next read.
const removeIdleConsumersScript = `local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then return {} end
local minIdle = tonumber(ARGV[2])
local removed = {}
for _, c in ipairs(consumers) do
  local name, pending, idle
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1]
    elseif c[i] == 'pending' then pending = c[i + 1]
    elseif c[i] == 'idle' then idle = c[i + 1] end
  end
  if name and pending == 0 and idle and idle >= minIdle then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    removed[#removed + 1] = name
  end
end
return removed`

var removeIdleConsumers = redis.NewScript(removeIdleConsumersScript)
