package forward

import "github.com/redis/go-redis/v9"

// recordScript records one attempt's outcome for one entry, atomically with its XACK.
// KEYS: events, retry, dead (one {provider} hash slot). ARGV: group, entry id, kind
// ("ok" | "retry" | "dead"), delay ms (retry), then for "retry" the member, for "dead" the
// field/value pairs. It returns 0 and changes nothing when the entry was no longer
// pending (another consumer reclaimed and finished it): one outcome per entry.
var recordScript = redis.NewScript(`
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
if ARGV[3] == 'retry' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[5])
elseif ARGV[3] == 'dead' then
  redis.call('XADD', KEYS[3], '*', unpack(ARGV, 5))
end
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
`)

// moveScript moves up to ARGV[1] due members of the retry set back into the stream, by
// Redis's clock so relays with skewed clocks agree. KEYS: retry, events. A member is a
// JSON array of field/value pairs. Returns how many it moved.
var moveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, m in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', unpack(cjson.decode(m)))
  redis.call('ZREM', KEYS[1], m)
end
return #due
`)
