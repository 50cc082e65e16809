package queue

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// pipeliner is what a pipeline is made from: the shared client, or one cluster node.
type pipeliner interface {
	Pipeline() redis.Pipeliner
}

// pipeRun is one pipeline of a group commit: where it goes, its commands, and the WAIT
// ending it (with MinReplicas).
type pipeRun struct {
	via  pipeliner
	pipe redis.Pipeliner
	wait *redis.IntCmd
	once onceCmd // wait as the pipeline holds it
}

// route gives every group a pipeline. Usually one pipeline on the shared client carries
// them all (a cluster client splits it by node itself). With MinReplicas on a cluster,
// WAIT must follow the writes on their own connection to their own master, which a
// cluster pipeline cannot express: each master then gets a pipeline of its own, on that
// node's client. A group whose master is unknown (cluster down) gets routeErr instead.
func (w *writer) route(ctx context.Context, groups []*group) []pipeRun {
	e := w.e
	clear(w.runs)
	w.runs = w.runs[:0]
	cc, isCluster := e.client.(*redis.ClusterClient)
	if e.opts.MinReplicas == 0 || !isCluster {
		w.runs = append(w.runs, pipeRun{via: e.client, pipe: e.client.Pipeline()})
		for _, g := range groups {
			g.run = 0
		}
		return w.runs
	}
	for _, g := range groups {
		node, err := cc.MasterForKey(ctx, g.events)
		if err != nil {
			g.routeErr = fmt.Errorf("%w: no master for %s: %w", ErrUnavailable, g.events, err)
			continue
		}
		g.run = -1
		for i, r := range w.runs {
			if r.via == pipeliner(node) {
				g.run = i
				break
			}
		}
		if g.run < 0 {
			g.run = len(w.runs)
			w.runs = append(w.runs, pipeRun{via: node, pipe: node.Pipeline()})
		}
	}
	return w.runs
}

// exec ends each pipeline with WAIT (with MinReplicas) and runs them, concurrently when
// there are several (one per cluster master). Per-command errors are read by the caller.
// A redirection (MOVED, ASK) seen on a node's own pipeline makes the cluster client
// reload its slot map, so the next group commit goes to the new owner.
func (e *Enqueuer) exec(ctx context.Context, runs []pipeRun, deadline time.Time) {
	var wg sync.WaitGroup
	for i := range runs {
		r := &runs[i]
		if r.pipe == nil {
			continue
		}
		if e.opts.MinReplicas > 0 {
			r.wait = redis.NewIntCmd(ctx, "wait", e.opts.MinReplicas, waitTimeout(deadline).Milliseconds())
			r.once.Cmder = r.wait
			_ = r.pipe.Process(ctx, &r.once)
		}
		if len(runs) == 1 {
			_, _ = r.pipe.Exec(ctx)
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmds, _ := r.pipe.Exec(ctx)
			e.reloadOnRedirect(ctx, cmds)
		}()
	}
	wg.Wait()
}

// reloadOnRedirect asks the cluster client to reload its slot map when a node answered
// a command with MOVED or ASK: the slot moved (resharding, failover).
func (e *Enqueuer) reloadOnRedirect(ctx context.Context, cmds []redis.Cmder) {
	cc, ok := e.client.(*redis.ClusterClient)
	if !ok {
		return
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil && (redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK")) {
			cc.ReloadState(ctx)
			return
		}
	}
}
