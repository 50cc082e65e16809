package forward

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the delivery metrics documented in docs/api.md (Metrics), shared by every Forwarder.
type Metrics struct {
	deliveries *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	breaker    *prometheus.GaugeVec
}

// Delivery outcomes (label "outcome").
const (
	outcomeDelivered = "delivered"
	outcomeRetried   = "retried"
	outcomeDead      = "dead"
)

// NewMetrics registers the delivery metrics on reg (nil: not exported).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_deliveries_total",
			Help: "Events by delivery outcome: delivered, retried (scheduled again) or dead (dead-lettered).",
		}, []string{"provider", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "relay_delivery_duration_seconds",
			Help:    "Duration of one upstream request.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"provider"}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "relay_breaker_state",
			Help: "Circuit breaker state per provider: 0 closed, 1 half-open, 2 open.",
		}, []string{"provider"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.deliveries, m.duration, m.breaker} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
