package forward

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/relay/queue"
)

// Options are what New needs. Zero tunables take the defaults given.
type Options struct {
	Adapter  delivery.Adapter
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

// Forwarder delivers one provider's events. Its parts, one file each: a fetcher takes
// rate-limit slots and reads (or reclaims, reclaimer.go) entries for free senders;
// `workers` senders make the upstream requests; a recorder writes outcomes in pipelines;
// a mover brings due retries back into the stream.
type Forwarder struct {
	o        Options
	provider string
	log      *zap.Logger
	// limiter keeps this process within rate_limit even when Redis cannot be asked; the
	// slots reserved in Redis (queue.TakeSlots) keep the whole deployment within it.
	limiter *rate.Limiter
	// interval is 1/rate_limit in µs: the spacing of reserved slots.
	interval float64
	breaker  *gobreaker.TwoStepCircuitBreaker[struct{}]
	// pausedUntil (unix ns) is set from an upstream's Retry-After: no request before it.
	pausedUntil atomic.Int64
	// room bounds the jobs in hand (being sent, or read ahead and waiting for a sender)
	// to perSender per sender: entries never wait long in this process while other
	// relays could send them, yet reads stay large as senders free up one at a time.
	room      *semaphore.Weighted
	perSender int // jobsPerSender
	jobs      chan job
	records   chan record
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
		// Every line names the provider.
		o: o, provider: p, log: o.Log.With(zap.String("provider", p)),
		// Burst 1: the configured rate is a ceiling, never exceeded even briefly.
		limiter:   rate.NewLimiter(rate.Limit(d.RateLimit), 1),
		interval:  1e6 / d.RateLimit,
		perSender: jobsPerSender(d.Timeout, o.Visibility),
		records:   make(chan record, recordQueue),
	}
	f.room = semaphore.NewWeighted(int64(f.perSender * d.Workers))
	f.jobs = make(chan job, f.perSender*d.Workers)
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

// Run delivers until ctx is done, then lets attempts in flight finish for up to Grace and
// writes their outcomes; entries it could not finish stay pending and are reclaimed by
// another consumer. Run may be called once.
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

	// The recorder outlives every part that produces outcomes, so none is lost.
	recorded := make(chan struct{})
	go func() { defer close(recorded); f.recorder() }()
	defer func() { close(f.records); <-recorded }()

	var senders sync.WaitGroup
	for range f.o.Delivery.Workers {
		senders.Go(func() { f.sender(ctx) })
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { defer close(f.jobs); f.fetcher(gctx, f.o.Consumer+"-f"); return nil })
	g.Go(func() error { f.mover(gctx); return nil })
	err := g.Wait()
	senders.Wait()
	return err
}

// ensureGroup creates the consumer group (see queue.CreateGroup).
func (f *Forwarder) ensureGroup(ctx context.Context) error {
	if err := queue.CreateGroup(ctx, f.o.Client, f.o.Keys, f.provider); err != nil {
		return fmt.Errorf("forward %s: create consumer group: %w", f.provider, err)
	}
	return nil
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

// pauseLeft is what remains of a Retry-After pause (0: none).
func (f *Forwarder) pauseLeft() time.Duration {
	until := f.pausedUntil.Load()
	if until == 0 {
		return 0
	}
	return max(time.Until(time.Unix(0, until)), 0)
}

// pause stops every sender of the provider until now+d (upstream asked for it).
func (f *Forwarder) pause(d time.Duration) {
	until := time.Now().Add(d).UnixNano()
	for {
		cur := f.pausedUntil.Load()
		if cur >= until || f.pausedUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}
