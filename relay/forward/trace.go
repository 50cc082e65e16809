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

// traceWriter is the recorder's trace writer; nil when tracing is off.
func (f *Forwarder) traceWriter() *queue.TraceWriter {
	if f.o.TraceKeep <= 0 {
		return nil
	}
	return &queue.TraceWriter{Keys: f.o.Keys, Provider: f.provider, Keep: f.o.TraceKeep}
}

// traceWrite packs with tw the trace of the records at todo that carry an event (an
// entry whose data is gone has no id to find it by) and, once tw's records are due (see
// queue.TraceWriter.Due), queues their one XADD on pipe; nil when tw is nil or nothing is
// due yet (they ride with a later pipeline, or traceIdle writes them).
func (f *Forwarder) traceWrite(ctx context.Context, pipe redis.Pipeliner, tw *queue.TraceWriter, batch []record, todo []int) *redis.StringCmd {
	if tw == nil {
		return nil
	}
	for _, i := range todo {
		r := batch[i]
		if r.e.Bad != nil || r.e.Message.ID == "" {
			continue
		}
		m := &r.e.Message
		rec := traceRecord(r)
		var rcv queue.TraceReceived
		if r.e.Attempts == 0 {
			rcv = queue.TraceReceived{StreamID: r.e.StreamID, At: m.ReceivedAt.UnixMilli(), Route: m.Route, Source: m.Source}
			rec.Received = &rcv
		}
		tw.Add(m.ID, &rec)
	}
	if !tw.Due(time.Now()) {
		return nil
	}
	return tw.Queue(ctx, pipe)
}

// traceWritten logs a failed trace write (its records are lost, delivery goes on) and
// empties tw once its XADD ran.
func (f *Forwarder) traceWritten(tw *queue.TraceWriter, cmd *redis.StringCmd) {
	if cmd == nil {
		return
	}
	tw.Reset()
	if cmd.Err() != nil {
		f.log.Warn("could not write trace records (delivery is not affected)", zap.Error(cmd.Err()))
	}
}

// traceFlush writes tw's packed records alone: when they are due and no outcome came to
// carry them, and when the recorder stops.
func (f *Forwarder) traceFlush(tw *queue.TraceWriter) {
	if tw == nil || tw.Len() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(f.attempts), 2*time.Second)
	defer cancel()
	pipe := f.o.Client.Pipeline()
	cmd := tw.Queue(ctx, pipe)
	_, _ = pipe.Exec(ctx)
	f.traceWritten(tw, cmd)
}

// nextRecord waits for the next outcome; while tw holds records, only until they are
// due, then it writes them alone and waits on.
func (f *Forwarder) nextRecord(tw *queue.TraceWriter) (record, bool) {
	for tw != nil && tw.Len() > 0 {
		select {
		case r, ok := <-f.records:
			return r, ok
		default:
		}
		t := time.NewTimer(tw.Wait(time.Now()))
		select {
		case r, ok := <-f.records:
			t.Stop()
			return r, ok
		case <-t.C:
			f.traceFlush(tw)
		}
	}
	r, ok := <-f.records
	return r, ok
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
