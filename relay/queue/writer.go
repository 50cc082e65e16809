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
	groups []*group  // groups[:n] are in use in the current pipeline
	runs   []pipeRun // the current group commit's pipelines (route)
}

// group is one provider's part of a pipeline: one script call for all its events with a
// marker (keyed), one plain XADD each for the others.
type group struct {
	events string     // the provider's events stream, KEYS[1]
	keyed  []*request // in the order of their Seen keys and values in the script call
	plain  []*request // each with its own XADD (request.cmd)
	args   []any      // the script call's arguments; the Cmd refers to them until answered
	cmd    *redis.Cmd // the script call, nil without keyed events
	once   onceCmd    // cmd as the pipeline holds it (a field: boxing &once does not allocate)
	// run is the index of the pipeline the group's commands go in (writer.route), and
	// routeErr why it has none: its events are answered with it.
	run      int
	routeErr error
	// wait is the WAIT that covers the group's plain writes, keyedWait the one that
	// covers its script call's (nil without MinReplicas): the same but after a NOSCRIPT
	// redo, whose writes went later, maybe over another connection. plainErr and
	// keyedErr are set when too few replicas acknowledged them: events written are
	// answered with them instead of success.
	wait, keyedWait    *redis.IntCmd
	plainErr, keyedErr error
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

	runs := w.route(ctx, groups)
	events, commands := 0, 0
	for _, g := range groups {
		if g.routeErr != nil {
			continue
		}
		pipe := runs[g.run].pipe
		// An event without a marker needs no script: a plain XADD answers for it alone,
		// and Redis spends a fraction of a script call on it.
		for _, r := range g.plain {
			r.xadd = append(r.xadd[:0], "xadd", &g.events, "*", FieldEnvelope, &r.entry.env)
			r.cmd = redis.NewCmd(ctx, r.xadd...)
			r.cmd.SetFirstKeyPos(1)
			r.once.Cmder = r.cmd
			_ = pipe.Process(ctx, &r.once) // only queues
		}
		commands += len(g.plain)
		events += len(g.plain)
		if len(g.keyed) == 0 {
			continue
		}
		g.args = append(g.args[:0], "evalsha", &e.sha, &e.numKeys[1+len(g.keyed)], &g.events)
		for _, r := range g.keyed {
			g.args = append(g.args, &r.entry.seen)
		}
		for _, r := range g.keyed {
			g.args = r.entry.appendValues(g.args)
		}
		g.cmd = redis.NewCmd(ctx, g.args...)
		g.cmd.SetFirstKeyPos(3) // the events key: cluster routing by its {P} slot
		g.once.Cmder = g.cmd
		_ = pipe.Process(ctx, &g.once)
		commands++
		events += len(g.keyed)
	}
	e.exec(ctx, runs, deadline)
	e.pipelines.Add(1)
	e.commands.Add(uint64(commands))
	e.nevents.Add(uint64(events))
	for _, g := range groups {
		if g.routeErr == nil {
			g.wait = runs[g.run].wait
			g.keyedWait = g.wait
		}
	}
	e.redoNoScript(ctx, groups, runs, deadline)

	var firstErr error
	for _, g := range groups {
		g.plainErr = e.replicasErr(g.wait)
		g.keyedErr = g.plainErr
		if g.keyedWait != g.wait {
			g.keyedErr = e.replicasErr(g.keyedWait)
		}
		if g.plainErr != nil || g.keyedErr != nil {
			e.underReplicated.Add(1)
		}
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
	var g *group
	for _, h := range w.groups[:n] {
		if h.events == r.events {
			g = h
			break
		}
	}
	if g == nil {
		if n == len(w.groups) {
			w.groups = append(w.groups, &group{})
		}
		g = w.groups[n]
		g.events = r.events
		n++
	}
	if len(r.entry.seen) > 0 {
		g.keyed = append(g.keyed, r)
	} else {
		g.plain = append(g.plain, r)
	}
	return n
}

// answer replies to every request of g from its commands' replies, and returns the first
// error, for health logging.
func (g *group) answer() error {
	if g.routeErr != nil {
		for _, r := range append(g.plain, g.keyed...) {
			r.reply <- result{err: g.routeErr}
		}
		return g.routeErr
	}
	var firstErr error
	for _, r := range g.plain {
		// Read before replying: once replied to, r belongs to its caller again.
		err := r.cmd.Err()
		r.cmd, r.once.Cmder = nil, nil
		clear(r.xadd) // the command's arguments: drop the group's and the entry's pointers
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			r.reply <- result{err: fmt.Errorf("%w: enqueue to %s: %w", ErrUnavailable, g.events, err)}
			continue
		}
		r.reply <- result{err: g.plainErr}
	}
	if len(g.keyed) == 0 {
		return firstErr
	}
	if err := g.answerKeyed(); err != nil && firstErr == nil {
		firstErr = err
	}
	return firstErr
}

