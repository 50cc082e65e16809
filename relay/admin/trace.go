package admin

import (
	"context"
	"net/http"
	"time"

	"github.com/eventrelay/relay/internal/redact"
	"github.com/eventrelay/relay/relay/queue"
)

// traceScan bounds the scan of an events stream for an event the trace does not place
// (not attempted yet, or a retry moved back): its newest entries are read.
const traceScan = 5000

// EventTrace is GET /admin/api/events/{provider}/{id}: what happened to one event.
type EventTrace struct {
	Provider string `json:"provider"`
	ID       string `json:"id"`
	// Received is the event's arrival, from its trace or its stream entry.
	Received TraceReceived `json:"received"`
	// Attempts are its attempts (and deferrals without an attempt), oldest first.
	Attempts []TraceAttempt `json:"attempts"`
	// Now is where the event is now.
	Now TraceState `json:"now"`
}

// TraceReceived is an event's arrival.
type TraceReceived struct {
	At       string `json:"at,omitempty"`
	Route    string `json:"route,omitempty"`
	Source   string `json:"source,omitempty"`
	StreamID string `json:"stream_id,omitempty"`
}

// TraceAttempt is one attempt of an event.
type TraceAttempt struct {
	Attempt int    `json:"attempt"`
	At      string `json:"at"`
	// Outcome: delivered, retry, deferred (not attempted: breaker open, paused), dead.
	Outcome string `json:"outcome"`
	// Status is the upstream HTTP status, 0 when there was none (no reply; or a
	// delivery, whose code adapters do not report).
	Status     int    `json:"status"`
	DurationMS int64  `json:"duration_ms"`
	Class      string `json:"class,omitempty"`
	RetryDueAt string `json:"retry_due_at,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Error      string `json:"error,omitempty"`
}

// TraceState is where an event is now. State is one of: queued (in the stream, not
// taken), in_flight (pending under Consumer, idle for IdleMS), retry (waiting in the
// retry set until RetryDueAt), delivered, dead (Reason).
type TraceState struct {
	State      string `json:"state"`
	StreamID   string `json:"stream_id,omitempty"`
	Consumer   string `json:"consumer,omitempty"`
	IdleMS     int64  `json:"idle_ms,omitempty"`
	RetryDueAt string `json:"retry_due_at,omitempty"`
	Reason     string `json:"reason,omitempty"`
	At         string `json:"at,omitempty"`
}

// liveAPI serves the trace and the live tail, beside api's routes.
type liveAPI struct {
	api  *api
	ring *Tail
	// stopping is closed when the server shuts down: tail streams end at once (cleanly,
	// so clients see the end) instead of holding the shutdown until its deadline.
	stopping <-chan struct{}
}

// route adds the trace and tail routes to mux, behind the admin token. They are more
// specific than api's "/admin/api/", so they take precedence.
func (l *liveAPI) route(mux *http.ServeMux, token string) {
	mux.Handle("GET /admin/api/events/{provider}/{id}", requireToken(token, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if l.api.client == nil {
			writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "the admin API has no queue")
			return
		}
		l.api.withProvider(l.api.eventTrace)(w, r)
	})))
	mux.Handle("GET /admin/api/tail", requireToken(token, http.HandlerFunc(l.tail)))
}

// eventTrace serves GET /admin/api/events/{provider}/{id}.
func (a *api) eventTrace(w http.ResponseWriter, r *http.Request, provider string) {
	id := r.PathValue("id")
	if id == "" || len(id) > 128 {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "id: an event id (1 to 128 characters) is required")
		return
	}
	ctx, cancel := a.redisCtx(r)
	defer cancel()
	t, traced, err := queue.ReadTrace(ctx, a.client, a.keys, provider, id)
	if err != nil {
		a.redisFailed(w, r, err)
		return
	}
	out := EventTrace{Provider: provider, ID: redact.Emails(id), Attempts: []TraceAttempt{}}
	var last *queue.TraceRecord
	if traced && t.Received != nil {
		out.Received = TraceReceived{At: msTime(t.Received.At), Route: t.Received.Route,
			Source: t.Received.Source, StreamID: t.Received.StreamID}
	}
	if traced {
		for i := range t.Records {
			out.Attempts = append(out.Attempts, attempt(&t.Records[i]))
		}
		if len(t.Records) > 0 {
			last = &t.Records[len(t.Records)-1]
		}
	}
	// Look in the stream even after a final record: a replayed event, or one resent after
	// its dedupe marker expired, is queued again under the same id.
	q, found, err := a.findQueued(ctx, provider, id)
	if err != nil {
		a.redisFailed(w, r, err)
		return
	}
	if !found && last != nil && (last.Outcome == queue.TraceDelivered || last.Outcome == queue.TraceDead) {
		out.Now = TraceState{State: last.Outcome, Reason: last.Reason, At: msTime(last.At)}
		writeJSON(w, http.StatusOK, out)
		return
	}
	switch {
	case found:
		m := &q.Entry.Message
		if out.Received.At == "" {
			out.Received = TraceReceived{At: apiTime(m.ReceivedAt), Route: m.Route, Source: m.Source,
				StreamID: q.Entry.StreamID}
		}
		out.Now = TraceState{State: "queued", StreamID: q.Entry.StreamID}
		if q.Pending != nil {
			out.Now.State, out.Now.Consumer, out.Now.IdleMS = "in_flight", q.Pending.Consumer, q.Pending.Idle.Milliseconds()
		}
	case last != nil:
		// A retry (or deferral) not found among the newest entries: still waiting, or
		// moved back into the stream behind a backlog longer than the scan.
		out.Now = TraceState{State: "retry", RetryDueAt: msTime(last.DueAt)}
		if last.DueAt <= time.Now().UnixMilli() {
			out.Now.State = "queued"
		}
	default:
		writeError(w, http.StatusNotFound, CodeNotFound,
			"no trace of this event: unknown, older than the trace keeps (trace.keep), or queued behind more than 5000 newer entries")
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// findQueued looks for event id among the newest traceScan entries of its events stream:
// first in the shard its id hashes to (queue.Keys.ShardOf), then in the others, since an
// event queued before redis.shards was raised, or replayed into its dead letter's shard,
// sits in another one. At most one bounded scan per shard.
func (a *api) findQueued(ctx context.Context, provider, id string) (queue.Queued, bool, error) {
	home := a.keys.ShardOf(id)
	for i := range a.keys.NumShards() {
		shard := (home + i) % a.keys.NumShards()
		q, found, err := queue.FindQueued(ctx, a.client, a.keys.ForShard(shard), provider, id, traceScan)
		if err != nil || found {
			return q, found, err
		}
	}
	return queue.Queued{}, false, nil
}

func attempt(r *queue.TraceRecord) TraceAttempt {
	a := TraceAttempt{Attempt: r.Attempt, At: msTime(r.At), Outcome: r.Outcome, Status: r.Status,
		DurationMS: r.DurationMS, Class: r.Class, Reason: r.Reason, Error: redact.Emails(r.Error)}
	if r.DueAt > 0 {
		a.RetryDueAt = msTime(r.DueAt)
	}
	return a
}

// msTime formats unix ms as the API's times; "" for 0.
func msTime(ms int64) string {
	if ms == 0 {
		return ""
	}
	return apiTime(time.UnixMilli(ms))
}
