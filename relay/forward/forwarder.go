package forward

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"eventrelay/config"
	"eventrelay/providers"
	"eventrelay/relay/queue"
)

// Adapter is what a Forwarder needs of a provider.
type Adapter interface {
	Provider() string
	BatchKey(m *queue.Message) (key string, weight int)
	MaxBatchWeight() int
	Deliver(ctx context.Context, batch []*queue.Message) []error
}

var _ Adapter = providers.Adapter(nil)

// Options are what New needs. Zero tunables take the defaults given.
type Options struct {
	Adapter  Adapter
	Delivery config.Delivery
	Client   redis.UniversalClient
	Keys     queue.Keys
	// Consumer is this process's unique consumer name prefix (host-pid-random).
	Consumer string
	Log      *zap.Logger
	// Metrics is shared by every Forwarder; optional.
	Metrics *Metrics

	// Block is how long a read waits for new entries. Default 2s.
	Block time.Duration
	// Visibility is how long an entry may stay pending before another consumer takes it
	// over. It must exceed the upstream timeout. Default 2×timeout + 10s.
	Visibility time.Duration
	// MoveEvery is the retry mover's period. Default 500ms.
	MoveEvery time.Duration
	// Grace bounds in-flight attempts after shutdown starts. Default the upstream timeout.
	Grace time.Duration
}

// Forwarder delivers one provider's events.
type Forwarder struct {
	o        Options
	provider string
	log      *zap.Logger
	limiter  *rate.Limiter
	// shared spaces requests across every relay of the deployment (a GCRA in Redis), so
	// rate_limit holds however many relays run; limiter keeps this process within it
	// even when Redis cannot be asked.
	shared      *redis_rate.Limiter
	sharedLimit redis_rate.Limit
	breaker     *gobreaker.TwoStepCircuitBreaker[struct{}]
	// pausedUntil (unix ns) is set from an upstream's Retry-After: no request before it.
	pausedUntil atomic.Int64
	reclaimed   chan *entry
	events      string
	retry       string
	dead        string
	// attempts is the parent of attempt contexts: it is cancelled Grace after shutdown.
	attempts context.Context
}

// errNoWork tells the breaker that an allowed turn found nothing to send; it is excluded
// from the breaker's counts.
var errNoWork = errors.New("no work")

// New builds a Forwarder.
func New(o Options) (*Forwarder, error) {
	d := o.Delivery
	if o.Adapter == nil || o.Client == nil || o.Log == nil || o.Consumer == "" {
		return nil, errors.New("forward: Adapter, Client, Log and Consumer are required")
	}
	if d.Workers < 1 || d.Timeout <= 0 || d.RateLimit <= 0 || d.MaxAttempts < 1 || d.Breaker.Failures < 1 {
		return nil, errors.New("forward: delivery settings must be defaulted and validated (config.Load)")
	}
	if o.Block <= 0 {
		o.Block = 2 * time.Second
	}
	if o.Visibility <= 0 {
		o.Visibility = 2*d.Timeout + 10*time.Second
	}
	if o.Visibility <= d.Timeout {
		return nil, fmt.Errorf("forward: visibility timeout %v must exceed the upstream timeout %v", o.Visibility, d.Timeout)
	}
	if o.MoveEvery <= 0 {
		o.MoveEvery = 500 * time.Millisecond
	}
	if o.Grace <= 0 {
		o.Grace = d.Timeout
	}
	p := o.Adapter.Provider()
	f := &Forwarder{
		o: o, provider: p, log: o.Log,
		// Burst 1: the configured rate is a ceiling, never exceeded even briefly.
		limiter:     rate.NewLimiter(rate.Limit(d.RateLimit), 1),
		shared:      redis_rate.NewLimiter(o.Client),
		sharedLimit: gcraLimit(d.RateLimit),
		reclaimed:   make(chan *entry),
		events:      o.Keys.Events(p), retry: o.Keys.Retry(p), dead: o.Keys.Dead(p),
	}
	f.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        p,
		MaxRequests: 1,
		Timeout:     d.Breaker.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(d.Breaker.Failures) },
		IsSuccessful: func(err error) bool {
			return err == nil
		},
		IsExcluded: func(err error) bool {
			return errors.Is(err, errNoWork) || errors.Is(err, context.Canceled)
		},
		// Runs under the breaker's lock: only record, never call the breaker.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			f.log.Warn("circuit breaker", zap.String("from", from.String()), zap.String("to", to.String()))
			f.setBreakerGauge(to)
		},
	})
	f.setBreakerGauge(gobreaker.StateClosed)
	return f, nil
}

func (f *Forwarder) setBreakerGauge(s gobreaker.State) {
	if f.o.Metrics == nil {
		return
	}
	v := map[gobreaker.State]float64{gobreaker.StateClosed: 0, gobreaker.StateHalfOpen: 1, gobreaker.StateOpen: 2}[s]
	f.o.Metrics.breaker.WithLabelValues(f.provider).Set(v)
}

// BreakerState reports the breaker's state (for the admin API and tests).
func (f *Forwarder) BreakerState() gobreaker.State { return f.breaker.State() }

