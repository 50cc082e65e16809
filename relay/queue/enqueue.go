package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/delivery"
)

// ErrUnavailable means the queue did not take the event: Redis is unreachable or slower
// than the enqueue timeout, the provider is over its high-water mark, or the Enqueuer is
// stopped. Answer 503 with Retry-After; a client that resends with the same event id is
// safe, because the dedupe marker turns a resend of an event that did get in (the reply
// was lost, not the write) into a duplicate, not a second entry.
var ErrUnavailable = errors.New("queue: unavailable")

// ErrOverHighWater means the provider's backlog (stream + retry set) is over the
// high-water mark: its upstream is not keeping up, and taking more would only grow Redis.
// It wraps ErrUnavailable. Answer 503 with a long Retry-After.
var ErrOverHighWater = fmt.Errorf("%w: provider backlog over the high-water mark", ErrUnavailable)

// EnqueuerOptions configure an Enqueuer; the config package supplies the values.
type EnqueuerOptions struct {
	// Writers is the number of group-commit writers, each with at most one pipeline in
	// flight. Values below 1 mean 1. Fewer writers make larger pipelines, and Redis and
	// the relay pay per pipeline (syscalls, wake-ups); more keep more pipelines in flight,
	// which shortens the wait for a free writer and keeps ingest going while one pipeline
	// waits on a slow connection. BenchmarkEnqueue (events without a marker, 4 providers,
	// 64 concurrent): 1, 2 and 4 writers give the same throughput; Redis spends 4.2, 4.5
	// and 4.8 µs per event and the relay 5.5, 6.4 and 6.9 (32, 19 and 10 events per
	// pipeline). The config default is 2: most of the saving, and a spare pipeline.
	Writers int
	// MaxBatch caps the enqueues of one pipeline. Values below 1 mean 1.
	MaxBatch int
	// Timeout bounds each Enqueue (redis.enqueue_timeout). Zero or less means 1 s.
	Timeout time.Duration
	// Providers are the providers whose backlog the high-water monitor polls, and whose
	// keys are computed once rather than per event.
	Providers []string
	// HighWaterMark is the per-provider backlog above which Enqueue refuses with
	// ErrOverHighWater. Negative disables the monitor.
	HighWaterMark int64
	// HighWaterPoll is how often the backlog is polled. Zero means 1 s.
	HighWaterPoll time.Duration
	// MinReplicas (redis.min_replicas_acked) ends every pipeline with WAIT: its events are
	// answered as written only once this many replicas acknowledged them, else with
	// ErrUnavailable (the events are in the master, and a resend with the same client id
	// is answered as a duplicate). Zero: no WAIT. On a Cluster client each master then
	// gets its own pipeline and WAIT.
	MinReplicas int
}

// Stats count the Enqueuer's work since it was built.
type Stats struct {
	// Pipelines is the number of pipelines sent (NOSCRIPT redos not counted).
	Pipelines uint64
	// Commands is the number of commands in them: one XADD per event without a marker,
	// and one script call per provider per pipeline carrying that provider's events with
	// one (NOSCRIPT redos not counted).
	Commands uint64
	// Events is the number of events those calls carried (new, duplicate or failed).
	Events uint64
	// ScriptReloads counts pipelines redone because Redis had lost the script.
	ScriptReloads uint64
	// UnderReplicated counts provider groups (one provider's events in one group commit)
	// refused because WAIT saw fewer than MinReplicas replicas acknowledge them.
	UnderReplicated uint64
}

// Enqueuer appends events durably to their provider's stream, group-committing concurrent
// enqueues: each writer takes one request, drains up to MaxBatch-1 more without waiting,
// sends them as one pipeline (one XADD per event whose id the relay generated, one script
// call per provider for the events that carry a caller's id and so need their marker
// written atomically with them), and answers each request with its own event's result.
type Enqueuer struct {
	client redis.UniversalClient
	keys   Keys
	opts   EnqueuerOptions
	log    *zap.Logger
	sha    string

	events map[string][]string     // provider → events key per shard; read-only after NewEnqueuer
	seen   map[string][]string     // provider → Seen key without caller and id per shard; read-only too
	over   map[string]*atomic.Bool // provider → over its high-water mark; keys read-only
	// numKeys[i] is strconv.Itoa(i) for every key count a call can have (1..MaxBatch+1),
	// passed by pointer: boxing a *string does not allocate, boxing a string does.
	numKeys []string

	reqs    chan *request
	stopped chan struct{} // closed when Run has stopped its writers
	running atomic.Bool
	pool    sync.Pool // of *request

	pipelines, commands, nevents, reloads, underReplicated atomic.Uint64
	failing                                                atomic.Bool // for logging state changes only
}

