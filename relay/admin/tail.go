package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/internal/redact"
	"github.com/eventrelay/relay/relay/forward"
	"github.com/eventrelay/relay/relay/queue"
)

// Tail is the live tail: an in-memory ring per process of the events this relay ingests
// and the delivery outcomes it records, streamed to GET /admin/api/tail. Publishing
// never waits for a reader and writes nothing to Redis: with nobody tailing it returns at
// once; otherwise it stores the event in the ring (overwriting the oldest) under a short
// lock and wakes the readers. A reader that falls more than the ring's size behind skips
// what was overwritten (it is told how many), and one whose connection does not take a
// write within tailWriteWait is dropped: a slow client never slows ingest or delivery.
type Tail struct {
	mu   sync.Mutex
	ring []TailEvent
	next uint64        // seq of the next event
	wake chan struct{} // closed (and replaced) when events are added
	subs atomic.Int32
}

var _ forward.Observer = (*Tail)(nil)

// DefaultTailBuffer is the ring's size when NewTail is given none.
const DefaultTailBuffer = 4096

// NewTail makes a tail keeping up to size events for slow readers.
func NewTail(size int) *Tail {
	if size <= 0 {
		size = DefaultTailBuffer
	}
	return &Tail{ring: make([]TailEvent, size), wake: make(chan struct{})}
}

