package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/internal/redistest"
)

// Every secret of the config is a unique canary. The test drives successes and every
// error path it can, then looks for the canaries everywhere the relay writes: replies,
// logs, metrics and Redis (streams, retry sets, dead letters, everything).
func TestSecretsNeverLeak(t *testing.T) {
	canaries := map[string]string{
		"admin":    "canary-admin-token-6a1f09c2",
		"client":   "canary-client-token-7b2e18d3",
		"identity": "canary-identity-secret-8c3d27e4-0123456789abcdef",
		"lr":       "canary-linkrunner-key-9d4c36f5",
		"ens":      "canary-ens-key-ae5b4506",
		"brevo":    "canary-brevo-key-bf6a5417",
		"ma":       "canary-brevo-ma-key-c0795328",
	}
	rs := redistest.Start(t, redistest.Options{})
	// Upstreams answer with errors that echo the credential they were sent.
	echo := func(status int) func(int, fakeHit) (int, string) {
		return func(n int, h fakeHit) (int, string) {
			if n%2 == 1 {
				return 200, `{"ok":true}`
			}
			return status, fmt.Sprintf(`{"error":"bad request","body":%q,"got":%q}`, h.body, fmt.Sprint(h.header))
		}
	}
	lr, ens, brevo := newFake(t, echo(401)), newFake(t, echo(400)), newFake(t, echo(400))
	cfg := fmt.Sprintf(`
server: {listen: "{{ingest}}", max_body_bytes: 2048}
admin: {listen: "{{admin}}", token: %s}
redis: {url: %q, prefix: canary}
log: {level: debug}
sites:
  - name: shop
    key: pk_canary_site_01
    origins: ["https://shop.example.com"]
    identity_secret: %s
    rate_limit: {per_ip: 5, burst: 5}
clients:
  - {name: backend, token: %s}
providers:
  linkrunner: {base_url: %q, server_key: %s, timeout: 1s, max_attempts: 2, backoff: {base: 50ms, max: 100ms}}
  ens: {base_url: %q, api_key: %s, timeout: 1s, backoff: {base: 50ms, max: 100ms}}
  brevo: {base_url: %q, tracker_url: %q, api_key: %s, ma_key: %s, timeout: 1s, max_attempts: 2, backoff: {base: 50ms, max: 100ms}}
`, canaries["admin"], rs.URL(), canaries["identity"], canaries["client"], lr.srv.URL, canaries["lr"],
		ens.srv.URL, canaries["ens"], brevo.srv.URL, brevo.srv.URL, canaries["brevo"], canaries["ma"])
	p := startRelay(t, cfg)

	var replies strings.Builder
	send := func(path, body string, h map[string]string) {
		status, b := p.post(t, path, body, h)
		fmt.Fprintf(&replies, "%d %s\n", status, b)
	}
	backend := map[string]string{"Authorization": "Bearer " + canaries["client"]}
	site := map[string]string{"X-Relay-Key": "pk_canary_site_01", "Origin": "https://shop.example.com"}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u-1", "email": "jane@example.com",
		"exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(canaries["identity"]))
	if err != nil {
		t.Fatal(err)
	}
	withID := map[string]string{"X-Relay-Key": "pk_canary_site_01", "Origin": "https://shop.example.com", "X-Relay-Identity": tok}
	// Successes and upstream failures (401, 400, 500 echoing the key).
	for range 2 {
		send("/v1/linkrunner/capture-event", `{"event_name":"e","user_id":"u"}`, backend)
		send("/v1/ens/click", `{"campaignId":1,"placement":"p"}`, backend)
		send("/v1/brevo/events", `{"event_name":"e","identifiers":{"email_id":"jane@example.com"}}`, backend)
		send("/v1/brevo/track-event", `{"email":"jane@example.com","event":"e"}`, backend)
	}
	send("/v1/linkrunner/capture-event", `{"event_name":"e","user_id":"ignored"}`, withID)
	// Ingest refusals: every status the API has.
	send("/v1/ens/click", `{"campaignId":1,"placement":"p"}`, map[string]string{"Authorization": "Bearer " + canaries["client"], "Origin": "https://shop.example.com"})
	send("/v1/ens/click", `{"campaignId":1,"placement":"p"}`, map[string]string{"Authorization": "Bearer wrong-" + canaries["client"]})
	send("/v1/ens/click", `{"campaignId":1,"placement":"p","api_key":"`+canaries["ens"]+`"}`, backend)
	send("/v1/ens/click", `{"campaignId":1,"placement":"p"}`, map[string]string{"X-Relay-Key": "pk_canary_site_01", "Origin": "https://evil.test"})
	send("/v1/linkrunner/capture-event", `{"event_name":"e","user_id":"u"}`, map[string]string{"X-Relay-Key": "pk_canary_site_01", "X-Relay-Identity": tok + "x"})
	send("/v1/nope", `{}`, backend)
	send("/v1/ens/click", strings.Repeat("x", 4096), backend)
	send("/v1/ens/click", `{"campaignId":1,`, backend)
	for range 8 {
		send("/v1/ens/click", `{"campaignId":1,"placement":"p"}`, site)
	}
	// Wait for every upstream to have been called twice (failure, then success or retry).
	waitFor(t, 15*time.Second, "deliveries and retries", func() bool {
		return len(lr.got()) >= 2 && len(ens.got()) >= 2 && len(brevo.got()) >= 2
	})
	time.Sleep(500 * time.Millisecond)
	// Redis down: 503s.
	rs.Kill()
	send("/v1/ens/click", `{"campaignId":1,"placement":"p"}`, backend)
	rs.Restart()
	time.Sleep(300 * time.Millisecond)

	metrics := get(t, "http://"+p.admin+"/metrics", "")
	everything := map[string]string{
		"replies": replies.String(),
		"logs":    p.output(),
		"metrics": metrics,
		"redis":   dumpRedis(t, rs.URL()),
	}
	// The paths under test really ran: a dead letter holding the upstream's (redacted)
	// echo of its credential, and a redacted echo in the logs.
	if !strings.Contains(everything["redis"], "canary:{ens}:dead") || !strings.Contains(everything["redis"], "[redacted]") {
		t.Errorf("no ENS dead letter with a redacted upstream error in Redis:\n%s", everything["redis"])
	}
	if !strings.Contains(everything["logs"], "[redacted]") {
		t.Errorf("no redacted upstream error in the logs")
	}
	for what, text := range everything {
		for name, secret := range canaries {
			if strings.Contains(text, secret) {
				i := strings.Index(text, secret)
				t.Errorf("the %s secret appears in %s: …%s…", name, what, text[max(0, i-80):min(len(text), i+len(secret)+20)])
			}
		}
	}
	// E-mail addresses appear in logs only masked.
	if strings.Contains(everything["logs"], "jane@example.com") {
		t.Errorf("an e-mail address appears unmasked in the logs")
	}
}

func get(t *testing.T, url, token string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// dumpRedis renders every key and value as text.
func dumpRedis(t *testing.T, url string) string {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b strings.Builder
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		b.WriteString(k + "\n")
		var v any
		switch rdb.Type(ctx, k).Val() {
		case "stream":
			v = rdb.XRange(ctx, k, "-", "+").Val()
		case "zset":
			v = rdb.ZRange(ctx, k, 0, -1).Val()
		case "hash":
			v = rdb.HGetAll(ctx, k).Val()
		case "string":
			v = rdb.Get(ctx, k).Val()
		}
		j, _ := json.Marshal(v)
		b.Write(j)
		b.WriteString("\n")
	}
	return b.String()
}
