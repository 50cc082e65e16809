package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/internal/redistest"
	"github.com/eventrelay/relay/relay/admin"
	"github.com/eventrelay/relay/relay/queue"
)

// fxToken is the admin token of every fixture.
const fxToken = "fx-admin-token-0123456789abcdef"

// fxBreaker is a fixed breaker state.
type fxBreaker gobreaker.State

func (b fxBreaker) BreakerState() gobreaker.State { return gobreaker.State(b) }

var _ admin.BreakerStater = fxBreaker(0)

// fxPinger pings Redis through the test's client.
type fxPinger struct{ rdb *redis.Client }

func (p fxPinger) Ping(ctx context.Context) error { return p.rdb.Ping(ctx).Err() }

var _ admin.Pinger = fxPinger{}

// fixture is a real redis-server and an admin server over real HTTP on loopback.
type fixture struct {
	t     *testing.T
	rs    *redistest.Server
	rdb   *redis.Client
	keys  queue.Keys
	srv   *admin.Server
	base  string
	audit *observer.ObservedLogs
	reg   *prometheus.Registry
	// compact: the fixtures below write entries, retry members and dead letters in the
	// compact format; else in the nine-field format of earlier relays.
	compact bool
}

// fxOptions tune newFixture.
type fxOptions struct {
	providers []string
	breakers  map[string]admin.BreakerStater
	token     *string
	compact   bool
}

// formats runs test with fixtures in both stored formats: the compact one this relay
// writes, and the nine-field one of earlier relays (a rolling upgrade).
func formats(t *testing.T, test func(t *testing.T, o fxOptions)) {
	t.Run("legacy", func(t *testing.T) { test(t, fxOptions{}) })
	t.Run("compact", func(t *testing.T) { test(t, fxOptions{compact: true}) })
}

// newFixture starts Redis and the admin server (with the queue Collector registered).
// Default providers: ens, brevo; default token fxToken.
func newFixture(t *testing.T, o fxOptions) *fixture {
	t.Helper()
	if o.providers == nil {
		o.providers = []string{"ens", "brevo"}
	}
	token := fxToken
	if o.token != nil {
		token = *o.token
	}
	rs := redistest.Start(t, redistest.Options{})
	opt, err := redis.ParseURL(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1
	opt.ContextTimeoutEnabled = true // as queue.Open sets it
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	core, logs := observer.New(zapcore.InfoLevel)
	fx := &fixture{t: t, rs: rs, rdb: rdb, keys: queue.Keys{Prefix: "fx"}, audit: logs, reg: prometheus.NewPedanticRegistry(),
		compact: o.compact}
	fx.reg.MustRegister(admin.NewCollector(admin.CollectorOptions{Client: rdb, Keys: fx.keys, Providers: o.providers,
		Timeout: time.Second, Log: zap.NewNop()}))
	fx.srv = admin.New(admin.Options{Gatherer: fx.reg, Queue: fxPinger{rdb}, Log: zap.NewNop(), Audit: zap.New(core).Named("audit"),
		Client: rdb, Keys: fx.keys, Providers: o.providers, Breakers: o.breakers, Token: token, Timeout: 2 * time.Second})
	fx.base = "http://" + serveAdmin(t, fx.srv)
	return fx
}

// serveAdmin runs srv on a loopback port until the test ends and returns its address.
func serveAdmin(t *testing.T, srv *admin.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("admin server: %v", err)
		}
	})
	return ln.Addr().String()
}

// ctx is a context for the test's own Redis calls.
func (fx *fixture) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	fx.t.Cleanup(cancel)
	return ctx
}

// do sends one request; token "" sends no Authorization header.
func (fx *fixture) do(method, path, token, body string) (int, http.Header, []byte) {
	fx.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, fx.base+path, rd)
	if err != nil {
		fx.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fx.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		fx.t.Fatal(err)
	}
	return res.StatusCode, res.Header, b
}

