package forward_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/internal/redistest"
	"github.com/eventrelay/relay/providers"
	"github.com/eventrelay/relay/relay/forward"
	"github.com/eventrelay/relay/relay/queue"
)

// hit is one request a fake upstream received.
type hit struct {
	at     time.Time
	path   string
	header http.Header
	body   string
}

// reply is what a fake upstream answers.
type reply struct {
	status int
	header map[string]string
	body   string
	delay  time.Duration
}

// upstream is a fake provider over real HTTP on loopback. script decides the reply to the
// n-th request (0-based); nil answers 200 {"ok":true}.
type upstream struct {
	srv    *httptest.Server
	mu     sync.Mutex
	hits   []hit
	script func(n int) reply
	// active and peak count requests being answered: the most at once is peak.
	active, peak int
}

func newUpstream(t *testing.T, script func(n int) reply) *upstream {
	u := &upstream{script: script}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		n := len(u.hits)
		u.hits = append(u.hits, hit{at: time.Now(), path: r.URL.Path, header: r.Header.Clone(), body: string(b)})
		s := u.script
		u.active++
		u.peak = max(u.peak, u.active)
		u.mu.Unlock()
		defer func() { u.mu.Lock(); u.active--; u.mu.Unlock() }()
		rep := reply{status: 200, body: `{"ok":true}`}
		if s != nil {
			rep = s(n)
		}
		if rep.delay > 0 {
			time.Sleep(rep.delay)
		}
		for k, v := range rep.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(rep.status)
		_, _ = io.WriteString(w, rep.body)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) setScript(s func(n int) reply) {
	u.mu.Lock()
	u.script = s
	u.mu.Unlock()
}

// peakActive is the most requests the upstream was answering at once.
func (u *upstream) peakActive() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.peak
}

func (u *upstream) got() []hit {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]hit(nil), u.hits...)
}

const (
	ensKey = "ens-secret-canary-fwd-0001"
	lrKey  = "lr-secret-canary-fwd-0002"
	bvKey  = "brevo-secret-canary-fwd-0003"
	maKey  = "brevo-ma-secret-canary-fwd-0004"
)

var fwdSecrets = []string{ensKey, lrKey, bvKey, maKey}

// env is a real Redis, fake upstreams per provider and the forwarders over them.
type env struct {
	t       *testing.T
	redis   *redistest.Server
	rdb     redis.UniversalClient
	keys    queue.Keys
	enq     *queue.Enqueuer
	cfg     *config.Config
	up      map[string]*upstream
	fwd     map[string]*forward.Forwarder
	logs    *observer.ObservedLogs
	reg     *prometheus.Registry
	stop    context.CancelFunc
	stopped chan struct{}
}

// settings tweak the test config's delivery settings (YAML lines under each provider).
const fastDelivery = `workers: 2, rate_limit: 200, timeout: 500ms, max_attempts: 6, max_age: 1h, backoff: {base: 50ms, max: 200ms}, breaker: {failures: 3, open_for: 1s}`

func newEnv(t *testing.T, delivery map[string]string) *env {
	t.Helper()
	return newEnvRelays(t, delivery, 1)
}

