package ingest_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/internal/redistest"
	"github.com/eventrelay/relay/providers"
	"github.com/eventrelay/relay/relay/ingest"
	"github.com/eventrelay/relay/relay/queue"
)

// Secrets in the test config: none of them may ever reach Redis or a reply.
var testSecrets = []string{
	"lr-secret-canary-0001", "ens-secret-canary-0002", "brevo-secret-canary-0003",
	"brevo-ma-secret-canary-0004", "cdlx-secret-canary-0005", "backend-token-canary-0006",
	"identity-secret-canary-0007-0123456789abcdef",
}

const (
	shopKey   = "pk_shop_3f9a0001"
	shopOrig  = "https://shop.example.com"
	idKey     = "pk_ident_0002"
	idOrigin  = "https://app.example.com"
	idSecret  = "identity-secret-canary-0007-0123456789abcdef"
	trustKey  = "pk_trust_0003"
	moneyKey  = "pk_money_0004"
	backend   = "backend-token-canary-0006"
	otherPort = "https://shop.example.com:8443"
)

func testConfig(redisURL string) string {
	return fmt.Sprintf(`
server:
  listen: "127.0.0.1:0"
  max_body_bytes: 4096
  trusted_proxies: ["10.0.0.0/8"]
  country_header: "CF-IPCountry"
admin:
  listen: "127.0.0.1:0"
  token: "admin-token-0123456789"
redis:
  url: %q
  prefix: "t"
  enqueue_timeout: 1s
sites:
  - name: shop
    key: %s
    origins: [%q]
    routes: ["ens/click", "ens/impression", "bannerflex/banner-events"]
    rate_limit: {per_ip: 1000, burst: 1000}
  - name: tight
    key: pk_tight_0005
    origins: [%q]
    routes: ["ens/click"]
    rate_limit: {per_ip: 5, burst: 5}
  - name: ident
    key: %s
    origins: [%q]
    identity_secret: %q
    rate_limit: {per_ip: 1000, burst: 1000}
  - name: trust
    key: %s
    origins: ["https://trust.example.com"]
    trust_client_identity: true
    rate_limit: {per_ip: 1000, burst: 1000}
  - name: money
    key: %s
    origins: ["https://money.example.com"]
    routes: ["linkrunner/capture-payment"]
    trust_client_identity: true
clients:
  - name: backend
    token: %s
providers:
  linkrunner: {server_key: lr-secret-canary-0001}
  ens: {api_key: ens-secret-canary-0002}
  brevo: {api_key: brevo-secret-canary-0003, ma_key: brevo-ma-secret-canary-0004}
  bannerflex: {}
  cardlytics:
    base_url: http://127.0.0.1:1
    auth: bearer
    client_id: cdlx-client
    secret: cdlx-secret-canary-0005
`, redisURL, shopKey, shopOrig, shopOrig, idKey, idOrigin, idSecret, trustKey, moneyKey, backend)
}

// testRelay is a real ingest listener over a real redis-server.
type testRelay struct {
	url   string
	redis *redistest.Server
	rdb   redis.UniversalClient
	reg   *prometheus.Registry
}

func startRelay(t *testing.T) *testRelay {
	t.Helper()
	return startRelayWith(t, nil)
}

// startRelayWith is startRelay with the parsed test config edited before the server is
// built (timeouts, trusted proxies, limits).
func startRelayWith(t *testing.T, edit func(*config.Config)) *testRelay {
	t.Helper()
	rs := redistest.Start(t, redistest.Options{})
	cfg, err := config.Parse([]byte(testConfig(rs.URL())), func(string) (string, bool) { return "", false }, providers.Specs())
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if edit != nil {
		edit(cfg)
		if err := cfg.Validate(); err != nil {
			t.Fatalf("edited config: %v", err)
		}
	}
	log := zaptest.NewLogger(t)
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := queue.Open(ctx, cfg.Redis, log)
	if err != nil {
		t.Fatalf("open queue: %v", err)
	}
	enq := queue.NewEnqueuer(conn.Client, queue.Keys{Prefix: cfg.Redis.Prefix}, queue.EnqueuerOptions{
		Writers: 2, MaxBatch: 64, Timeout: cfg.Redis.EnqueueTimeout, HighWaterMark: -1,
	}, log)
	reg := prometheus.NewRegistry()
	srv, err := ingest.New(ingest.Options{Config: cfg, Ops: providers.Ops(cfg.Providers), Queue: enq, Log: log, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 2)
	go func() { _ = enq.Run(ctx); done <- struct{}{} }()
	go func() { _ = srv.Run(ctx, ln, time.Second); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
		conn.Close()
	})
	return &testRelay{url: "http://" + ln.Addr().String(), redis: rs, rdb: conn.Client, reg: reg}
}

// req is one request to the relay.
type req struct {
	method, path, body string
	header             map[string]string
}

type resp struct {
	status int
	header http.Header
	body   string
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func (r *testRelay) do(t *testing.T, q req) resp {
	t.Helper()
	if q.method == "" {
		q.method = http.MethodPost
	}
	hr, err := http.NewRequest(q.method, r.url+q.path, strings.NewReader(q.body))
	if err != nil {
		t.Fatal(err)
	}
	if q.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range q.header {
		if v == "" {
			hr.Header.Del(k)
			continue
		}
		hr.Header.Set(k, v)
	}
	res, err := httpClient.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", q.method, q.path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: string(b)}
}

// entries returns every entry in provider's stream, decoded (queue.DecodeEntry), as a map
// of the entry fields of the nine-field format (queue.Field*).
func (r *testRelay) entries(t *testing.T, provider string) []map[string]any {
	t.Helper()
	msgs, err := r.rdb.XRange(context.Background(), "t:{"+provider+"}:events", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]map[string]any, len(msgs))
	for i, x := range msgs {
		e := queue.DecodeEntry(provider, x.ID, x.Values)
		if e.Bad != nil {
			t.Fatalf("entry %s: %v", x.ID, e.Bad)
		}
		m := e.Message
		out[i] = map[string]any{queue.FieldID: m.ID, queue.FieldRoute: m.Route, queue.FieldBody: string(m.Body),
			queue.FieldAt: strconv.FormatInt(m.ReceivedAt.UnixMilli(), 10), queue.FieldIP: m.ClientIP,
			queue.FieldUA: m.UserAgent, queue.FieldCountry: m.Country, queue.FieldCustomer: m.CustomerID,
			queue.FieldSource: m.Source}
	}
	return out
}

// dumpRedis returns every key and value in Redis as text, to search for leaks.
func (r *testRelay) dumpRedis(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	keys, err := r.rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		b.WriteString(k + "\n")
		switch r.rdb.Type(ctx, k).Val() {
		case "stream":
			for _, m := range r.rdb.XRange(ctx, k, "-", "+").Val() {
				fmt.Fprintf(&b, "%v\n", m.Values)
			}
		case "string":
			b.WriteString(r.rdb.Get(ctx, k).Val() + "\n")
		}
	}
	return b.String()
}

func identityToken(t *testing.T, secret string, claims jwt.MapClaims, method jwt.SigningMethod) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
