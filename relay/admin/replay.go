package admin

import (
	"fmt"
	"net/http"
	"time"

	"github.com/eventrelay/relay/relay/queue"
)

// replayWriteTimeout is how long a replay of everything may take to answer; the server's
// write timeout is shorter.
const replayWriteTimeout = 30 * time.Minute

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
	reply.Until = req.Until
	if reply.Until == "" {
		ctx, cancel := a.redisCtx(r)
		newest, err := queue.NewestDeadID(ctx, a.client, a.keys, provider)
		cancel()
		if err != nil {
			return err
		}
		if newest == "" {
			reply.Done = true
			return nil
		}
		reply.Until = newest
	}
	after, seen := req.After, 0
	for {
		n := chunk
		if req.Limit > 0 {
			n = min(n, req.Limit-seen)
		}
		if n == 0 {
			return nil
		}
		ctx, cancel := a.redisCtx(r)
		ids, err := queue.DeadIDs(ctx, a.client, a.keys, provider, after, reply.Until, n)
		cancel()
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			reply.Done = true
			return nil
		}
		if err := a.replayIDs(r, provider, ids, reply); err != nil {
			return err
		}
		seen += len(ids)
		reply.LastID = ids[len(ids)-1]
		after = reply.LastID
		if reply.LastID == reply.Until {
			reply.Done = true
			return nil
		}
	}
}

// replayIDs replays ids chunk by chunk (one pipeline each, see queue.ReplayDead) and
// adds up the results in reply.
func (a *api) replayIDs(r *http.Request, provider string, ids []string, reply *ReplayReply) error {
	for start := 0; start < len(ids); start += chunk {
		ctx, cancel := a.redisCtx(r)
		res, err := queue.ReplayDead(ctx, a.client, a.keys, provider, ids[start:min(start+chunk, len(ids))])
		cancel()
		reply.Replayed += res.Replayed
		reply.Missing += res.Missing
		reply.Skipped += res.Skipped
		if err != nil {
			return err
		}
	}
	return nil
}
