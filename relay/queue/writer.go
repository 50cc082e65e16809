package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// writer is one group-commit writer. Its buffers are reused from one pipeline to the
// next; it is used by one goroutine only.
type writer struct {
	e      *Enqueuer
	batch  []*request
	groups []*group // groups[:n] are in use in the current pipeline
}

// group is one provider's part of a pipeline: one script call for all its events.
type group struct {
	events string     // the provider's events stream, KEYS[1]
	reqs   []*request // in the order of their Seen keys and values in the call
	args   []any      // the call's arguments; the Cmd refers to them until it is answered
	cmd    *redis.Cmd
}

func (e *Enqueuer) newWriter() *writer {
	return &writer{e: e, batch: make([]*request, 0, e.opts.MaxBatch)}
}

// run group-commits: block for one request, take what else is already waiting (up to
// MaxBatch), write them as one pipeline.
func (w *writer) run(ctx context.Context) {
	e := w.e
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-e.reqs:
			w.batch = append(w.batch[:0], r)
		}
	fill:
		for len(w.batch) < e.opts.MaxBatch {
			select {
			case r := <-e.reqs:
				w.batch = append(w.batch, r)
			default:
				break fill
			}
		}
		w.write(ctx)
	}
}

// write sends the batch as one pipeline, one script call per provider, and answers every
// request. After a request's reply is sent, write never touches that request again: its
// caller may already be reusing it.
//
// write is what bounds every Enqueue by its deadline (Enqueue has no timer): a request
// already past it is answered at once, and the pipeline's context ends at the latest
// deadline of its requests, which go-redis honours in the pool wait, dial, write and
// read. Requests leave the channel in the order they entered it, so one waiting behind a
// pipeline has a deadline no earlier than that pipeline's requests: it is taken, and
// answered, by about its own deadline too.
func (w *writer) write(runCtx context.Context) {
	e := w.e
	// Skip requests whose caller has already given up: writing them would only turn a
	// 503 the client has seen into an entry it will resend anyway.
	now := time.Now()
	var deadline time.Time
	n := 0 // groups in use
	for _, r := range w.batch {
		if err := r.ctx.Err(); err != nil || now.After(r.deadline) {
			r.reply <- result{err: fmt.Errorf("%w: the caller gave up before the write", ErrUnavailable)}
			continue
		}
		if r.deadline.After(deadline) {
			deadline = r.deadline
		}
		n = w.add(r, n)
	}
	clear(w.batch) // don't pin answered requests (they go back to the pool)
	if n == 0 {
		return
	}
	groups := w.groups[:n]
	// The pipeline outlives Run's ctx (shutdown lets it finish) but not its last caller.
	ctx, cancel := context.WithDeadline(context.WithoutCancel(runCtx), deadline)
	defer cancel()

	pipe := e.client.Pipeline()
	events := 0
	for _, g := range groups {
		g.args = append(g.args[:0], "evalsha", &e.sha, &e.numKeys[1+len(g.reqs)], &g.events)
		for _, r := range g.reqs {
			g.args = append(g.args, &r.entry.seen)
		}
		for _, r := range g.reqs {
			g.args = r.entry.appendValues(g.args)
		}
		g.cmd = redis.NewCmd(ctx, g.args...)
		g.cmd.SetFirstKeyPos(3)      // the events key: cluster routing by its {P} slot
		_ = pipe.Process(ctx, g.cmd) // only queues
		events += len(g.reqs)
	}
	_, _ = pipe.Exec(ctx) // per-call errors are read below
	e.pipelines.Add(1)
	e.commands.Add(uint64(len(groups)))
	e.nevents.Add(uint64(events))
	e.redoNoScript(ctx, groups)

	var firstErr error
	for _, g := range groups {
		if err := g.answer(); err != nil && firstErr == nil {
			firstErr = err
		}
		g.reset()
	}
	e.logHealth(firstErr)
}

// add puts r into the group of its stream among groups[:n], starting a group if it is
// the first of its stream, and returns the new number of groups in use. A pipeline holds
// few providers, so a linear search beats a map.
func (w *writer) add(r *request, n int) int {
	for _, g := range w.groups[:n] {
		if g.events == r.events {
			g.reqs = append(g.reqs, r)
			return n
		}
	}
	if n == len(w.groups) {
		w.groups = append(w.groups, &group{})
	}
	g := w.groups[n]
	g.events = r.events
	g.reqs = append(g.reqs[:0], r)
	return n + 1
}

// answer replies to every request of g from its call's reply, and returns the call's
// error or the first event's error, for health logging.
func (g *group) answer() error {
	vals, err := g.cmd.Slice()
	if err == nil && len(vals) != len(g.reqs) {
		err = fmt.Errorf("queue: the enqueue script answered %d results for %d events (a relay bug)", len(vals), len(g.reqs))
	}
	if err != nil {
		for _, r := range g.reqs {
			r.reply <- result{err: fmt.Errorf("%w: enqueue to %s: %w", ErrUnavailable, g.events, err)}
		}
		return err
	}
	var firstErr error
	for i, r := range g.reqs {
		var res result
		switch v := vals[i].(type) {
		case int64:
			res.duplicate = v == 0
		case error:
			res.err = fmt.Errorf("%w: enqueue to %s: %w", ErrUnavailable, g.events, v)
			if firstErr == nil {
				firstErr = v
			}
		default:
			res.err = fmt.Errorf("%w: enqueue to %s: unexpected script result %T (a relay bug)", ErrUnavailable, g.events, v)
		}
		r.reply <- res
	}
	return firstErr
}

// reset drops g's references to answered requests and their buffers (they go back to
// the pool), keeping the slices' capacity.
func (g *group) reset() {
	clear(g.reqs)
	g.reqs = g.reqs[:0]
	clear(g.args)
	g.args = g.args[:0]
	g.cmd = nil
}

// redoNoScript redoes, with EVAL, the calls Redis answered NOSCRIPT: its script cache is
// empty after a restart or SCRIPT FLUSH. A NOSCRIPT call ran nothing, so redoing it is
// safe, and EVAL puts the script back in the cache for the next EVALSHA.
func (e *Enqueuer) redoNoScript(ctx context.Context, groups []*group) {
	var pipe redis.Pipeliner
	for _, g := range groups {
		// The nil check first: HasErrorPrefix allocates even for a nil error.
		if err := g.cmd.Err(); err == nil || !redis.HasErrorPrefix(err, "NOSCRIPT") {
			continue
		}
		if pipe == nil {
			pipe = e.client.Pipeline()
		}
		args := append([]any{"eval", enqueueScript}, g.args[2:]...)
		g.cmd = redis.NewCmd(ctx, args...)
		g.cmd.SetFirstKeyPos(3)
		_ = pipe.Process(ctx, g.cmd)
	}
	if pipe == nil {
		return
	}
	e.reloads.Add(1)
	e.log.Info("redis lost the enqueue script (restart or SCRIPT FLUSH); reloaded it with EVAL",
		zap.Int("redone", pipe.Len()))
	_, _ = pipe.Exec(ctx)
}
