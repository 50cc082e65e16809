package admin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/relay/admin"
)

func TestCollectorExportsQueueDepth(t *testing.T) { formats(t, testCollectorExportsQueueDepth) }

func testCollectorExportsQueueDepth(t *testing.T, o fxOptions) {
	fx := newFixture(t, o)
	now := fx.redisNow()
	fillENS(fx, now)
	c := admin.NewCollector(admin.CollectorOptions{Client: fx.rdb, Keys: fx.keys, Providers: []string{"ens", "brevo"},
		Timeout: time.Second, Log: zap.NewNop()})

	want := `
# HELP relay_queue_depth Events per provider and state: ready (in the stream, not yet read), pending (read, not yet settled), retry (waiting in the retry set), dead (dead-lettered).
# TYPE relay_queue_depth gauge
relay_queue_depth{provider="brevo",state="dead"} 0
relay_queue_depth{provider="brevo",state="pending"} 0
relay_queue_depth{provider="brevo",state="ready"} 0
relay_queue_depth{provider="brevo",state="retry"} 0
relay_queue_depth{provider="ens",state="dead"} 4
relay_queue_depth{provider="ens",state="pending"} 2
relay_queue_depth{provider="ens",state="ready"} 3
relay_queue_depth{provider="ens",state="retry"} 3
# HELP relay_queue_scrape_errors_total Scrapes whose queue numbers for a provider could not be read from Redis.
# TYPE relay_queue_scrape_errors_total counter
relay_queue_scrape_errors_total{provider="brevo"} 0
relay_queue_scrape_errors_total{provider="ens"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "relay_queue_depth", "relay_queue_scrape_errors_total"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	oldest := gauges(t, c, "relay_oldest_undelivered_seconds")
	if v := oldest["ens"]; v < 119 || v > 125 {
		t.Errorf("ens oldest undelivered %.3f, want about 120", v)
	}
	if v, ok := oldest["brevo"]; !ok || v != 0 {
		t.Errorf("brevo oldest undelivered %v (present %v), want 0", v, ok)
	}

	// The same numbers on the admin listener's /metrics.
	status, _, body := fx.do("GET", "/metrics", "", "")
	if status != 200 || !strings.Contains(string(body), `relay_queue_depth{provider="ens",state="ready"} 3`) {
		t.Errorf("/metrics: %d\n%s", status, body)
	}

	// Redis down: no depth samples, and the error counter goes up per provider.
	fx.rs.Kill()
	if n := testutil.CollectAndCount(c, "relay_queue_depth", "relay_oldest_undelivered_seconds"); n != 0 {
		t.Errorf("%d samples with Redis down, want none", n)
	}
	// Two failed scrapes: the count above and this one.
	want = `
# HELP relay_queue_scrape_errors_total Scrapes whose queue numbers for a provider could not be read from Redis.
# TYPE relay_queue_scrape_errors_total counter
relay_queue_scrape_errors_total{provider="brevo"} 2
relay_queue_scrape_errors_total{provider="ens"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "relay_queue_scrape_errors_total"); err != nil {
		t.Error(err)
	}
}

func TestCollectorIsBoundedByItsTimeout(t *testing.T) {
	fx := newFixture(t, fxOptions{})
	c := admin.NewCollector(admin.CollectorOptions{Client: fx.rdb, Keys: fx.keys, Providers: []string{"ens"},
		Timeout: 200 * time.Millisecond})
	fx.rs.Pause() // accepts connections, answers nothing
	defer fx.rs.Resume()
	start := time.Now()
	n := testutil.CollectAndCount(c, "relay_queue_depth")
	if d := time.Since(start); d > 2*time.Second || n != 0 {
		t.Errorf("scrape of a stuck Redis took %v and gave %d samples", d, n)
	}
}

// gauges gathers c and returns metric name's values by provider label.
func gauges(t *testing.T, c prometheus.Collector, name string) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "provider" {
					out[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}