// api sends an authorized request, checks the status and decodes the JSON reply into out.
func (fx *fixture) api(method, path, body string, want int, out any) {
	fx.t.Helper()
	status, h, b := fx.do(method, path, fxToken, body)
	if status != want {
		fx.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, b)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		fx.t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			fx.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// redisNow is Redis's clock.
func (fx *fixture) redisNow() time.Time {
	fx.t.Helper()
	now, err := fx.rdb.Time(fx.ctx()).Result()
	if err != nil {
		fx.t.Fatal(err)
	}
	return now
}

// event is the ingest fields of one test event.
type event struct {
	id, route, body string
	at              time.Time
}

// pairs are the nine ingest fields in ingest order.
func (e event) pairs() []string {
	return []string{queue.FieldID, e.id, queue.FieldRoute, e.route, queue.FieldBody, e.body,
		queue.FieldAt, strconv.FormatInt(e.at.UnixMilli(), 10), queue.FieldIP, "203.0.113.7",
		queue.FieldUA, "Mozilla/5.0 test", queue.FieldCountry, "DE", queue.FieldCustomer, "",
		queue.FieldSource, "shop"}
}

func anys(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// message is e as the queue holds it.
func (e event) message(provider string) *delivery.Message {
	return &delivery.Message{ID: e.id, Provider: provider, Route: e.route, Body: []byte(e.body), ReceivedAt: e.at,
		ClientIP: "203.0.113.7", UserAgent: "Mozilla/5.0 test", Country: "DE", Source: "shop"}
}

// fields are e's fields in fx's format.
func (fx *fixture) fields(provider string, e event) []string {
	if fx.compact {
		return []string{queue.FieldEnvelope, queue.EncodeEntry(e.message(provider))}
	}
	return e.pairs()
}

// addEvent appends e to provider's events stream.
func (fx *fixture) addEvent(provider string, e event) string {
	fx.t.Helper()
	id, err := fx.rdb.XAdd(fx.ctx(), &redis.XAddArgs{Stream: fx.keys.Events(provider), Values: anys(fx.fields(provider, e))}).Result()
	if err != nil {
		fx.t.Fatal(err)
	}
	return id
}

// addRetry adds e to provider's retry set, due at due, with attempts made.
func (fx *fixture) addRetry(provider string, e event, due time.Time, attempts int) {
	fx.t.Helper()
	member, err := json.Marshal(append(e.pairs(), "attempts", strconv.Itoa(attempts), "status", "503", "error", "HTTP 503"))
	if err != nil {
		fx.t.Fatal(err)
	}
	if fx.compact {
		member = []byte(queue.EncodeRetryMember(e.message(provider), attempts, 503, "HTTP 503"))
	}
	if err := fx.rdb.ZAdd(fx.ctx(), fx.keys.Retry(provider), redis.Z{Score: float64(due.UnixMilli()), Member: string(member)}).Err(); err != nil {
		fx.t.Fatal(err)
	}
}

// deadInfo is what the forwarder adds to a dead letter.
type deadInfo struct {
	reason, errText   string
	status, attempts  int
	deadAt            time.Time
	eventsStreamID    string
	withoutIngestData bool // a trimmed entry: no ingest fields at all
}

// addDead appends a dead letter the way the forwarder writes it and returns its id.
func (fx *fixture) addDead(provider string, e event, d deadInfo) string {
	fx.t.Helper()
	var pairs []string
	if !d.withoutIngestData {
		pairs = fx.fields(provider, e)
	}
	pairs = append(pairs, "attempts", strconv.Itoa(d.attempts), "status", strconv.Itoa(d.status), "error", d.errText,
		"reason", d.reason, "dead_at", strconv.FormatInt(d.deadAt.UnixMilli(), 10), "stream_id", d.eventsStreamID)
	id, err := fx.rdb.XAdd(fx.ctx(), &redis.XAddArgs{Stream: fx.keys.Dead(provider), Values: anys(pairs)}).Result()
	if err != nil {
		fx.t.Fatal(err)
	}
	return id
}

// stream reads a whole stream.
func (fx *fixture) stream(key string) []redis.XMessage {
	fx.t.Helper()
	msgs, err := fx.rdb.XRange(fx.ctx(), key, "-", "+").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		fx.t.Fatal(err)
	}
	return msgs
}

// auditLines are the audit logger's entries as field maps (plus "msg").
func (fx *fixture) auditLines() []map[string]any {
	var out []map[string]any
	for _, e := range fx.audit.All() {
		m := e.ContextMap()
		m["msg"], m["logger"] = e.Message, e.LoggerName
		out = append(out, m)
	}
	return out
}
