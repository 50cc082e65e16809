package admin

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/relay/queue"
)

// defaultScrapeTimeout bounds the Redis reads of one scrape.
const defaultScrapeTimeout = 2 * time.Second

// Queue states (label "state" of relay_queue_depth).
const (
	stateReady   = "ready"
	statePending = "pending"
	stateRetry   = "retry"
	stateDead    = "dead"
)

// CollectorOptions are what NewCollector needs.
type CollectorOptions struct {
	Client redis.Cmdable
	Keys   queue.Keys
	// Providers are the enabled providers.
	Providers []string
	// Timeout bounds one scrape's Redis reads. Default 2s.
	Timeout time.Duration
	Log     *zap.Logger
}

// Collector exports the queues' state, read from Redis at scrape time (one TIME call and
// one pipeline for every provider): relay_queue_depth{provider,state},
// relay_oldest_undelivered_seconds{provider} (approximate, see the package doc) and
// relay_queue_scrape_errors_total{provider}. A provider whose numbers could not be read
// has no depth or age sample in that scrape, and its error counter goes up.
type Collector struct {
	rd        reader
	providers []string
	timeout   time.Duration
	log       *zap.Logger
	depth     *prometheus.Desc
	oldest    *prometheus.Desc
	errors    *prometheus.CounterVec
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector builds the collector; register it on the /metrics registry.
func NewCollector(o CollectorOptions) *Collector {
	if o.Timeout <= 0 {
		o.Timeout = defaultScrapeTimeout
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	c := &Collector{
		rd: reader{client: o.Client, keys: o.Keys}, providers: o.Providers, timeout: o.Timeout, log: o.Log,
		depth: prometheus.NewDesc("relay_queue_depth",
			"Events per provider and state: ready (in the stream, not yet read), pending (read, not yet settled), retry (waiting in the retry set), dead (dead-lettered).",
			[]string{"provider", "state"}, nil),
		oldest: prometheus.NewDesc("relay_oldest_undelivered_seconds",
			"Age of the oldest undelivered event per provider (approximate: the stream's first entry and the 100 retries due soonest).",
			[]string{"provider"}, nil),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_queue_scrape_errors_total",
			Help: "Scrapes whose queue numbers for a provider could not be read from Redis.",
		}, []string{"provider"}),
	}
	for _, p := range o.Providers {
		c.errors.WithLabelValues(p) // export 0 before the first error
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.oldest
	c.errors.Describe(ch)
}

// Collect implements prometheus.Collector. It is the root of a scrape's Redis calls
// (prometheus gives it no context), bounded by the collector's timeout.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	depths, err := c.rd.snapshot(ctx, c.providers, false)
	if err != nil {
		c.log.Warn("queue metrics: redis failed", zap.Error(err))
		for _, p := range c.providers {
			c.errors.WithLabelValues(p).Inc()
		}
	}
	for i, d := range depths {
		p := c.providers[i]
		if d.err != nil {
			c.log.Warn("queue metrics: redis failed", zap.String("provider", p), zap.Error(d.err))
			c.errors.WithLabelValues(p).Inc()
			continue
		}
		for _, s := range [...]struct {
			state string
			n     int64
		}{{stateReady, d.ready}, {statePending, d.pending}, {stateRetry, d.retry}, {stateDead, d.dead}} {
			ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(s.n), p, s.state)
		}
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, d.oldest.Seconds(), p)
	}
	c.errors.Collect(ch)
}
