package ingest

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// metrics are the ingest counters documented in docs/api.md (Metrics).
type metrics struct {
	requests *prometheus.CounterVec
	enqueued *prometheus.CounterVec
	filtered *prometheus.CounterVec
	// accepted (by route label) and byProvider hold the counters every accepted request
	// adds to, so the hot path skips the vec's lookup by label values (hashing them and
	// formatting the code). Their keys are fixed at construction: read-only maps.
	accepted   map[string]*lazyCounter
	byProvider map[string]*lazyCounter
}

// lazyCounter is one child of a CounterVec, looked up on its first use and then kept: it
// appears in /metrics when it first counts, as with WithLabelValues on every use.
type lazyCounter struct {
	vec    *prometheus.CounterVec
	labels []string
	c      atomic.Pointer[prometheus.Counter]
}

func (l *lazyCounter) inc() {
	p := l.c.Load()
	if p == nil {
		c := l.vec.WithLabelValues(l.labels...) // the same child however many goroutines race here
		p = &c
		l.c.Store(p)
	}
	(*p).Inc()
}

// newMetrics builds the counters, with the hot-path cache for the given route labels and
// providers.
func newMetrics(reg prometheus.Registerer, routes, providers []string) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_ingest_requests_total",
			Help: "Ingest requests by route and HTTP status code.",
		}, []string{"route", "code"}),
		enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_events_enqueued_total",
			Help: "Events durably appended to a provider's stream.",
		}, []string{"provider"}),
		filtered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_events_filtered_total",
			Help: "Site events answered 202 but never queued, by reason: deny, not_allowed (sites[].events) or consent.",
		}, []string{"site", "route", "reason"}),
		accepted:   make(map[string]*lazyCounter, len(routes)),
		byProvider: make(map[string]*lazyCounter, len(providers)),
	}
	accepted := strconv.Itoa(fasthttp.StatusAccepted)
	for _, r := range routes {
		m.accepted[r] = &lazyCounter{vec: m.requests, labels: []string{r, accepted}}
	}
	for _, p := range providers {
		m.byProvider[p] = &lazyCounter{vec: m.enqueued, labels: []string{p}}
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.enqueued, m.filtered} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) request(route string, code int) {
	if code == fasthttp.StatusAccepted {
		if c := m.accepted[route]; c != nil {
			c.inc()
			return
		}
	}
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
}

// enqueuedTo counts one event appended to provider's stream.
func (m *metrics) enqueuedTo(provider string) {
	if c := m.byProvider[provider]; c != nil {
		c.inc()
		return
	}
	m.enqueued.WithLabelValues(provider).Inc()
}

// filteredEvent counts one event of site dropped for reason (filter.go).
func (m *metrics) filteredEvent(site, route, reason string) {
	m.filtered.WithLabelValues(site, route, reason).Inc()
}

// filteredZero exports the series of site, route and reason as 0 before anything is
// filtered, so a rate over it exists from the start.
func (m *metrics) filteredZero(site, route, reason string) {
	m.filtered.WithLabelValues(site, route, reason)
}
