package forward_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
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
	"github.com/eventrelay/relay/relay/forward"
	"github.com/eventrelay/relay/relay/queue"
)

// hit is one request a fake upstream received.
type hit struct {
	at     time.Time
	path   string
	header http.Header
	body   string
	// status is what the upstream answered.
	status int
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
	// byPath, when set, decides instead of script from the request's path.
	byPath func(path string) reply
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
		s, bp := u.script, u.byPath
		u.active++
		u.peak = max(u.peak, u.active)
		u.mu.Unlock()
		defer func() { u.mu.Lock(); u.active--; u.mu.Unlock() }()
		rep := reply{status: 200, body: `{"ok":true}`}
		switch {
		case bp != nil:
			rep = bp(r.URL.Path)
		case s != nil:
			rep = s(n)
		}
		u.mu.Lock()
		u.hits[n].status = rep.status
		u.mu.Unlock()
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

func (u *upstream) setByPath(s func(path string) reply) {
	u.mu.Lock()
	u.byPath = s
	u.mu.Unlock()
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
	bfKey  = "bannerflex-secret-canary-fwd-0004"
)

var fwdSecrets = []string{ensKey, lrKey, bvKey, bfKey}

// secretHeader carries a fake provider's key, as a real adapter attaches its credential.
const secretHeader = "X-Api-Key"

// eventIDHeader carries the ids of a request's events (comma-separated), as real adapters
// pass the event id on (Linkrunner's payment_id, for one).
const eventIDHeader = "X-Event-Id"

// fakeAdapter is a provider adapter over real HTTP: one POST per batch to <url>/<route>
// with its key and the event ids in headers, the body of one event or a JSON array of a
// batch's bodies; the reply classified as the real adapters do (providers.Classify).
type fakeAdapter struct {
	provider, url, secret string
	// batch is MaxBatchWeight: above 1, events with the same body share a request.
	batch int
}

func (a *fakeAdapter) Provider() string    { return a.provider }
func (a *fakeAdapter) MaxBatchWeight() int { return max(a.batch, 1) }

func (a *fakeAdapter) BatchKey(m *delivery.Message) (string, int) {
	if a.batch > 1 {
		return string(m.Body), 1
	}
	return "", 1
}

func (a *fakeAdapter) Deliver(ctx context.Context, batch []*delivery.Message) []error {
	bodies, ids := make([]string, len(batch)), make([]string, len(batch))
	for i, m := range batch {
		bodies[i], ids[i] = string(m.Body), m.ID
	}
	body := bodies[0]
	if len(batch) > 1 {
		body = "[" + strings.Join(bodies, ",") + "]"
	}
	err := a.post(ctx, batch[0].Route, body, strings.Join(ids, ","))
	out := make([]error, len(batch))
	for i := range out {
		out[i] = err
	}
	return out
}

func (a *fakeAdapter) post(ctx context.Context, route, body, ids string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url+"/"+route, strings.NewReader(body))
	if err != nil {
		return delivery.Permanent(err)
	}
	req.Header.Set(secretHeader, a.secret)
	req.Header.Set(eventIDHeader, ids)
	res, err := noRedirects.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<10))
	herr := &delivery.HTTPError{Status: res.StatusCode, Message: strings.ReplaceAll(string(b), a.secret, "[redacted]")}
	switch s := res.StatusCode; {
	case s >= 200 && s < 300:
		return nil
	case s == 401:
		// Configuration faults of the whole provider: retryable, as providers.Classify.
		return &delivery.HTTPError{Status: s, Message: "upstream refused the relay's credential: check the provider's key in the config"}
	case s >= 300 && s < 400:
		return &delivery.HTTPError{Status: s, Message: "upstream redirected (" + strconv.Itoa(s) + " to " +
			res.Header.Get("Location") + "): check the provider's base_url in the config"}
	case s == 408 || s == 429 || s >= 500:
		if secs, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil {
			return delivery.RetryAfter(time.Duration(secs)*time.Second, herr)
		}
		return herr
	default:
		return delivery.Permanent(herr)
	}
}