// newEnvRelays runs `relays` forwarders per provider, as that many relay processes would
// (each with its own consumer name and in-process limiter); e.fwd holds the first.
func newEnvRelays(t *testing.T, delivery map[string]string, relays int) *env {
	t.Helper()
	rs := redistest.Start(t, redistest.Options{})
	e := &env{t: t, redis: rs, up: map[string]*upstream{}, keys: queue.Keys{Prefix: "t"}}
	for _, p := range []string{"linkrunner", "ens", "brevo", "bannerflex"} {
		e.up[p] = newUpstream(t, nil)
	}
	d := func(p string) string {
		if s, ok := delivery[p]; ok {
			return s
		}
		return fastDelivery
	}
	yaml := fmt.Sprintf(`
admin: {listen: "127.0.0.1:0", token: "admin-token-0123456789"}
redis: {url: %q, prefix: t}
providers:
  linkrunner: {base_url: %q, server_key: %s, %s}
  ens: {base_url: %q, api_key: %s, %s}
  brevo: {base_url: %q, tracker_url: %q, api_key: %s, ma_key: %s, %s}
  bannerflex: {base_url: %q, %s}
`, rs.URL(), e.up["linkrunner"].srv.URL, lrKey, d("linkrunner"), e.up["ens"].srv.URL, ensKey, d("ens"),
		e.up["brevo"].srv.URL, e.up["brevo"].srv.URL, bvKey, maKey, d("brevo"), e.up["bannerflex"].srv.URL, d("bannerflex"))
	cfg, err := config.Parse([]byte(yaml), nil, providers.Specs())
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	e.cfg = cfg
	core, logs := observer.New(zap.DebugLevel)
	e.logs = logs
	log := zap.New(core)
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := queue.Open(ctx, cfg.Redis, log)
	if err != nil {
		t.Fatal(err)
	}
	e.rdb = conn.Client
	e.enq = queue.NewEnqueuer(conn.Client, e.keys, queue.EnqueuerOptions{Writers: 2, MaxBatch: 64, Timeout: time.Second, HighWaterMark: -1}, log)
	adapters, err := providers.NewAdapters(cfg.Providers, log)
	if err != nil {
		t.Fatal(err)
	}
	e.reg = prometheus.NewRegistry()
	metrics, err := forward.NewMetrics(e.reg)
	if err != nil {
		t.Fatal(err)
	}
	e.fwd = map[string]*forward.Forwarder{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = e.enq.Run(ctx) }()
	for name, a := range adapters {
		for i := range relays {
			f, err := forward.New(forward.Options{
				Adapter: a, Delivery: deliveryOf(cfg, name), Client: conn.Client, Keys: e.keys,
				Consumer: "test-" + uuid.NewString()[:8], Log: log.Named(name), Metrics: metrics,
				Block: 100 * time.Millisecond, Visibility: visibility(d(name), deliveryOf(cfg, name)), MoveEvery: 20 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				e.fwd[name] = f
			}
			wg.Add(1)
			go func() { defer wg.Done(); _ = f.Run(ctx) }()
		}
	}
	e.stop = cancel
	e.stopped = make(chan struct{})
	go func() { wg.Wait(); close(e.stopped) }()
	t.Cleanup(func() {
		e.shutdown()
		conn.Close()
	})
	return e
}

func (e *env) shutdown() {
	e.stop()
	select {
	case <-e.stopped:
	case <-time.After(10 * time.Second):
		e.t.Error("forwarders did not stop within 10 s")
	}
}

// visibility is 2 s, short for the reclaim tests, unless the test's settings name one.
func visibility(settings string, d config.Delivery) time.Duration {
	if strings.Contains(settings, "visibility_timeout") {
		return d.VisibilityTimeout
	}
	return 2 * time.Second
}

func deliveryOf(cfg *config.Config, p string) config.Delivery {
	return *cfg.Providers.Section(p).Settings()
}

// send enqueues one event for route with body and returns its id.
func (e *env) send(route, body string) string {
	e.t.Helper()
	id := uuid.NewString()
	provider, _, _ := strings.Cut(route, "/")
	m := &delivery.Message{ID: id, Provider: provider, Route: route, Body: []byte(body), ReceivedAt: time.Now(),
		ClientIP: "192.0.2.1", UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile", Country: "FR", Source: "client:test"}
	if _, err := e.enq.Enqueue(context.Background(), m); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// eventually polls cond every 20 ms until it holds or d passes.
func (e *env) eventually(d time.Duration, what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) dead(p string) []redis.XMessage {
	e.t.Helper()
	msgs, err := e.rdb.XRange(context.Background(), e.keys.Dead(p), "-", "+").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return msgs
}

// idle reports that provider p has nothing left: no entries, none pending, no retries.
func (e *env) idle(p string) bool {
	ctx := context.Background()
	n := e.rdb.XLen(ctx, e.keys.Events(p)).Val() + e.rdb.ZCard(ctx, e.keys.Retry(p)).Val()
	pend, _ := e.rdb.XPending(ctx, e.keys.Events(p), queue.Group).Result()
	return n == 0 && (pend == nil || pend.Count == 0)
}