// TailEvent is one event of the live tail, as the SSE data line's JSON. It holds no body,
// client IP or User-Agent, and no secret; ids and errors have e-mail addresses masked.
type TailEvent struct {
	Seq uint64 `json:"seq"`
	At  string `json:"at"`
	// Kind is ingested, duplicate (an Idempotency-Key seen before: not queued again),
	// delivered, retry, deferred or dead.
	Kind     string `json:"kind"`
	Provider string `json:"provider"`
	Route    string `json:"route,omitempty"`
	ID       string `json:"id"`
	Source   string `json:"source,omitempty"`
	Attempt  int    `json:"attempt,omitempty"`
	Status   int    `json:"status,omitempty"`
	// DurationMS is the upstream request's duration.
	DurationMS int64  `json:"duration_ms,omitempty"`
	Class      string `json:"class,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Error      string `json:"error,omitempty"`
}

// Active reports whether anyone is tailing (publishers skip all work otherwise).
func (t *Tail) Active() bool { return t.subs.Load() > 0 }

// Readers is how many tail streams are open.
func (t *Tail) Readers() int { return int(t.subs.Load()) }

// publish adds ev to the ring.
func (t *Tail) publish(ev TailEvent) {
	t.mu.Lock()
	ev.Seq = t.next
	t.ring[t.next%uint64(len(t.ring))] = ev
	t.next++
	close(t.wake)
	t.wake = make(chan struct{})
	t.mu.Unlock()
}

// Observe publishes a recorded delivery outcome (forward.Observer).
func (t *Tail) Observe(provider string, m *delivery.Message, r *queue.TraceRecord) {
	if !t.Active() {
		return
	}
	t.publish(TailEvent{At: msTime(r.At), Kind: r.Outcome, Provider: provider, Route: m.Route,
		ID: redact.Emails(m.ID), Source: m.Source, Attempt: r.Attempt, Status: r.Status,
		DurationMS: r.DurationMS, Class: r.Class, Reason: r.Reason, Error: redact.Emails(r.Error)})
}

// Enqueuer is the ingest server's queue (ingest.Enqueuer).
type Enqueuer interface {
	Enqueue(ctx context.Context, m *delivery.Message, src queue.IDSource) (duplicate bool, err error)
}

// Ingested wraps q so that every event it accepts is published to the tail.
func (t *Tail) Ingested(q Enqueuer) Enqueuer { return tailEnqueuer{q: q, t: t} }

type tailEnqueuer struct {
	q Enqueuer
	t *Tail
}

// Enqueue enqueues, then publishes what was queued. m is not kept (strings are copied
// into the event by value; the body is not read).
func (e tailEnqueuer) Enqueue(ctx context.Context, m *delivery.Message, src queue.IDSource) (bool, error) {
	dup, err := e.q.Enqueue(ctx, m, src)
	if err != nil || !e.t.Active() {
		return dup, err
	}
	kind := "ingested"
	if dup {
		kind = "duplicate"
	}
	e.t.publish(TailEvent{At: apiTime(m.ReceivedAt), Kind: kind, Provider: m.Provider, Route: m.Route,
		ID: redact.Emails(m.ID), Source: m.Source})
	return dup, nil
}

// Limits of a tail stream.
const (
	// tailWriteWait is how long one write to a tail client may take before it is dropped.
	tailWriteWait = 5 * time.Second
	// tailPing is how often an idle stream gets a comment line (keeps proxies and the
	// client's idle timers from closing it).
	tailPing = 15 * time.Second
)

// tailFilter selects events: empty fields match all.
type tailFilter struct{ provider, route, status string }

func (f tailFilter) match(ev *TailEvent) bool {
	return (f.provider == "" || ev.Provider == f.provider) && (f.route == "" || ev.Route == f.route) &&
		(f.status == "" || ev.Kind == f.status || ev.Class == f.status || strconv.Itoa(ev.Status) == f.status)
}

// tailKinds are the values status= takes besides an HTTP status and an error class.
var tailKinds = []string{"ingested", "duplicate", "delivered", "retry", "deferred", "dead",
	"timeout", "5xx", "429", "4xx", "permanent", "transport"}

// tail serves GET /admin/api/tail as Server-Sent Events: each event is "id: <seq>" and
// "data: <TailEvent JSON>"; a gap is "event: skipped" with data {"skipped":N}.
func (l *liveAPI) tail(w http.ResponseWriter, r *http.Request) {
	t, a := l.ring, l.api
	if t == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "this relay has no live tail")
		return
	}
	q := r.URL.Query()
	f := tailFilter{provider: q.Get("provider"), route: q.Get("route"), status: q.Get("status")}
	if f.provider != "" && !slices.Contains(a.providers, f.provider) {
		writeError(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("provider: %q is not enabled (enabled: %v)", f.provider, a.providers))
		return
	}
	if n, err := strconv.Atoi(f.status); f.status != "" && !slices.Contains(tailKinds, f.status) && (err != nil || n < 100 || n > 599) {
		writeError(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("status: %q is not an HTTP status or one of %v", f.status, tailKinds))
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	t.subs.Add(1)
	defer t.subs.Add(-1)
	t.mu.Lock()
	cursor := t.next
	t.mu.Unlock()
	w.WriteHeader(http.StatusOK)
	send := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(tailWriteWait))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send([]byte(": live tail\n\n")) {
		return
	}
	ping := time.NewTicker(tailPing)
	defer ping.Stop()
	var batch []TailEvent
	for {
		t.mu.Lock()
		size := uint64(len(t.ring))
		skipped := uint64(0)
		if t.next-cursor > size {
			skipped, cursor = t.next-cursor-size, t.next-size
		}
		batch = batch[:0]
		for ; cursor < t.next; cursor++ {
			if ev := &t.ring[cursor%size]; f.match(ev) {
				batch = append(batch, *ev)
			}
		}
		wake := t.wake
		t.mu.Unlock()

		var out []byte
		if skipped > 0 {
			out = fmt.Appendf(out, "event: skipped\ndata: {\"skipped\":%d}\n\n", skipped)
		}
		for i := range batch {
			b, _ := json.Marshal(&batch[i]) // plain struct: cannot fail
			out = fmt.Appendf(out, "id: %d\ndata: %s\n\n", batch[i].Seq, b)
		}
		if len(out) > 0 && !send(out) {
			a.log.Info("live tail client dropped: it did not keep up")
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-l.stopping:
			return
		case <-wake:
		case <-ping.C:
			if !send([]byte(": ping\n\n")) {
				return
			}
		}
	}
}