// noRedirects is the fake adapters' client: like the real Transport, it follows no redirect.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// lanedAdapter is a fakeAdapter with two lanes (forward.Lanes), as Brevo's: route
// brevo/track-event is lane "tracker", every other route lane "v3".
type lanedAdapter struct{ *fakeAdapter }

func (lanedAdapter) Lanes() []string { return []string{"v3", "tracker"} }

func (lanedAdapter) Lane(m *delivery.Message) string {
	if m.Route == "brevo/track-event" {
		return "tracker"
	}
	return "v3"
}

// env is a real Redis, fake upstreams per provider and the forwarders over them.
type env struct {
	t       *testing.T
	redis   *redistest.Server
	rdb     redis.UniversalClient
	keys    queue.Keys
	enq     *queue.Enqueuer
	up      map[string]*upstream
	fwd     map[string]*forward.Forwarder
	logs    *observer.ObservedLogs
	reg     *prometheus.Registry
	stop    context.CancelFunc
	stopped chan struct{}
}

// ms shortens the tests' delivery settings.
const ms = time.Millisecond

// fastDelivery are the tests' delivery settings unless a test names its own.
func fastDelivery() config.Delivery {
	return config.Delivery{Workers: 2, RateLimit: 200, Timeout: 500 * time.Millisecond, MaxAttempts: 6, MaxAge: time.Hour,
		Backoff: config.Backoff{Base: 50 * time.Millisecond, Max: 200 * time.Millisecond},
		Breaker: config.Breaker{Failures: 3, OpenFor: time.Second}}
}

// envOptions shape a test env.
type envOptions struct {
	// delivery are per provider; the rest get fastDelivery. A zero VisibilityTimeout is
	// 2 s, short for the reclaim tests.
	delivery map[string]config.Delivery
	// relays is the forwarders per provider, as that many relay processes would run
	// (each with its own consumer name and in-process limiter); e.fwd holds the first.
	relays int
	// batch is MaxBatchWeight per provider whose adapter batches.
	batch map[string]int
	// laned are the providers whose adapter is a lanedAdapter.
	laned map[string]bool
	// consumerExpiry is forward.Options.ConsumerExpiry (zero: its default).
	consumerExpiry time.Duration
	// block is forward.Options.Block (zero: 100 ms).
	block time.Duration
}

func newEnv(t *testing.T, delivery map[string]config.Delivery) *env {
	t.Helper()
	return newEnvWith(t, envOptions{delivery: delivery})
}

func newEnvRelays(t *testing.T, delivery map[string]config.Delivery, relays int) *env {
	t.Helper()
	return newEnvWith(t, envOptions{delivery: delivery, relays: relays})
}

