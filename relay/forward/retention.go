package forward

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/relay/queue"
)

// RetentionOptions are what NewRetention needs.
type RetentionOptions struct {
	Client redis.UniversalClient
	Keys   queue.Keys
	// Providers maps each enabled provider to its dead-letter retention.
	Providers map[string]config.DeadLetters
	Log       *zap.Logger
	// Registerer exports relay_dead_letters_dropped_total; nil: not exported.
	Registerer prometheus.Registerer
	// Every is the period between passes. Default 30s (each pass is jittered by ±20 %).
	Every time.Duration
}

// Retention keeps every dead-letter stream within its provider's dead_letters bounds.
// Every relay runs one; passes are idempotent, so several relays trimming the same
// stream drop each letter once between them. A dropped letter is never silent: it is
// counted in relay_dead_letters_dropped_total{provider,reason} and logged.
type Retention struct {
	o       RetentionOptions
	dropped *prometheus.CounterVec
}

// NewRetention builds the retention part and registers its metric.
func NewRetention(o RetentionOptions) (*Retention, error) {
	if o.Every <= 0 {
		o.Every = 30 * time.Second
	}
	r := &Retention{o: o, dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "relay_dead_letters_dropped_total",
		Help: "Dead letters dropped by retention (dead_letters.max_age or max_count), by reason: max_age or max_count.",
	}, []string{"provider", "reason"})}
	if o.Registerer != nil {
		if err := o.Registerer.Register(r.dropped); err != nil {
			return nil, err
		}
	}
	for p := range o.Providers {
		for _, reason := range []string{"max_age", "max_count"} {
			r.dropped.WithLabelValues(p, reason) // exported at 0 from the start
		}
	}
	return r, nil
}

// Run trims until ctx ends, first right away.
func (r *Retention) Run(ctx context.Context) error {
	for {
		r.Pass(ctx)
		jitter := time.Duration(rand.Int64N(int64(r.o.Every)/5*2+1)) - r.o.Every/5
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(r.o.Every + jitter):
		}
	}
}

// Pass trims every provider's dead letters once, shard by shard: max_count bounds each
// shard's dead-letter stream (docs/storage.md, "Shards").
func (r *Retention) Pass(ctx context.Context) {
	for p, dl := range r.o.Providers {
		for _, keys := range r.o.Keys.EachShard() {
			r.trim(ctx, keys, p, dl)
		}
	}
}

// trim applies dl to one shard of provider p.
func (r *Retention) trim(ctx context.Context, keys queue.Keys, p string, dl config.DeadLetters) {
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	t, err := queue.TrimDead(tctx, r.o.Client, keys, p, dl.MaxAge, dl.MaxCount)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			r.o.Log.Warn("could not apply the dead-letter retention; will try again", zap.String("provider", p),
				zap.Int("shard", keys.Shard), zap.Error(err))
		}
		return
	}
	r.dropped.WithLabelValues(p, "max_age").Add(float64(t.ByAge))
	r.dropped.WithLabelValues(p, "max_count").Add(float64(t.ByCount))
	if t.ByAge > 0 || t.ByCount > 0 {
		r.o.Log.Warn("dead letters dropped by retention (dead_letters.max_age / max_count)",
			zap.String("provider", p), zap.Int64("by_age", t.ByAge), zap.Int64("by_count", t.ByCount),
			zap.Duration("max_age", dl.MaxAge), zap.Int64("max_count", dl.MaxCount))
	}
}
