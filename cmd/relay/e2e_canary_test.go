package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/internal/redistest"
)

// canaryProviders are the providers of the canary test's config, and so of its Redis.
var canaryProviders = []string{"linkrunner", "ens", "brevo", "cardlytics"}

// Every secret setting of the config is a unique canary: every provider credential, both
// sites' identity secrets, both clients' tokens, the admin token and the password inside
// redis.url (a real redis-server with requirepass), plus the session token Cardlytics
// hands out. The test drives successes and every error path it can (upstreams that echo
// the credentials they were sent, ingest refusals, admin calls, CLI commands, a broken
// config, Redis down), then looks for the canaries everywhere the relay writes: ingest and
// admin replies, /metrics, /healthz, /readyz, the CLI's output, the relay's logs and every
// key in Redis. Positive controls: each provider's secret reaches its own upstream, and
// only there; Cardlytics' client id and secret only its startSession request.
func TestSecretsNeverLeak(t *testing.T) {
	c := map[string]string{
		"admin.token":                     "canary-admin-token-6a1f09c2",
		"clients[0].token":                "canary-client-token-7b2e18d3",
		"clients[1].token":                "canary-client2-token-5d0e7a19",
		"sites[0].identity_secret":        "canary-identity-secret-8c3d27e4-0123456789abcdef",
		"sites[1].identity_secret":        "canary-identity2-secret-1f2e3d4c-fedcba9876543210",
		"providers.linkrunner.server_key": "canary-linkrunner-key-9d4c36f5",
		"providers.ens.api_key":           "canary-ens-key-ae5b4506",
		"providers.brevo.api_key":         "canary-brevo-key-bf6a5417",
		"providers.brevo.ma_key":          "canary-brevo-ma-key-c0795328",
		"providers.cardlytics.client_id":  e2eCXClientID,
		"providers.cardlytics.secret":     e2eCXSecret,
		"cardlytics session token":        e2eCXToken,
		"redis.url password":              "canary-redis-pw-3e9b5c71",
	}
	rs := redistest.Start(t, redistest.Options{Password: c["redis.url password"]})
	// Upstreams answer every other request with an error that echoes the credential they
	// were sent (headers and body), as some real APIs do.
	echo := func(status int) func(int, fakeHit) (int, string) {
		return func(n int, h fakeHit) (int, string) {
			if n%2 == 1 {
				return 200, `{"ok":true}`
			}
			return status, fmt.Sprintf(`{"error":"bad request","body":%q,"got":%q}`, h.body, fmt.Sprint(h.header))
		}
	}
	lr, ens, brevo := newFake(t, echo(401)), newFake(t, echo(400)), newFake(t, echo(400))
	cx := newCardlyticsE2E(t)
	// Cardlytics: the first startSession is refused echoing clientId/secret, the first
	// clientEvent is refused echoing the session token; later ones succeed.
	var cxMu sync.Mutex
	cxSeen := map[string]int{}
	cx.up.reply = func(_ int, h fakeHit) (int, string) {
		cxMu.Lock()
		n := cxSeen[h.path]
		cxSeen[h.path]++
		cxMu.Unlock()
		// Headers first: the relay keeps only the start of an upstream's error.
		echoed := fmt.Sprintf(`{"message":"refused","headers":%q,"body":%q}`, fmt.Sprint(h.header), h.body)
		switch {
		case h.path == e2eCXSessionPath && n == 0:
			return 401, echoed
		case h.path == e2eCXSessionPath:
			return 200, `{"token":"` + e2eCXToken + `"}`
		case h.path == e2eCXEventsPath && n == 0:
			return 400, echoed
		case h.path == e2eCXEventsPath:
			id, _ := json.Marshal(h.header.Get("X-CDLX-Request-Id"))
			return 200, `{"requestId":` + string(id) + `}`
		}
		return 404, `{"message":"no such path"}`
	}
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
  - name: blog
    key: pk_canary_site_02
    origins: ["https://blog.example.com"]
    identity_secret: %s
    rate_limit: {per_ip: 50, burst: 50}
clients:
  - {name: backend, token: %s}
  - {name: batcher, token: %s}
providers:
  linkrunner: {base_url: %q, server_key: %s, timeout: 1s, max_attempts: 2, backoff: {base: 50ms, max: 100ms}}
  ens: {base_url: %q, api_key: %s, timeout: 1s, backoff: {base: 50ms, max: 100ms}}
  brevo: {base_url: %q, tracker_url: %q, api_key: %s, ma_key: %s, timeout: 1s, max_attempts: 2, backoff: {base: 50ms, max: 100ms}}
`, c["admin.token"], rs.URL(), c["sites[0].identity_secret"], c["sites[1].identity_secret"],
		c["clients[0].token"], c["clients[1].token"], lr.srv.URL, c["providers.linkrunner.server_key"],
		ens.srv.URL, c["providers.ens.api_key"], brevo.srv.URL, brevo.srv.URL, c["providers.brevo.api_key"],
		c["providers.brevo.ma_key"]) + cx.providerConfig()
	p := startRelay(t, cfg)
	var tr canaryTranscript

	// Ingest: successes, upstream failures and every refusal the API has.
	send := func(path, body string, h map[string]string) int {
		status, b := p.post(t, path, body, h)
		tr.add("reply to POST "+path, fmt.Sprintf("%d %s", status, b)) // the request's headers hold secrets
		return status
	}
	backend := map[string]string{"Authorization": "Bearer " + c["clients[0].token"]}
	batcher := map[string]string{"Authorization": "Bearer " + c["clients[1].token"]}
	shop := map[string]string{"X-Relay-Key": "pk_canary_site_01", "Origin": "https://shop.example.com"}
	sign := func(secret string, claims jwt.MapClaims) string {
		claims["exp"] = time.Now().Add(time.Hour).Unix()
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	shopUser := sign(c["sites[0].identity_secret"], jwt.MapClaims{"sub": "u-1", "email": "jane@example.com"})
	blogCustomer := sign(c["sites[1].identity_secret"], jwt.MapClaims{"customer_id": "cust-blog-1"})
	forged := sign(c["sites[0].identity_secret"]+"-not", jwt.MapClaims{"sub": "u-2"})
	accepted := 0
	for range 2 {
		for _, s := range []int{
			send("/v1/linkrunner/capture-event", `{"event_name":"e","user_id":"u"}`, backend),
			send("/v1/ens/click", `{"campaignId":1,"placement":"p"}`, backend),
			send("/v1/brevo/events", `{"event_name":"e","identifiers":{"email_id":"jane@example.com"}}`, backend),
			send("/v1/brevo/track-event", `{"email":"jane@example.com","event":"e"}`, batcher),
		} {
			if s == 202 {
				accepted++
			}
		}
	}
	for _, s := range []int{
		send("/v1/linkrunner/capture-event", `{"event_name":"e","user_id":"ignored"}`,
			map[string]string{"X-Relay-Key": "pk_canary_site_01", "Origin": "https://shop.example.com", "X-Relay-Identity": shopUser}),
		send("/v1/cardlytics/client-events", e2eCXImpression, map[string]string{"Authorization": "Bearer " + c["clients[1].token"],
			"X-Relay-Customer-Id": e2eCXCustomer}),
		send("/v1/cardlytics/client-events", strings.Replace(e2eCXImpression, "2e08d638-04e2-4561-b56a-ca32cfff6203",
			"7c1d2e3f-0000-4000-8000-00000000c0de", 1),
			map[string]string{"X-Relay-Key": "pk_canary_site_02", "Origin": "https://blog.example.com", "X-Relay-Identity": blogCustomer}),
		send("/v1/batch", `{"events":[{"route":"ens/impression","body":{"campaignId":3,"placement":"p"}}]}`, batcher),
	} {
		if s != 202 {
			t.Fatalf("a request the test needs accepted got %d (see the transcript)\n%s", s, tr.String())
		}
		accepted++
	}
	refusals := []struct {
		path, body string
		h          map[string]string
	}{
		{"/v1/ens/click", `{"campaignId":1,"placement":"p"}`, map[string]string{"Authorization": "Bearer " + c["clients[0].token"], "Origin": "https://shop.example.com"}},
		{"/v1/ens/click", `{"campaignId":1,"placement":"p"}`, map[string]string{"Authorization": "Bearer wrong-" + c["clients[0].token"]}},
		{"/v1/ens/click", `{"campaignId":1,"placement":"p"}`, map[string]string{"Authorization": "Bearer " + c["admin.token"]}},
		{"/v1/ens/click", `{"campaignId":1,"placement":"p","api_key":"` + c["providers.ens.api_key"] + `"}`, backend},
		{"/v1/linkrunner/capture-event", `{"event_name":"e","user_id":"u","server_key":"` + c["providers.linkrunner.server_key"] + `"}`, backend},
		{"/v1/ens/click", `{"campaignId":1,"placement":"p"}`, map[string]string{"X-Relay-Key": "pk_canary_site_01", "Origin": "https://evil.test"}},
		{"/v1/linkrunner/capture-event", `{"event_name":"e","user_id":"u"}`, map[string]string{"X-Relay-Key": "pk_canary_site_01", "X-Relay-Identity": shopUser + "x"}},
		{"/v1/linkrunner/capture-event", `{"event_name":"e","user_id":"u"}`, map[string]string{"X-Relay-Key": "pk_canary_site_01", "X-Relay-Identity": forged}},
		{"/v1/cardlytics/client-events", e2eCXImpression, map[string]string{"X-Relay-Key": "pk_canary_site_02", "Origin": "https://blog.example.com",
			"X-Relay-Identity": sign(c["sites[0].identity_secret"], jwt.MapClaims{"customer_id": "x"})}},
		{"/v1/nope", `{}`, backend},
		{"/v1/ens/click", strings.Repeat("x", 4096), backend},
		{"/v1/ens/click", `{"campaignId":1,`, backend},
	}
	for _, r := range refusals {
		if s := send(r.path, r.body, r.h); s/100 != 4 {
			t.Errorf("POST %s %v: %d, want a refusal", r.path, r.h, s)
		}
	}
	for range 8 { // the shop's rate limit (burst 5) refuses the rest with 429
		if send("/v1/ens/click", `{"campaignId":1,"placement":"p"}`, shop) == 202 {
			accepted++
		}
	}
	// Each upstream saw its events (failures echoing the credential included), and then
	// nothing is left in Redis to deliver or retry.
	waitFor(t, 30*time.Second, "every upstream called", func() bool {
		return len(lr.got()) >= 2 && len(ens.got()) >= 2 && len(brevo.got()) >= 2 && canaryCount(&cxMu, cxSeen, e2eCXEventsPath) >= 2
	})
	waitRelayQuiescent(t, rs.URL(), "canary", 60*time.Second, canaryProviders...)

	adminURL := "http://" + p.admin
	tok := c["admin.token"]
	canaryAdmin(t, &tr, adminURL, tok)
	waitRelayQuiescent(t, rs.URL(), "canary", 60*time.Second, canaryProviders...)
	canaryCLIs(t, &tr, p, c, cfg)

	// Redis down, then back: the 503s, /readyz while down and the reconnection logs.
	rs.Kill()
	send("/v1/ens/click", `{"campaignId":1,"placement":"p"}`, backend)
	canaryHTTP(t, &tr, "GET", adminURL+"/readyz", "", "")
	canaryHTTP(t, &tr, "GET", adminURL+"/admin/api/providers", tok, "")
	rs.Restart()
	waitFor(t, 30*time.Second, "/readyz 200 after Redis restarted", func() bool {
		s, _ := canaryHTTP(t, &canaryTranscript{}, "GET", adminURL+"/readyz", "", "")
		return s == 200
	})
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		canaryHTTP(t, &tr, "GET", adminURL+path, "", "")
	}

	// Positive control: the Redis password works (the relay queued events through it),
	// and Redis refuses a client without it.
	if accepted == 0 {
		t.Fatal("no event accepted: the relay never used the Redis password")
	}
	noAuth := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	if err := noAuth.Ping(context.Background()).Err(); err == nil {
		t.Error("redis-server answered PING without the password: requirepass is not on")
	}
	_ = noAuth.Close()

	dump := canaryDumpRedis(t, rs.URL())
	everything := map[string]string{"replies and CLI output": tr.String(), "logs": p.output(), "redis": dump}
	// The paths under test really ran: dead letters holding the upstreams' (redacted)
	// echoes of their credentials, and redacted echoes in the logs.
	for _, k := range []string{"canary:{ens}:dead", "canary:{cardlytics}:dead"} {
		if !strings.Contains(dump, k+" (stream)") {
			t.Errorf("no %s in Redis", k)
		}
	}
	if !strings.Contains(dump, "[redacted]") {
		t.Errorf("no dead letter with a redacted upstream error in Redis:\n%s", dump)
	}
	// Cardlytics' refusal echoed the session token: the dead letter the admin API showed
	// (since replayed) kept the echo with the token redacted.
	if i := strings.Index(tr.String(), "cardlytics clientEvent: "); i < 0 || !strings.Contains(tr.String()[i:min(i+200, len(tr.String()))], "Bearer [redacted]") {
		t.Errorf("no Cardlytics dead letter with the echoed session token redacted in the admin API's replies")
	}
	if !strings.Contains(everything["logs"], "[redacted]") {
		t.Errorf("no redacted upstream error in the logs")
	}
	for what, text := range everything {
		for name, secret := range c {
			if where := canaryFind(text, secret); where != "" {
				t.Errorf("the %s secret appears in the %s: %s", name, what, where)
			}
		}
	}
	// E-mail addresses appear in logs only masked.
	if strings.Contains(everything["logs"], "jane@example.com") {
		t.Errorf("an e-mail address appears unmasked in the logs")
	}
	canaryUpstreams(t, c, map[string]*fake{"linkrunner": lr, "ens": ens, "brevo": brevo, "cardlytics": cx.up})
}

// canaryCount reads seen[path] under mu.
func canaryCount(mu *sync.Mutex, seen map[string]int, path string) int {
	mu.Lock()
	defer mu.Unlock()
	return seen[path]
}

// canaryAdmin calls every admin API route and the page, with the right token, a wrong
// one and none: lists, single dead letters, a replay by id, a replay of all, a purge by
// id and a purge of all.
func canaryAdmin(t *testing.T, tr *canaryTranscript, base, tok string) {
	t.Helper()
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/admin/", "/admin/api/providers", "/admin/api/nope"} {
		canaryHTTP(t, tr, "GET", base+path, tok, "")
	}
	// Positive control: the admin token is the one the relay checks.
	if s, _ := canaryHTTP(t, tr, "GET", base+"/admin/api/providers", tok, ""); s != 200 {
		t.Errorf("admin API with the configured token: %d, want 200", s)
	}
	if s, _ := canaryHTTP(t, tr, "GET", base+"/admin/api/providers", "wrong-"+tok, ""); s != 401 {
		t.Errorf("admin API with a wrong token: %d, want 401", s)
	}
	canaryHTTP(t, tr, "GET", base+"/admin/", "", "")
	for _, p := range append(canaryProviders, "nope") {
		status, body := canaryHTTP(t, tr, "GET", base+"/admin/api/dead/"+p+"?limit=100", tok, "")
		var list struct {
			Dead []struct {
				StreamID string `json:"stream_id"`
			} `json:"dead"`
		}
		if status != 200 || json.Unmarshal([]byte(body), &list) != nil {
			continue
		}
		for _, d := range list.Dead {
			canaryHTTP(t, tr, "GET", base+"/admin/api/dead/"+p+"/"+d.StreamID, tok, "")
		}
		switch {
		case p == "linkrunner" && len(list.Dead) > 0:
			canaryHTTP(t, tr, "DELETE", base+"/admin/api/dead/"+p, tok, `{"ids":["`+list.Dead[0].StreamID+`"]}`)
		case p == "brevo" && len(list.Dead) > 0:
			canaryHTTP(t, tr, "POST", base+"/admin/api/dead/"+p+"/replay", tok, `{"ids":["`+list.Dead[0].StreamID+`"]}`)
			canaryHTTP(t, tr, "POST", base+"/admin/api/dead/"+p+"/replay", tok, "")
		}
	}
	canaryHTTP(t, tr, "POST", base+"/admin/api/dead/ens/replay", tok, `{"ids":["not-an-id"]}`)
	canaryHTTP(t, tr, "DELETE", base+"/admin/api/dead/ens", "wrong-"+tok, "")
}

// canaryCLIs runs every CLI command against the running relay, check-config on the good
// config and on two broken ones that hold every secret, and version.
func canaryCLIs(t *testing.T, tr *canaryTranscript, p *relayProc, c map[string]string, cfg string) {
	t.Helper()
	dir := t.TempDir()
	good := canaryWriteFile(t, dir, "good.yaml", strings.NewReplacer("{{ingest}}", p.ingest, "{{admin}}", p.admin).Replace(cfg))
	if code, out, errOut := canaryCLI(t, tr, "status", "--config", good); code != 0 || !strings.Contains(out, "cardlytics") {
		t.Errorf("relay status: exit %d\n%s%s", code, out, errOut)
	}
	for _, prov := range canaryProviders {
		canaryCLI(t, tr, "dlq", "list", "--config", good, "--provider", prov)
	}
	canaryCLI(t, tr, "dlq", "replay", "--config", good, "--provider", "cardlytics")
	canaryCLI(t, tr, "dlq", "purge", "--config", good, "--provider", "linkrunner", "--yes")
	canaryCLI(t, tr, "dlq", "list", "--config", good, "--provider", "nope")
	if code, _, _ := canaryCLI(t, tr, "check-config", "--config", good); code != 0 {
		t.Errorf("check-config of the running config: exit %d", code)
	}
	if code, out, _ := canaryCLI(t, tr, "version"); code != 0 || out == "" {
		t.Errorf("relay version: exit %d %q", code, out)
	}
	// A wrong admin token in the CLI's config: the refusal must not quote either token.
	wrongTok := canaryWriteFile(t, dir, "wrong-token.yaml", strings.Replace(
		strings.NewReplacer("{{ingest}}", p.ingest, "{{admin}}", p.admin).Replace(cfg), c["admin.token"], c["admin.token"]+"-stale", 1))
	if code, _, _ := canaryCLI(t, tr, "status", "--config", wrongTok); code != 1 {
		t.Errorf("relay status with a wrong token: exit %d, want 1", code)
	}

	// Semantically broken: every secret field present, next to problems about secrets.
	// Broken values that contain the canary still must not be quoted.
	broken := fmt.Sprintf(`
server: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0", token: %s, tokne: %s}
redis: {url: "redis://:%s@127.0.0.1:notaport/0", prefix: canary}
sites:
  - {name: shop, key: pk_canary_site_01, identity_secret: %s, trust_client_identity: true, rate_limit: {per_ip: 1, burst: 1}}
  - {name: blog, key: pk_canary_site_02, identity_secret: %s, rate_limit: {per_ip: 1, burst: 1}}
clients:
  - {name: backend, token: %s}
  - {name: batcher, token: %s}
  - {name: copy, token: %s}
providers:
  linkrunner: {server_key: "%s ", base_url: "http://u:%s@127.0.0.1:1"}
  ens: {api_key: %s, api_kee: %s}
  brevo: {api_key: "%s\t", ma_key: %s, batch: %s}
  cardlytics: {auth: bearer, client_id: "%s x", secret: %s, base_url: "https://127.0.0.1:1", institution_id: "%s"}
`, c["admin.token"], c["admin.token"], c["redis.url password"], c["sites[0].identity_secret"], c["sites[1].identity_secret"],
		c["clients[0].token"], c["clients[1].token"], c["clients[1].token"],
		c["providers.linkrunner.server_key"], c["providers.linkrunner.server_key"], c["providers.ens.api_key"], c["providers.ens.api_key"],
		c["providers.brevo.api_key"], c["providers.brevo.ma_key"], c["providers.brevo.ma_key"],
		c["providers.cardlytics.client_id"], c["providers.cardlytics.secret"], c["providers.cardlytics.secret"])
	code, out, errOut := canaryCLI(t, tr, "check-config", "--config", canaryWriteFile(t, dir, "broken.yaml", broken))
	if code != 1 {
		t.Errorf("check-config of a broken config: exit %d, want 1\n%s%s", code, out, errOut)
	}
	// Positive control: the errors were found and named by path (which ones a strict
	// decoder reports first is its business; at least one about a secret field).
	if !strings.Contains(errOut, "admin.tokne") && !strings.Contains(errOut, "clients[2].token") &&
		!strings.Contains(errOut, "redis.url") {
		t.Errorf("check-config of a broken config names none of its problems:\n%s", errOut)
	}
	semantic := strings.NewReplacer(", tokne: "+c["admin.token"], "", ", api_kee: "+c["providers.ens.api_key"], "",
		", batch: "+c["providers.brevo.ma_key"], "").Replace(broken)
	code, _, errOut = canaryCLI(t, tr, "check-config", "--config", canaryWriteFile(t, dir, "semantic.yaml", semantic))
	if code != 1 || !strings.Contains(errOut, "clients[2].token") || !strings.Contains(errOut, "redis.url") {
		t.Errorf("check-config of a config with bad secrets: exit %d, want 1 naming clients[2].token and redis.url:\n%s", code, errOut)
	}
	// Syntax error on a line holding a secret.
	syntax := fmt.Sprintf("admin: {listen: \"127.0.0.1:0\", token: %s\nproviders:\n  ens: {api_key: %s: x}\n",
		c["admin.token"], c["providers.ens.api_key"])
	if code, _, _ := canaryCLI(t, tr, "check-config", "--config", canaryWriteFile(t, dir, "syntax.yaml", syntax)); code != 1 {
		t.Errorf("check-config of a config with a YAML syntax error: exit %d, want 1", code)
	}
}

// canaryUpstreams checks what each fake upstream received: every request carried its own
// provider's credential where the API wants it and no other secret at all; Cardlytics'
// client id and secret went only in startSession bodies, its session token only in
// clientEvent's Authorization header.
func canaryUpstreams(t *testing.T, c map[string]string, ups map[string]*fake) {
	t.Helper()
	own := func(h fakeHit, provider string) map[string]string { // secret name -> where it belongs
		switch provider {
		case "linkrunner":
			return map[string]string{"providers.linkrunner.server_key": "Linkrunner-Key"}
		case "ens":
			return map[string]string{"providers.ens.api_key": "Authorization"}
		case "brevo":
			if h.path == "/api/v2/trackEvent" {
				return map[string]string{"providers.brevo.ma_key": "Ma-Key"}
			}
			return map[string]string{"providers.brevo.api_key": "Api-Key"}
		case "cardlytics":
			if h.path == e2eCXSessionPath {
				return map[string]string{"providers.cardlytics.client_id": "body", "providers.cardlytics.secret": "body"}
			}
			return map[string]string{"cardlytics session token": "Authorization"}
		}
		return nil
	}
	for provider, up := range ups {
		hits := up.got()
		if len(hits) == 0 {
			t.Errorf("%s: no upstream request", provider)
		}
		for _, h := range hits {
			mine := own(h, provider)
			for name, where := range mine {
				secret := c[name]
				var got bool
				if where == "body" {
					got = strings.Contains(h.body, secret)
				} else {
					v := h.header.Values(where)
					got = len(v) == 1 && strings.TrimPrefix(v[0], "Bearer ") == secret
				}
				if !got {
					t.Errorf("%s %s: the %s is not in %s (positive control)", provider, h.path, name, where)
				}
			}
			text := canaryHitText(h)
			for name, secret := range c {
				if _, ok := mine[name]; ok {
					// Its own secret, once, where it belongs; nowhere else in the request.
					var rest string
					if mine[name] == "body" {
						rest = h.path + "\n" + fmt.Sprint(h.header)
					} else {
						rest = h.path + "\n" + h.body + "\n" + fmt.Sprint(canaryWithout(h.header, mine[name]))
					}
					if where := canaryFind(rest, secret); where != "" {
						t.Errorf("%s %s: the %s appears outside %s: %s", provider, h.path, name, mine[name], where)
					}
					continue
				}
				if where := canaryFind(text, secret); where != "" {
					t.Errorf("%s %s: the %s reached this upstream: %s", provider, h.path, name, where)
				}
			}
		}
	}
}

// canaryWithout is header without name.
func canaryWithout(h map[string][]string, name string) map[string][]string {
	out := make(map[string][]string, len(h))
	for k, v := range h {
		if k != name {
			out[k] = v
		}
	}
	return out
}