func newEnvWith(t *testing.T, o envOptions) *env {
	t.Helper()
	rs := redistest.Start(t, redistest.Options{})
	e := &env{t: t, redis: rs, up: map[string]*upstream{}, keys: queue.Keys{Prefix: "t"}}
	secrets := map[string]string{"linkrunner": lrKey, "ens": ensKey, "brevo": bvKey, "bannerflex": bfKey}
	for p := range secrets {
		e.up[p] = newUpstream(t, nil)
	}
	core, logs := observer.New(zap.DebugLevel)
	e.logs = logs
	log := zap.New(core)
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := queue.Open(ctx, config.Redis{URL: rs.URL(), Prefix: "t", EnqueueTimeout: time.Second,
		HighWaterMark: -1, Writers: 2, MaxBatch: 64, PoolSize: 16}, log)
	if err != nil {
		t.Fatal(err)
	}
	e.rdb = conn.Client
	e.enq = queue.NewEnqueuer(conn.Client, e.keys, queue.EnqueuerOptions{Writers: 2, MaxBatch: 64, Timeout: time.Second, HighWaterMark: -1}, log)
	e.reg = prometheus.NewRegistry()
	metrics, err := forward.NewMetrics(e.reg)
	if err != nil {
		t.Fatal(err)
	}
	e.fwd = map[string]*forward.Forwarder{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = e.enq.Run(ctx) }()
	for name, secret := range secrets {
		d, ok := o.delivery[name]
		if !ok {
			d = fastDelivery()
		}
		visibility := d.VisibilityTimeout
		if visibility == 0 {
			visibility = 2 * time.Second
		}
		var a delivery.Adapter = &fakeAdapter{provider: name, url: e.up[name].srv.URL, secret: secret, batch: o.batch[name]}
		if o.laned[name] {
			a = lanedAdapter{a.(*fakeAdapter)}
		}
		for i := range max(o.relays, 1) {
			f, err := forward.New(forward.Options{
				Adapter: a, Delivery: d, Client: conn.Client, Keys: e.keys,
				Consumer: "test-" + uuid.NewString()[:8], Log: log.Named(name), Metrics: metrics,
				Block: cmp.Or(o.block, 100*time.Millisecond), Visibility: visibility, MoveEvery: 20 * time.Millisecond,
				ConsumerExpiry: o.consumerExpiry,
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

// send enqueues one event for route with body and returns its id.
func (e *env) send(route, body string) string {
	e.t.Helper()
	id := uuid.NewString()
	provider, _, _ := strings.Cut(route, "/")
	m := &delivery.Message{ID: id, Provider: provider, Route: route, Body: []byte(body), ReceivedAt: time.Now(),
		ClientIP: "192.0.2.1", UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile", Country: "FR", Source: "client:test"}
	if _, err := e.enq.Enqueue(context.Background(), m, queue.RelayID); err != nil {
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

// dead returns provider p's dead letters, oldest first.
func (e *env) dead(p string) []queue.DeadLetter {
	e.t.Helper()
	msgs, err := e.rdb.XRange(context.Background(), e.keys.Dead(p), "-", "+").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	out := make([]queue.DeadLetter, len(msgs))
	for i, m := range msgs {
		out[i] = queue.DecodeDeadLetter(p, m)
	}
	return out
}

// idle reports that provider p has nothing left: no entries, none pending, no retries.
func (e *env) idle(p string) bool {
	ctx := context.Background()
	n := e.rdb.XLen(ctx, e.keys.Events(p)).Val() + e.rdb.ZCard(ctx, e.keys.Retry(p)).Val()
	pend, _ := e.rdb.XPending(ctx, e.keys.Events(p), queue.Group).Result()
	return n == 0 && (pend == nil || pend.Count == 0)
}

// settledRequests waits (bounded by d) until provider p is idle in Redis (nothing in its
// stream, pending or retrying: no further request can come from what was sent) and its
// upstream has at least want requests, then checks that it has exactly want: every
// duplicate is counted, none slips in after the count. It returns the requests.
func (e *env) settledRequests(p string, want int, d time.Duration) []hit {
	e.t.Helper()
	e.eventually(d, fmt.Sprintf("%s idle in Redis with %d upstream requests", p, want),
		func() bool { return e.idle(p) && len(e.up[p].got()) >= want })
	hits := e.up[p].got()
	if len(hits) != want {
		e.t.Fatalf("%s: %d upstream requests once idle, want exactly %d (%d extra)", p, len(hits), want, len(hits)-want)
	}
	return hits
}

// statsTotal sums field (delivered, retried, dead) of provider p's per-minute counters in
// Redis, which the forwarder writes atomically with each outcome's ack.
func (e *env) statsTotal(p, field string) int64 {
	e.t.Helper()
	ctx := context.Background()
	var sum int64
	for _, k := range e.rdb.Keys(ctx, e.keys.StatsPrefix(p)+"*").Val() {
		n, _ := strconv.ParseInt(e.rdb.HGet(ctx, k, field).Val(), 10, 64)
		sum += n
	}
	return sum
}
