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
	// TraceKeep, when > 0, records each attempt in the provider's trace, keeping the last
	// TraceKeep records (see queue.TraceWriter); 0: no trace.
	TraceKeep int
	// Observer sees every recorded outcome (the admin live tail); optional.
	Observer Observer
	// ConsumerExpiry removes consumers (relays that stopped) idle this long and holding
	// nothing pending from the provider's group (redis.consumer_expiry). Default 1h.
	ConsumerExpiry time.Duration
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
	// slots reserved in Redis (queue.Turn) keep the whole deployment within it.
	limiter *rate.Limiter
	// interval is 1/rate_limit in µs: the spacing of reserved slots.
	interval float64
	// lanes are the provider's independent upstream APIs (see Lanes), each with its own
	// breaker and Retry-After pause; one lane unless the adapter implements Lanes.
	lanes []*lane
	// laned is the adapter's Lanes, or nil.
	laned Lanes
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

// Lanes is implemented by an adapter whose provider has independent upstream APIs (their
// own hosts, credentials and limits, as Brevo's v3 API and its legacy tracker): each lane
// gets its own circuit breaker and Retry-After pause, so a fault of one API (a bad key, a
// 429) does not stop delivery to the others. The stream, workers and rate limit remain
// the provider's, and events of different lanes never share a request. Without it, the
// provider is one lane.
type Lanes interface {
	// Lanes names every lane, at least one; the first is the lane of a message Lane
	// does not place.
	Lanes() []string
	// Lane returns m's lane, one of Lanes().
	Lane(m *delivery.Message) string
}

// lane is one breaker and one Retry-After pause of a provider.
type lane struct {
	name    string
	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
	// state is the breaker's state as last reported by OnStateChange (for the gauge,
	// which must not call a breaker from inside another's callback).
	state atomic.Int32
	// pausedUntil (unix ns) is set from an upstream's Retry-After, this relay's or
	// another's (see shared.go): no request before it.
	pausedUntil atomic.Int64
	// shared is the deployment's breaker state (a gobreaker.State) as the last turn read
	// it, open until openUntil (unix ns); tripped is set when this relay's breaker opens,
	// until the next request shares that (see shared.go).
	shared    atomic.Int32
	openUntil atomic.Int64
	tripped   atomic.Bool
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
	if o.ConsumerExpiry <= 0 {
		o.ConsumerExpiry = time.Hour
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
	names := []string{""}
	if l, ok := o.Adapter.(Lanes); ok && len(l.Lanes()) > 0 {
		f.laned, names = l, l.Lanes()
	}
	for _, name := range names {
		f.lanes = append(f.lanes, f.newLane(name))
	}
	f.setBreakerGauge()
	return f, nil
}

// newLane builds a lane and its breaker.
func (f *Forwarder) newLane(name string) *lane {
	d := f.o.Delivery
	l := &lane{name: name}
	log := f.log
	if name != "" {
		log = log.With(zap.String("lane", name))
	}
	l.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        f.provider,
		MaxRequests: 1,
		Timeout:     d.Breaker.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(d.Breaker.Failures) },
		IsSuccessful: func(err error) bool {
			return err == nil
		},
		IsExcluded: func(err error) bool {
			return errors.Is(err, errNoWork) || errors.Is(err, context.Canceled)
		},
		// Runs under the breaker's lock: only record, never call a breaker.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			log.Warn("circuit breaker", zap.String("from", from.String()), zap.String("to", to.String()))
			l.state.Store(int32(to))
			if to == gobreaker.StateOpen {
				l.tripped.Store(true)
			}
			f.setBreakerGauge()
		},
	})
	return l
}

// laneOf is m's lane: the adapter's choice, or the first lane.
func (f *Forwarder) laneOf(m *delivery.Message) *lane {
	if f.laned != nil {
		name := f.laned.Lane(m)
		for _, l := range f.lanes {
			if l.name == name {
				return l
			}
		}
	}
	return f.lanes[0]
}

// stateRank orders breaker states from healthy to stopped.
var stateRank = map[gobreaker.State]int{gobreaker.StateClosed: 0, gobreaker.StateHalfOpen: 1, gobreaker.StateOpen: 2}

// setBreakerGauge sets the provider's breaker gauge to its worst lane's state, the worse
// of this relay's breaker (as last reported) and the deployment's (0 closed, 1
// half-open, 2 open).
func (f *Forwarder) setBreakerGauge() {
	if f.o.Metrics == nil {
		return
	}
	worst := 0
	for _, l := range f.lanes {
		worst = max(worst, stateRank[gobreaker.State(l.state.Load())], stateRank[l.sharedState()])
	}
	f.o.Metrics.breaker.WithLabelValues(f.provider).Set(float64(worst))
}

// BreakerState reports the provider's breaker state (for the admin API and tests), the
// worse of this relay's and the deployment's: with several lanes, the worst of theirs
// (open if any lane is open).
func (f *Forwarder) BreakerState() gobreaker.State {
	worst := gobreaker.StateClosed
	for _, l := range f.lanes {
		if s := l.effective(); stateRank[s] > stateRank[worst] {
			worst = s
		}
	}
	return worst
}

// readState is what the fetcher may read for: closed when any lane is closed (full
// reads), else half-open when any lane is (one request: its probe), else open (all
// lanes stopped: no read).
func (f *Forwarder) readState() gobreaker.State {
	best := gobreaker.StateOpen
	for _, l := range f.lanes {
		if s := l.effective(); stateRank[s] < stateRank[best] {
			best = s
		}
	}
	return best
}

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

// pauseLeft is what remains of the lane's Retry-After pause (0: none).
func (l *lane) pauseLeft() time.Duration {
	until := l.pausedUntil.Load()
	if until == 0 {
		return 0
	}
	return max(time.Until(time.Unix(0, until)), 0)
}

// pause stops every request of the lane until now+d (upstream asked for it).
func (l *lane) pause(d time.Duration) {
	until := time.Now().Add(d).UnixNano()
	for {
		cur := l.pausedUntil.Load()
		if cur >= until || l.pausedUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

// pauseLeft is how long every lane stays paused (0: some lane is not).
func (f *Forwarder) pauseLeft() time.Duration {
	least := time.Duration(-1)
	for _, l := range f.lanes {
		if d := l.pauseLeft(); least < 0 || d < least {
			least = d
		}
	}
	return max(least, 0)
}