// IDSource says who chose an event's id, which decides whether it gets a dedupe marker.
type IDSource uint8

const (
	// RelayID: the relay generated the id. No client can resend it (it never saw the id
	// before the 202), so the event gets no marker and costs one pipelined XADD.
	RelayID IDSource = iota
	// ClientID: the caller chose the id (Idempotency-Key, a batch item's id). The event is
	// written atomically with a 24 h marker scoped to the caller (Keys.Seen): a resend
	// within 24 h is a duplicate, the same id from another caller a different event.
	ClientID
)

// request is one Enqueue in flight. The caller fills it, hands it to a writer through the
// channel and owns it again only once it has received the reply (then it is pooled); a
// caller that gives up abandons it to the writer and the garbage collector.
type request struct {
	ctx      context.Context
	deadline time.Time
	events   string
	entry    entry
	reply    chan result
	// xadd and cmd are the XADD of an event without a marker (RelayID), its arguments
	// reused from one use of the pooled request to the next.
	xadd []any
	cmd  *redis.Cmd
	once onceCmd // cmd as the pipeline holds it
}

type result struct {
	duplicate bool
	err       error
}

// NewEnqueuer builds an Enqueuer on client. Call Run to start its writers: they are what
// answers, and times out, every Enqueue.
func NewEnqueuer(client redis.UniversalClient, keys Keys, opts EnqueuerOptions, log *zap.Logger) *Enqueuer {
	opts.Writers = max(opts.Writers, 1)
	opts.MaxBatch = max(opts.MaxBatch, 1)
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.HighWaterPoll <= 0 {
		opts.HighWaterPoll = time.Second
	}
	e := &Enqueuer{
		client:  client,
		keys:    keys,
		opts:    opts,
		log:     log,
		sha:     redis.NewScript(enqueueScript).Hash(),
		events:  make(map[string][]string, len(opts.Providers)),
		seen:    make(map[string][]string, len(opts.Providers)),
		over:    make(map[string]*atomic.Bool, len(opts.Providers)),
		numKeys: make([]string, opts.MaxBatch+2),
		reqs:    make(chan *request, opts.Writers*opts.MaxBatch),
		stopped: make(chan struct{}),
	}
	for i := range e.numKeys {
		e.numKeys[i] = strconv.Itoa(i)
	}
	for _, p := range opts.Providers {
		for _, k := range keys.EachShard() {
			e.events[p] = append(e.events[p], k.Events(p))
			e.seen[p] = append(e.seen[p], k.seenPrefix(p))
		}
		e.over[p] = new(atomic.Bool)
	}
	e.pool.New = func() any { return &request{reply: make(chan result, 1)} }
	return e
}

// Stats returns the counters.
func (e *Enqueuer) Stats() Stats {
	return Stats{Pipelines: e.pipelines.Load(), Commands: e.commands.Load(), Events: e.nevents.Load(),
		ScriptReloads: e.reloads.Load(), UnderReplicated: e.underReplicated.Load()}
}

