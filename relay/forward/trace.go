package forward

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/internal/redact"
	"github.com/eventrelay/relay/relay/queue"
)

// Observer sees each outcome once it is recorded: the admin API's live tail. Observe is
// called from the recorder and must not block (it drops rather than waits); Active says
// whether anyone is looking (nothing is built for it otherwise).
type Observer interface {
	Active() bool
	Observe(provider string, m *delivery.Message, r *queue.TraceRecord)
}

// maxTraceError caps the error a trace record keeps: enough to tell causes apart.
const maxTraceError = 160

// traceRecord is what the trace keeps of r's outcome.
func traceRecord(r record) queue.TraceRecord {
	o := r.o
	t := queue.TraceRecord{Attempt: o.attempts, Status: o.status}
	if !r.e.tried.IsZero() {
		t.At, t.DurationMS = r.e.tried.UnixMilli(), r.e.spent.Milliseconds()
	}
	switch {
	case o.kind == kindOK:
		t.Outcome = queue.TraceDelivered
	case o.uncounted:
		t.Outcome, t.Class = queue.TraceDeferred, "deferred"
	case o.kind == kindRetry:
		t.Outcome, t.Class = queue.TraceRetry, errorClass(o)
	default:
		t.Outcome, t.Class, t.Reason = queue.TraceDead, errorClass(o), o.reason
	}
	if t.At == 0 {
		t.At = nowMS()
	}
	if o.kind == kindRetry {
		t.DueAt = nowMS() + o.delay.Milliseconds()
	}
	if o.err != nil {
		t.Error = truncate(redact.Emails(o.err.Error()), maxTraceError)
	}
	return t
}

// errorClass sorts a failed attempt for the trace: timeout, 429, 5xx, permanent, 4xx or
// transport (no reply).
func errorClass(o outcome) string {
	var ne net.Error
	switch {
	case o.status == 408 || errors.Is(o.err, context.DeadlineExceeded) || errors.As(o.err, &ne) && ne.Timeout():
		return "timeout"
	case o.status == 429:
		return "429"
	case o.status >= 500:
		return "5xx"
	case delivery.IsPermanent(o.err):
		return "permanent"
	case o.status >= 400:
		return "4xx"
	default:
		return "transport"
	}
}

// traced is a trace call queued on a pipeline, with what it writes.
type traced struct {
	cmd    *redis.Cmd
	writes []queue.TraceWrite
}

// traceWrite queues on pipe the trace of the records at todo that carry an event (an
// entry whose data is gone has no id to find it by); nil when tracing is off or none.
func (f *Forwarder) traceWrite(ctx context.Context, pipe redis.Pipeliner, batch []record, todo []int) *traced {
	if f.o.TraceKeep <= 0 {
		return nil
	}
	writes := make([]queue.TraceWrite, 0, len(todo))
	for _, i := range todo {
		r := batch[i]
		if r.e.Bad != nil || r.e.Message.ID == "" {
			continue
		}
		m := &r.e.Message
		rec := traceRecord(r)
		if r.e.Attempts == 0 {
			rec.Received = &queue.TraceReceived{StreamID: r.e.StreamID, At: m.ReceivedAt.UnixMilli(), Route: m.Route, Source: m.Source}
		}
		writes = append(writes, queue.TraceWrite{ID: m.ID, Record: rec})
	}
	if len(writes) == 0 {
		return nil
	}
	return &traced{cmd: queue.WriteTrace(ctx, pipe, f.o.Keys, f.provider, f.o.TraceKeep, writes), writes: writes}
}

// traceWritten checks the trace call: after NOSCRIPT (first use, or Redis restarted) it
// is run again on its own, loading the script; any other failure loses the records and
// is logged (delivery goes on).
func (f *Forwarder) traceWritten(ctx context.Context, t *traced) {
	if t == nil || t.cmd.Err() == nil {
		return
	}
	err := t.cmd.Err()
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		if err = queue.RunTrace(ctx, f.o.Client, f.o.Keys, f.provider, f.o.TraceKeep, t.writes); err == nil {
			return
		}
	}
	f.log.Warn("could not write trace records (delivery is not affected)", zap.Error(err))
}

func nowMS() int64 { return time.Now().UnixMilli() }

// observe hands a recorded outcome to the Observer.
func (f *Forwarder) observe(r record) {
	if f.o.Observer == nil || r.e.Bad != nil || !f.o.Observer.Active() {
		return
	}
	t := traceRecord(r)
	f.o.Observer.Observe(f.provider, &r.e.Message, &t)
}
