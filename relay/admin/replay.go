package admin

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/relay/queue"
)

// replayWriteTimeout is how long a replay of everything may take to answer; the server's
// write timeout is shorter.
const replayWriteTimeout = 30 * time.Minute

// Results of replayScript.
const (
	replayMissing  = 0
	replayDone     = 1
	replaySkipped  = -1
	requiredFields = 4 // the first four of ingestFields
)

// ingestFields are the fields a replay carries back into the events stream, in the
// ingest order; the first requiredFields are required. Attempts, status, error and the
// dead-letter fields stay behind, so a replayed event starts with zero attempts.
var ingestFields = [...]any{
	queue.FieldID, queue.FieldRoute, queue.FieldBody, queue.FieldAt, queue.FieldIP,
	queue.FieldUA, queue.FieldCountry, queue.FieldCustomer, queue.FieldSource,
}

// replayScript replays one dead letter atomically. KEYS: dead, events (one {provider}
// slot). ARGV: the dead letter's stream id, the number of required fields, then the
// ingest field names. If the entry exists and has the required fields, its ingest fields
// are XADDed to the events stream and it is XDELed: returns 1. Absent: 0. Lacking a
// required field (a trimmed entry, undeliverable): -1, left in place.
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
redis.call('XADD', KEYS[2], '*', unpack(args))
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
`)

// replay serves POST /admin/api/dead/{provider}/replay.
func (a *api) replay(w http.ResponseWriter, r *http.Request, provider string) {
	var req ReplayRequest
	err := decodeBody(w, r, &req)
	if err == nil {
		err = checkReplay(&req)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	var reply ReplayReply
	scope := "ids"
	if req.IDs != nil {
		reply.Done = true
		err = a.replayIDs(r, provider, req.IDs, &reply)
	} else {
		scope = "all"
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(replayWriteTimeout))
		err = a.replayRange(r, provider, req, &reply)
	}
	if reply.Replayed > 0 || err == nil {
		a.auditLog(r, provider, "replay", scope, reply.Replayed)
	}
	if err != nil {
		a.redisFailed(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, reply)
}

// checkReplay validates a replay request.
func checkReplay(req *ReplayRequest) error {
	if err := checkIDs(req.IDs); err != nil {
		return err
	}
	if req.Limit < 0 {
		return fmt.Errorf("%w: limit must not be negative", errBadBody)
	}
	for _, id := range []string{req.After, req.Until} {
		if id != "" && !validStreamID(id) {
			return fmt.Errorf("%w: %q is not a stream id", errBadBody, id)
		}
	}
	return nil
}

// replayRange replays the dead letters after req.After up to req.Until (default: the
// newest now), at most req.Limit of them (0: all), page by page: the bound keeps a
// provider that dead-letters replayed events at once from looping forever.
func (a *api) replayRange(r *http.Request, provider string, req ReplayRequest, reply *ReplayReply) error {
	key := a.keys.Dead(provider)
	reply.Until = req.Until
	if reply.Until == "" {
		ctx, cancel := a.redisCtx(r)
		newest, err := a.client.XRevRangeN(ctx, key, "+", "-", 1).Result()
		cancel()
		if err != nil {
			return err
		}
		if len(newest) == 0 {
			reply.Done = true
			return nil
		}
		reply.Until = newest[0].ID
	}
	start, seen := "-", 0
	if req.After != "" {
		start = "(" + req.After
	}
	for {
		n := chunk
		if req.Limit > 0 {
			n = min(n, req.Limit-seen)
		}
		if n == 0 {
			return nil
		}
		ctx, cancel := a.redisCtx(r)
		page, err := a.client.XRangeN(ctx, key, start, reply.Until, int64(n)).Result()
		cancel()
		if err != nil {
			return err
		}
		if len(page) == 0 {
			reply.Done = true
			return nil
		}
		ids := make([]string, len(page))
		for i, m := range page {
			ids[i] = m.ID
		}
		if err := a.replayIDs(r, provider, ids, reply); err != nil {
			return err
		}
		seen += len(ids)
		reply.LastID = ids[len(ids)-1]
		start = "(" + reply.LastID
		if reply.LastID == reply.Until {
			reply.Done = true
			return nil
		}
	}
}

// replayIDs runs replayScript once per id, pipelined chunk by chunk, and adds up the
// results in reply.
func (a *api) replayIDs(r *http.Request, provider string, ids []string, reply *ReplayReply) error {
	keys := []string{a.keys.Dead(provider), a.keys.Events(provider)}
	for start := 0; start < len(ids); start += chunk {
		ctx, cancel := a.redisCtx(r)
		err := a.replayChunk(ctx, keys, ids[start:min(start+chunk, len(ids))], reply)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

func (a *api) replayChunk(ctx context.Context, keys, ids []string, reply *ReplayReply) error {
	// Load once so the pipelined EVALSHAs find the script (NOSCRIPT is handled below too,
	// for a Redis restarted in between).
	if err := replayScript.Load(ctx, a.client).Err(); err != nil {
		return err
	}
	args := func(id string) []any { return append([]any{id, requiredFields}, ingestFields[:]...) }
	cmds := make([]*redis.Cmd, len(ids))
	_, _ = a.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = replayScript.EvalSha(ctx, pipe, keys, args(id)...)
		}
		return nil
	}) // errors are per command, read below
	for i, c := range cmds {
		n, err := c.Int64()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			n, err = replayScript.Run(ctx, a.client, keys, args(ids[i])...).Int64()
		}
		if err != nil {
			return err
		}
		switch n {
		case replayDone:
			reply.Replayed++
		case replayMissing:
			reply.Missing++
		case replaySkipped:
			reply.Skipped++
		}
	}
	return nil
}