// Enqueue appends m to its provider's stream and returns once Redis has answered: nil
// means the entry is in Redis (duplicate: src is ClientID and this caller already
// enqueued an event with this id within 24 h, and nothing was added). Otherwise the error wraps ErrUnavailable (or
// ErrOverHighWater, which wraps it), and comes no later than ctx's deadline or the
// enqueue timeout, whichever is first (give or take a writer's wake-up: the writers
// enforce the timeout, see writer.write). After such an error the event may still have
// been written; only a resend with the same id is safe.
//
// Enqueue copies m before handing it to a writer and does not retain m or its Body after
// it returns, so callers may pass bytes that are recycled afterwards (fasthttp).
func (e *Enqueuer) Enqueue(ctx context.Context, m *delivery.Message, src IDSource) (duplicate bool, err error) {
	if m.ID == "" || m.Provider == "" || m.Route == "" {
		return false, errors.New("queue: message without ID, Provider or Route (a relay bug)")
	}
	if o := e.over[m.Provider]; o != nil && o.Load() {
		return false, fmt.Errorf("%w: %s", ErrOverHighWater, m.Provider)
	}
	select {
	case <-e.stopped:
		return false, e.stoppedErr()
	default:
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}

	r := e.newRequest(ctx, m, src)

	// No timer of its own: the writers answer every request by its deadline (see
	// writer.write), which saves each request arming, stopping and selecting on a timer.
	select {
	case e.reqs <- r: // the usual case: room in the channel
	default:
		select {
		case e.reqs <- r:
		case <-ctx.Done():
			e.release(r) // never handed over: still ours
			return false, fmt.Errorf("%w: waiting for a writer: %w", ErrUnavailable, ctx.Err())
		case <-e.stopped:
			e.release(r)
			return false, e.stoppedErr()
		}
	}

	// From here on a writer may hold r: on every path but the reply, abandon it.
	select {
	case res := <-r.reply:
		e.release(r)
		return res.duplicate, res.err
	case <-ctx.Done():
		return false, fmt.Errorf("%w: waiting for redis: %w", ErrUnavailable, ctx.Err())
	case <-e.stopped:
		select {
		case res := <-r.reply: // the reply raced the stop
			e.release(r)
			return res.duplicate, res.err
		default:
		}
		return false, e.stoppedErr()
	}
}

// newRequest takes a pooled request and fills it with a copy of m, due by the enqueue
// timeout.
func (e *Enqueuer) newRequest(ctx context.Context, m *delivery.Message, src IDSource) *request {
	r := e.pool.Get().(*request)
	r.ctx = ctx
	r.deadline = time.Now().Add(e.opts.Timeout)
	// The shard hashes the event's id: with a caller's id (ClientID) a resend hashes
	// the same, so it meets its Seen marker there.
	shard := e.keys.ShardOf(m.ID)
	var seen string
	if ks, ok := e.events[m.Provider]; ok {
		r.events, seen = ks[shard], e.seen[m.Provider][shard]
	} else {
		k := e.keys.ForShard(shard)
		r.events, seen = k.Events(m.Provider), k.seenPrefix(m.Provider)
	}
	r.entry.set(m, seen, src)
	return r
}

// release pools r once no writer can touch it any more.
func (e *Enqueuer) release(r *request) {
	r.ctx = nil
	if cap(r.entry.buf) > 64<<10 {
		r.entry.buf = nil // don't keep one huge body's buffer alive in the pool
	}
	e.pool.Put(r)
}

func (e *Enqueuer) stoppedErr() error {
	return fmt.Errorf("%w: the enqueuer is stopped (shutting down)", ErrUnavailable)
}

// Run loads the script, runs the writers and the high-water monitor until ctx is done,
// then answers every request still queued with ErrUnavailable and returns nil. A pipeline
// in flight when ctx ends still completes (within the enqueue timeout), so its callers
// get their real answer. Run may be called once.
func (e *Enqueuer) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("queue: Enqueuer.Run called twice")
	}
	// Preloading saves the first pipeline a NOSCRIPT round trip; if Redis is down now,
	// the writers load the script on first use.
	lctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	if err := e.client.ScriptLoad(lctx, enqueueScript).Err(); err != nil {
		e.log.Warn("cannot preload the enqueue script; it will be loaded on first use", zap.Error(err))
	}
	cancel()

	var wg sync.WaitGroup
	for range e.opts.Writers {
		wg.Go(func() { e.newWriter().run(ctx) })
	}
	if e.opts.HighWaterMark >= 0 && len(e.opts.Providers) > 0 {
		wg.Go(func() { e.monitor(ctx) })
	}
	wg.Wait()
	close(e.stopped)
	for {
		select {
		case r := <-e.reqs:
			r.reply <- result{err: e.stoppedErr()}
		default:
			return nil
		}
	}
}

// logHealth logs when enqueues start and stop failing, not every failure.
func (e *Enqueuer) logHealth(err error) {
	if err != nil {
		if e.failing.CompareAndSwap(false, true) {
			e.log.Warn("enqueue failing: ingest answers 503 until Redis is back", zap.Error(err))
		}
		return
	}
	if e.failing.CompareAndSwap(true, false) {
		e.log.Info("enqueue recovered")
	}
}
