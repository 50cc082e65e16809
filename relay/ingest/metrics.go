package ingest

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the ingest counters named in DESIGN.md.
type metrics struct {
	requests *prometheus.CounterVec
	enqueued *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_ingest_requests_total",
			Help: "Ingest requests by route and HTTP status code.",
		}, []string{"route", "code"}),
		enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_events_enqueued_total",
			Help: "Events durably appended to a provider's stream.",
		}, []string{"provider"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.enqueued} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) request(route string, code int) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
}