// answerKeyed replies to the keyed requests from the script call's reply, and returns
// the call's error or the first event's error.
func (g *group) answerKeyed() error {
	vals, err := g.cmd.Slice()
	if err == nil && len(vals) != len(g.keyed) {
		err = fmt.Errorf("queue: the enqueue script answered %d results for %d events (a relay bug)", len(vals), len(g.keyed))
	}
	if err != nil {
		for _, r := range g.keyed {
			r.reply <- result{err: fmt.Errorf("%w: enqueue to %s: %w", ErrUnavailable, g.events, err)}
		}
		return err
	}
	var firstErr error
	for i, r := range g.keyed {
		var res result
		switch v := vals[i].(type) {
		case int64:
			// A duplicate was acknowledged before: its answer does not depend on this WAIT.
			res.duplicate = v == 0
			if !res.duplicate {
				res.err = g.keyedErr
			}
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
	clear(g.keyed)
	g.keyed = g.keyed[:0]
	clear(g.plain)
	g.plain = g.plain[:0]
	clear(g.args)
	g.args = g.args[:0]
	g.cmd, g.once.Cmder = nil, nil
	g.plainErr, g.keyedErr, g.routeErr = nil, nil, nil
	g.wait, g.keyedWait = nil, nil
}

// redoNoScript redoes, with EVAL, the calls Redis answered NOSCRIPT: its script cache is
// empty after a restart or SCRIPT FLUSH. A NOSCRIPT call ran nothing, so redoing it is
// safe, and EVAL puts the script back in the cache for the next EVALSHA. Each call is
// redone through its group's own connection target, followed by a WAIT of its own with
// MinReplicas (the first WAIT did not cover writes made after it). That WAIT answers
// for the redone call only: the group's plain XADDs went before the first WAIT, on the
// first connection, and the redo may run on another one whose last write the replicas
// acknowledged long ago (a redo that writes nothing, all duplicates, leaves it so), where
// WAIT returns at once without covering them.
func (e *Enqueuer) redoNoScript(ctx context.Context, groups []*group, runs []pipeRun, deadline time.Time) {
	var redo []pipeRun // by the index of the run the group first went through
	var redone []*group
	for _, g := range groups {
		// The nil checks first: HasErrorPrefix allocates even for a nil error.
		if g.cmd == nil {
			continue
		}
		if err := g.cmd.Err(); err == nil || !redis.HasErrorPrefix(err, "NOSCRIPT") {
			continue
		}
		if redo == nil {
			redo = make([]pipeRun, len(runs))
		}
		if redo[g.run].pipe == nil {
			redo[g.run] = pipeRun{via: runs[g.run].via, pipe: runs[g.run].via.Pipeline()}
		}
		args := append([]any{"eval", enqueueScript}, g.args[2:]...)
		g.cmd = redis.NewCmd(ctx, args...)
		g.cmd.SetFirstKeyPos(3)
		g.once.Cmder = g.cmd
		_ = redo[g.run].pipe.Process(ctx, &g.once)
		redone = append(redone, g)
	}
	if redo == nil {
		return
	}
	e.reloads.Add(1)
	n := 0
	for _, r := range redo {
		if r.pipe != nil {
			n += r.pipe.Len()
		}
	}
	e.log.Info("redis lost the enqueue script (restart or SCRIPT FLUSH); reloaded it with EVAL",
		zap.Int("redone", n))
	e.exec(ctx, redo, deadline)
	// A redone call's writes went over the redo's connection: its WAIT covers them.
	for _, g := range redone {
		g.keyedWait = redo[g.run].wait
	}
}

// maxWait caps WAIT's timeout below the connection's read timeout (readTimeout, which
// Open sets), with a margin for the replies before it and for a slow machine: a WAIT
// still blocked at the read deadline fails the pipeline with an i/o timeout and costs the
// connection, where one that gives up first answers how many replicas acknowledged.
// A longer redis.enqueue_timeout does not lengthen WAIT beyond it.
const maxWait = readTimeout * 3 / 4

// waitTimeout is WAIT's timeout: what is left of the pipeline's deadline, less a margin
// (a tenth, at least 50 ms) for WAIT's own reply to arrive before the pipeline's
// deadline, and at most maxWait. Never 0, which would make WAIT block forever.
func waitTimeout(deadline time.Time) time.Duration {
	left := time.Until(deadline)
	return max(min(left-max(left/10, 50*time.Millisecond), maxWait), time.Millisecond)
}

// replicasErr turns a WAIT reply into the error the events it covers are answered with:
// nil when enough replicas acknowledged (or no WAIT was asked).
func (e *Enqueuer) replicasErr(wait *redis.IntCmd) error {
	if wait == nil {
		return nil
	}
	n, err := wait.Result()
	switch {
	case err != nil:
		return fmt.Errorf("%w: waiting for %d replica(s) to acknowledge: %w", ErrUnavailable, e.opts.MinReplicas, err)
	case n < int64(e.opts.MinReplicas):
		return fmt.Errorf("%w: %d of %d replica(s) acknowledged the write within the enqueue timeout (redis.min_replicas_acked)",
			ErrUnavailable, n, e.opts.MinReplicas)
	}
	return nil
}