// Run delivers until ctx is done, then lets attempts in flight finish for up to Grace;
// entries it could not finish stay pending and are reclaimed by another consumer.
func (f *Forwarder) Run(ctx context.Context) error {
	if err := f.ensureGroup(ctx); err != nil {
		return err
	}
	attempts, cancelAttempts := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelAttempts()
	f.attempts = attempts
	stopGrace := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(f.o.Grace, cancelAttempts)
		context.AfterFunc(attempts, func() { t.Stop() })
	})
	defer stopGrace()

	g, gctx := errgroup.WithContext(ctx)
	for i := range f.o.Delivery.Workers {
		consumer := fmt.Sprintf("%s-w%d", f.o.Consumer, i)
		g.Go(func() error { f.worker(gctx, consumer); return nil })
	}
	g.Go(func() error { f.mover(gctx); return nil })
	g.Go(func() error { f.reclaimer(gctx, f.o.Consumer+"-r"); return nil })
	return g.Wait()
}

// ensureGroup creates the consumer group at the stream's start. After a Redis restart
// that lost the group, starting at 0 re-reads what is still in the stream: only
// undelivered entries are there, since delivered ones are deleted.
func (f *Forwarder) ensureGroup(ctx context.Context) error {
	err := f.o.Client.XGroupCreateMkStream(ctx, f.events, queue.Group, "0").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return fmt.Errorf("forward %s: create consumer group: %w", f.provider, err)
	}
	return nil
}

// worker takes turns: wait for the provider's pause and rate limiter, ask the breaker,
// and only then take entries off the stream, so an open breaker leaves them queued.
func (f *Forwarder) worker(ctx context.Context, consumer string) {
	for ctx.Err() == nil {
		if !f.waitTurn(ctx) {
			return
		}
		done, err := f.breaker.Allow()
		if err != nil { // open, or half-open with its probe already out
			sleep(ctx, min(f.o.Delivery.Breaker.OpenFor/4, 250*time.Millisecond))
			continue
		}
		entries, err := f.take(ctx, consumer)
		if err != nil || len(entries) == 0 {
			done(errNoWork)
			if err != nil && ctx.Err() == nil {
				f.log.Warn("read failed", zap.Error(err))
				sleep(ctx, time.Second)
			}
			continue
		}
		f.process(ctx, consumer, entries, done)
	}
}

// waitTurn waits out a Retry-After pause, then this process's rate limiter, then the
// deployment's.
func (f *Forwarder) waitTurn(ctx context.Context) bool {
	if d := f.pauseLeft(); d > 0 && !sleep(ctx, d) {
		return false
	}
	if f.limiter.Wait(ctx) != nil {
		return false
	}
	for {
		res, err := f.shared.Allow(ctx, f.o.Keys.Rate(f.provider), f.sharedLimit)
		switch {
		case err != nil:
			// Redis unreachable: nothing can be recorded either, and the local limiter
			// still caps this process; the read that follows will wait and retry.
			return ctx.Err() == nil
		case res.Allowed > 0:
			return true
		case !sleep(ctx, res.RetryAfter):
			return false
		}
	}
}

// gcraLimit expresses requests per second as a GCRA limit with a burst of one: one
// request per 1/rate seconds, to a thousandth of a request per second.
func gcraLimit(perSecond float64) redis_rate.Limit {
	return redis_rate.Limit{Rate: max(1, int(math.Round(perSecond*1000))), Burst: 1, Period: 1000 * time.Second}
}

// pauseLeft is what remains of a Retry-After pause (0: none).
func (f *Forwarder) pauseLeft() time.Duration {
	until := f.pausedUntil.Load()
	if until == 0 {
		return 0
	}
	return max(time.Until(time.Unix(0, until)), 0)
}

// pause stops every worker of the provider until now+d (upstream asked for it).
func (f *Forwarder) pause(d time.Duration) {
	until := time.Now().Add(d).UnixNano()
	for {
		cur := f.pausedUntil.Load()
		if cur >= until || f.pausedUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

// readCount is how many entries one read takes: a full batch where the provider
// batches, else one (more would sit pending while others wait).
func (f *Forwarder) readCount() int64 { return int64(max(f.o.Adapter.MaxBatchWeight(), 1)) }

// take returns reclaimed entries first, else new ones from the stream.
func (f *Forwarder) take(ctx context.Context, consumer string) ([]*entry, error) {
	select {
	case e := <-f.reclaimed:
		return []*entry{e}, nil
	default:
	}
	res, err := f.o.Client.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: queue.Group, Consumer: consumer, Streams: []string{f.events, ">"},
		Count: f.readCount(), Block: f.o.Block,
	}).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil
	case redis.HasErrorPrefix(err, "NOGROUP"):
		f.log.Error("consumer group missing (Redis restarted without persistence?): recreating it")
		return nil, f.ensureGroup(ctx)
	case err != nil:
		return nil, err
	}
	var out []*entry
	for _, s := range res {
		for _, m := range s.Messages {
			out = append(out, newEntry(f.provider, consumer, m.ID, m.Values))
		}
	}
	return out, nil
}

// sleep waits d or until ctx is done; it reports whether the full d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
