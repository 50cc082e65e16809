package queue

import (
	"strconv"
	"strings"
)

// enqueueScript appends several events to one provider's stream, each atomically: its
// Seen marker (SET NX EX 86400), then XADD. KEYS[1] is the events stream and KEYS[1+i]
// event i's Seen marker, all under the provider's {P} tag (one cluster slot). ARGV holds
// every event's values, numFields per event in the order of entryFields and of KEYS; the
// field names are written into the script. It returns one reply per event: 1 added,
// 0 duplicate (a marker from an earlier call, or from an earlier event of this call with
// the same id), or that event's error.
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
// MULTI/EXEC wrapping its effects in the AOF; names in the script instead of ARGV save
// Redis nine argument strings per event, parsed and turned into Lua strings; the TTL as a
// string saves a number-to-string conversion per event.
var enqueueScript = buildEnqueueScript()

func buildEnqueueScript() string {
	var xadd strings.Builder
	for i, f := range entryFields {
		if i > 0 {
			xadd.WriteString(", ")
		}
		// Field names are constants made of letters: safe in a Lua string literal.
		xadd.WriteString("'" + f + "', ARGV[at + " + strconv.Itoa(i) + "]")
	}
	return `local out = {}
local at = 1
for i = 2, #KEYS do
  if not redis.call('SET', KEYS[i], '1', 'NX', 'EX', '86400') then
    out[i - 1] = 0
  else
    local added = redis.pcall('XADD', KEYS[1], '*', ` + xadd.String() + `)
    if type(added) == 'table' and added.err then
      redis.call('DEL', KEYS[i])
      out[i - 1] = added
    else
      out[i - 1] = 1
    end
  end
  at = at + ` + strconv.Itoa(numFields) + `
end
return out
`
}
