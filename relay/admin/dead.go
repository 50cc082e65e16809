package admin

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/eventrelay/relay/internal/redact"
	"github.com/eventrelay/relay/relay/queue"
)

// Dead-letter list limits.
const (
	defaultDeadLimit = 50
	maxDeadLimit     = 1000
)

// timeLayout is RFC 3339 in UTC with milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// deadList serves GET /admin/api/dead/{provider}?limit=N, newest first.
func (a *api) deadList(w http.ResponseWriter, r *http.Request, provider string) {
	limit := defaultDeadLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, CodeBadRequest, "limit must be a positive integer")
			return
		}
		limit = min(n, maxDeadLimit)
	}
	total, dead, err := a.listDead(r, provider, limit)
	if err != nil {
		a.redisFailed(w, r, err)
		return
	}
	reply := DeadListReply{Provider: provider, Total: total, Dead: make([]DeadLetter, 0, len(dead))}
	for _, d := range dead {
		reply.Dead = append(reply.Dead, deadLetter(d))
	}
	writeJSON(w, http.StatusOK, reply)
}

// deadGet serves GET /admin/api/dead/{provider}/{stream_id}: one entry with its body.
func (a *api) deadGet(w http.ResponseWriter, r *http.Request, provider string) {
	id := r.PathValue("stream_id")
	shard, sid, valid := parseHandle(id)
	if !valid {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "not a stream id")
		return
	}
	if shard >= a.keys.NumShards() {
		writeError(w, http.StatusNotFound, CodeNotFound, "no such dead letter")
		return
	}
	ctx, cancel := a.redisCtx(r)
	defer cancel()
	d, ok, err := queue.GetDead(ctx, a.client, a.keys.ForShard(shard), provider, sid)
	d.StreamID = handle(shard, d.StreamID)
	if err != nil {
		a.redisFailed(w, r, err)
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, CodeNotFound, "no such dead letter")
		return
	}
	m := d.Message
	writeJSON(w, http.StatusOK, DeadLetterDetail{
		DeadLetter: deadLetter(d),
		Body:       maskedBody(string(m.Body)),
		IP:         m.ClientIP,
		UserAgent:  m.UserAgent,
		Country:    m.Country,
		Customer:   m.CustomerID,
	})
}

// purge serves DELETE /admin/api/dead/{provider}: all, {"ids":[...]}, a filter, a page
// of a chunked purge, or a dry run of any of them.
func (a *api) purge(w http.ResponseWriter, r *http.Request, provider string) {
	var req PurgeRequest
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
	reply := PurgeReply{DryRun: req.DryRun}
	page := func(r *http.Request, matched []queue.DeadLetter) error {
		if req.DryRun {
			reply.Purged += int64(len(matched))
			return nil
		}
		n, err := a.deleteHandles(r, provider, streamIDs(matched))
		reply.Purged += n
		return err
	}
	paged := req.Filter != nil || req.DryRun || req.Limit > 0 || req.After != "" || req.Until != ""
	switch {
	case req.IDs == nil && !paged:
		reply.Purged, err = a.purgeAll(r, provider)
	case req.IDs != nil && req.Filter == nil && !req.DryRun:
		reply.Purged, err = a.deleteHandles(r, provider, req.IDs)
	case req.IDs != nil:
		reply.Done = true
		reply.Matched, _, err = a.byIDs(r, provider, req.IDs, f, page)
	default:
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(replayWriteTimeout))
		var res scanned
		res, err = a.runScan(r, scan{provider: provider, filter: f, limit: req.Limit, after: req.After, until: req.Until, page: page})
		reply.Matched, reply.LastID, reply.Until, reply.Done = res.matched, res.lastID, res.until, res.done
	}
	if reply.Purged > 0 || err == nil {
		a.auditLog(r, provider, "purge", auditScope(req.IDs, req.Filter, req.DryRun), reply.Purged)
	}
	if err != nil {
		a.redisFailed(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, reply)
}

// deadLetter is d as the API lists it, without its body.
func deadLetter(d queue.DeadLetter) DeadLetter {
	return DeadLetter{
		StreamID:       d.StreamID,
		EventsStreamID: d.EventsStreamID,
		ID:             d.Message.ID,
		Route:          d.Message.Route,
		Source:         d.Message.Source,
		Reason:         d.Reason,
		Status:         d.Status,
		Attempts:       d.Attempts,
		Error:          d.Error,
		DeadAt:         apiTime(d.DeadAt),
		ReceivedAt:     apiTime(d.Message.ReceivedAt),
	}
}

// apiTime renders t as RFC 3339 in UTC with milliseconds, "" when unknown (zero).
func apiTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

// maskedBody is the stored body with e-mail addresses masked, as JSON: the body itself
// when it is JSON, else a JSON string.
func maskedBody(body string) json.RawMessage {
	masked := redact.Emails(body)
	if json.Valid([]byte(masked)) {
		return json.RawMessage(masked)
	}
	b, err := json.Marshal(masked)
	if err != nil {
		return json.RawMessage(`null`)
	}
	return b
}
