package admin

import (
	"net/http"
	"slices"
	"time"

	"github.com/eventrelay/relay/relay/queue"
)

// replayWriteTimeout is how long a replay of everything may take to answer; the server's
// write timeout is shorter.
const replayWriteTimeout = 30 * time.Minute

// replay serves POST /admin/api/dead/{provider}/replay: all, {"ids":[...]}, a filter, a
// page of a chunked replay, or a dry run of any of them.
func (a *api) replay(w http.ResponseWriter, r *http.Request, provider string) {
	var req ReplayRequest
	err := decodeBody(w, r, &req)
	if err == nil {
		req.IDs, err = checkIDs(req.IDs)
	}
	if err == nil {
		err = checkPage(req.Limit, req.After, req.Until)
	}
	var f queue.DeadFilter
	if err == nil {
		f, err = parseFilter(req.Filter, provider)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	reply := ReplayReply{DryRun: req.DryRun}
	page := func(r *http.Request, matched []queue.DeadLetter) error {
		if !req.DryRun {
			return a.replayIDs(r, provider, streamIDs(matched), &reply)
		}
		for _, d := range matched {
			if d.Replayable {
				reply.Replayed++
			} else {
				reply.Skipped++
			}
		}
		return nil
	}
	switch {
	case req.IDs != nil && req.Filter == nil && !req.DryRun:
		reply.Done = true
		err = a.replayIDs(r, provider, req.IDs, &reply)
		reply.Matched = reply.Replayed + reply.Skipped
	case req.IDs != nil:
		reply.Done = true
		var missing int64
		reply.Matched, missing, err = a.byIDs(r, provider, req.IDs, f, page)
		reply.Missing += missing
	default:
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(replayWriteTimeout))
		var res scanned
		res, err = a.runScan(r, scan{provider: provider, filter: f, limit: req.Limit, after: req.After, until: req.Until, page: page})
		reply.Matched, reply.LastID, reply.Until, reply.Done = res.matched, res.lastID, res.until, res.done
	}
	if reply.Replayed > 0 || err == nil {
		a.auditLog(r, provider, "replay", auditScope(req.IDs, req.Filter, req.DryRun), reply.Replayed)
	}
	if err != nil {
		a.redisFailed(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, reply)
}

// replayIDs replays the dead letters handles chunk by chunk (one pipeline each, see
// queue.ReplayDead), each into the events stream of its own shard, and adds up the
// results in reply. A handle of a shard this deployment does not have is missing.
func (a *api) replayIDs(r *http.Request, provider string, handles []string, reply *ReplayReply) error {
	shards, ids := a.byShard(handles)
	known := 0
	for _, s := range shards {
		known += len(ids[s])
		for part := range slices.Chunk(ids[s], chunk) {
			ctx, cancel := a.redisCtx(r)
			res, err := queue.ReplayDead(ctx, a.client, a.keys.ForShard(s), provider, part)
			cancel()
			reply.Replayed += res.Replayed
			reply.Missing += res.Missing
			reply.Skipped += res.Skipped
			if err != nil {
				return err
			}
		}
	}
	reply.Missing += int64(len(handles) - known)
	return nil
}
