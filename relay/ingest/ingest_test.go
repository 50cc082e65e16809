package ingest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/relay/queue"
)

// Documented examples (the provider pages in providers/testdata/pages), placeholders
// replaced by real values.
const (
	lrEvent = `{"event_name":"product_viewed","event_data":{"product_id":"ABC123","category":"electronics","amount":249.99,"currency":"USD","is_featured":true},"user_id":"user_12345"}`
	// lrPlain is lrEvent without revenue (event_data.amount), which sites need revenue: true for.
	lrPlain   = `{"event_name":"product_viewed","event_data":{"product_id":"ABC123","category":"electronics","currency":"USD"},"user_id":"user_12345"}`
	lrPayment = `{"user_id":"user_12345","payment_id":"pay_0001","amount":149.99,"type":"FIRST_PAYMENT","status":"PAYMENT_COMPLETED"}`
	ensBody   = `{"campaignId":1,"placement":"header_banner","location":"US","device":"mobile"}`
	brevoV3   = `{"event_name":"cart_updated","identifiers":{"email_id":"jane@example.com"},"event_properties":{"cart_id":"c-1"}}`
	brevoMA   = `{"email":"jane@example.com","event":"cart_updated","eventdata":{"data":{"added_product":[{"currency":"EUR","name":"Wrist watch","type":"accessories","price":"50.00"}]}},"properties":{"additionalProp":"string"}}`
	bfBody    = `{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","event":"impression","campaignId":"bnrflx-your-campaign-id"}`
	cdlxBody  = `{"clientEvents":[{"clientEventId":"2e08d638-04e2-4561-b56a-ca32cfff6203","clientEventType":"AdImpression","clientEvent":"AdViewableImpression","clientEventTimestamp":"2023-03-11T08:00:00Z","clientEventMetadata":{"serveToken":"91e471aed3c04b81bee792f23ad4859d","section":"LatestOffers","channel":"OLB","imageSlots":["logo"],"categoryId":"1","displayPosition":2}}]}`
)

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

func tight() map[string]string {
	return map[string]string{"X-Relay-Key": "pk_tight_0005", "Origin": shopOrig}
}

func shop() map[string]string {
	return map[string]string{"X-Relay-Key": shopKey, "Origin": shopOrig}
}

type accepted struct {
	OK  bool     `json:"ok"`
	IDs []string `json:"ids"`
}

type refused struct {
	OK    bool `json:"ok"`
	Error struct {
		Code, Field, Message string
	} `json:"error"`
}

func decode[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("reply %q is not JSON: %v", body, err)
	}
	return v
}

func TestEveryRouteQueuesItsDocumentedExample(t *testing.T) {
	r := startRelay(t)
	cases := []struct {
		route, provider, body string
		header                map[string]string
	}{
		{"linkrunner/capture-event", "linkrunner", lrEvent, bearer(backend)},
		{"linkrunner/capture-payment", "linkrunner", lrPayment, bearer(backend)},
		{"ens/impression", "ens", ensBody, shop()},
		{"ens/click", "ens", ensBody, shop()},
		{"brevo/events", "brevo", brevoV3, bearer(backend)},
		{"brevo/track-event", "brevo", brevoMA, bearer(backend)},
		{"bannerflex/banner-events", "bannerflex", bfBody, shop()},
		{"cardlytics/client-events", "cardlytics", cdlxBody, map[string]string{"Authorization": "Bearer " + backend, "X-Relay-Customer-Id": "cust-42"}},
	}
	want := map[string]int{}
	for _, c := range cases {
		res := r.do(t, req{path: "/v1/" + c.route, body: c.body, header: c.header})
		if res.status != http.StatusAccepted {
			t.Fatalf("%s: status %d %s", c.route, res.status, res.body)
		}
		if ct := res.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", c.route, ct)
		}
		a := decode[accepted](t, res.body)
		if !a.OK || len(a.IDs) != 1 {
			t.Fatalf("%s: reply %s", c.route, res.body)
		}
		want[c.provider]++
		entries := r.entries(t, c.provider)
		if len(entries) != want[c.provider] {
			t.Fatalf("%s: %d entries in %s stream, want %d", c.route, len(entries), c.provider, want[c.provider])
		}
		e := entries[len(entries)-1]
		if e["id"] != a.IDs[0] || e["route"] != c.route {
			t.Errorf("%s: entry %v does not carry id %s and its route", c.route, e, a.IDs[0])
		}
		// The stored body is the validated body: same JSON value as sent.
		var sent, stored any
		_ = json.Unmarshal([]byte(c.body), &sent)
		if err := json.Unmarshal([]byte(e["body"].(string)), &stored); err != nil {
			t.Fatalf("%s: stored body %q: %v", c.route, e["body"], err)
		}
		if s1, _ := json.Marshal(sent); string(s1) != mustJSON(stored) {
			t.Errorf("%s: stored body %s, sent %s", c.route, e["body"], c.body)
		}
		if c.provider == "cardlytics" && e["customer"] != "cust-42" {
			t.Errorf("cardlytics entry lacks the customer: %v", e)
		}
		if e["ip"] != "127.0.0.1" {
			t.Errorf("%s: ip %v", c.route, e["ip"])
		}
	}
	dump := r.dumpRedis(t)
	for _, s := range testSecrets {
		if strings.Contains(dump, s) {
			t.Errorf("secret %q found in Redis", s)
		}
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestRefusals(t *testing.T) {
	r := startRelay(t)
	long := `{"campaignId":1,"placement":"` + strings.Repeat("x", 5000) + `"}`
	deep := `{"campaignId":1,"placement":"p","x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`
	cases := []struct {
		name   string
		q      req
		status int
		code   string
		field  string
	}{
		{"unknown route", req{path: "/v1/nope", body: ensBody, header: shop()}, 404, "not_found", ""},
		{"root", req{path: "/", body: ensBody, header: shop()}, 404, "not_found", ""},
		{"admin API on the ingest listener", req{method: "GET", path: "/admin/api/providers", header: map[string]string{"Authorization": "Bearer admin-token-0123456789"}}, 404, "not_found", ""},
		{"admin page on the ingest listener", req{method: "GET", path: "/admin/"}, 404, "not_found", ""},
		{"metrics on the ingest listener", req{method: "GET", path: "/metrics"}, 404, "not_found", ""},
		{"wrong method", req{method: "GET", path: "/v1/ens/click", header: shop()}, 405, "method_not_allowed", ""},
		{"no key", req{path: "/v1/ens/click", body: ensBody}, 401, "unauthorized", ""},
		{"unknown key", req{path: "/v1/ens/click", body: ensBody, header: map[string]string{"X-Relay-Key": "pk_nope_000000"}}, 401, "unauthorized", ""},
		{"unknown token", req{path: "/v1/ens/click", body: ensBody, header: bearer("nope-nope-nope-nope")}, 401, "unauthorized", ""},
		{"basic auth", req{path: "/v1/ens/click", body: ensBody, header: map[string]string{"Authorization": "Basic eDp5"}}, 401, "unauthorized", ""},
		{"token from a browser", req{path: "/v1/ens/click", body: ensBody, header: map[string]string{"Authorization": "Bearer " + backend, "Origin": shopOrig}}, 403, "forbidden", ""},
		{"evil origin suffix", req{path: "/v1/ens/click", body: ensBody, header: map[string]string{"X-Relay-Key": shopKey, "Origin": shopOrig + ".evil.test"}}, 403, "forbidden", ""},
		{"null origin", req{path: "/v1/ens/click", body: ensBody, header: map[string]string{"X-Relay-Key": shopKey, "Origin": "null"}}, 403, "forbidden", ""},
		{"http origin", req{path: "/v1/ens/click", body: ensBody, header: map[string]string{"X-Relay-Key": shopKey, "Origin": "http://shop.example.com"}}, 403, "forbidden", ""},
		{"other port", req{path: "/v1/ens/click", body: ensBody, header: map[string]string{"X-Relay-Key": shopKey, "Origin": otherPort}}, 403, "forbidden", ""},
		{"another site's origin", req{path: "/v1/ens/click", body: ensBody, header: map[string]string{"X-Relay-Key": shopKey, "Origin": idOrigin}}, 403, "forbidden", ""},
		{"route not listed", req{path: "/v1/brevo/events", body: brevoV3, header: shop()}, 403, "forbidden", "route"},
		{"money route by default", req{path: "/v1/linkrunner/capture-payment", body: lrPayment, header: map[string]string{"X-Relay-Key": trustKey}}, 403, "forbidden", "route"},
		{"form content type", req{path: "/v1/ens/click", body: ensBody, header: map[string]string{"X-Relay-Key": shopKey, "Content-Type": "application/x-www-form-urlencoded"}}, 415, "unsupported_media_type", ""},
		{"latin1 charset", req{path: "/v1/ens/click", body: ensBody, header: map[string]string{"X-Relay-Key": shopKey, "Content-Type": "text/plain; charset=iso-8859-1"}}, 415, "unsupported_media_type", ""},
		{"gzip", req{path: "/v1/ens/click", body: ensBody, header: map[string]string{"X-Relay-Key": shopKey, "Content-Encoding": "gzip"}}, 415, "unsupported_media_type", ""},
		{"too large", req{path: "/v1/ens/click", body: long, header: map[string]string{"X-Relay-Key": shopKey}}, 413, "body_too_large", ""},
		{"invalid json", req{path: "/v1/ens/click", body: `{"campaignId":1,`, header: map[string]string{"X-Relay-Key": shopKey}}, 400, "invalid_json", ""},
		{"invalid utf8", req{path: "/v1/ens/click", body: "{\"campaignId\":1,\"placement\":\"\xff\"}", header: map[string]string{"X-Relay-Key": shopKey}}, 400, "invalid_json", ""},
		{"duplicate key", req{path: "/v1/ens/click", body: `{"campaignId":1,"placement":"a","CampaignId":2}`, header: map[string]string{"X-Relay-Key": shopKey}}, 400, "duplicate_key", "CampaignId"},
		{"too deep", req{path: "/v1/ens/click", body: deep, header: map[string]string{"X-Relay-Key": shopKey}}, 400, "too_deep", "x" + strings.Repeat("[0]", 31)},
		{"missing field", req{path: "/v1/ens/click", body: `{"placement":"a"}`, header: map[string]string{"X-Relay-Key": shopKey}}, 400, "missing_field", "campaignId"},
		{"wrong type", req{path: "/v1/ens/click", body: `{"campaignId":"1","placement":"a"}`, header: map[string]string{"X-Relay-Key": shopKey}}, 400, "invalid_field", "campaignId"},
		{"bad enum", req{path: "/v1/ens/click", body: `{"campaignId":1,"placement":"a","device":"tv"}`, header: map[string]string{"X-Relay-Key": shopKey}}, 400, "invalid_field", "device"},
		{"unknown field", req{path: "/v1/ens/click", body: `{"campaignId":1,"placement":"a","api_key":"x"}`, header: map[string]string{"X-Relay-Key": shopKey}}, 400, "unknown_field", "api_key"},
		{"huge number", req{path: "/v1/ens/click", body: `{"campaignId":1e309,"placement":"a"}`, header: map[string]string{"X-Relay-Key": shopKey}}, 400, "invalid_field", "campaignId"},
		{"bad idempotency key", req{path: "/v1/ens/click", body: ensBody, header: map[string]string{"X-Relay-Key": shopKey, "Idempotency-Key": "a b"}}, 400, "invalid_field", "Idempotency-Key"},
		{"cardlytics without customer", req{path: "/v1/cardlytics/client-events", body: cdlxBody, header: bearer(backend)}, 400, "missing_field", "X-Relay-Customer-Id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := r.do(t, c.q)
			if res.status != c.status {
				t.Fatalf("status %d, want %d: %s", res.status, c.status, res.body)
			}
			e := decode[refused](t, res.body)
			if e.OK || e.Error.Code != c.code || e.Error.Field != c.field || e.Error.Message == "" {
				t.Fatalf("reply %s, want code %q field %q", res.body, c.code, c.field)
			}
			if c.status == 405 && res.header.Get("Allow") != "POST, OPTIONS" {
				t.Errorf("Allow %q", res.header.Get("Allow"))
			}
			for _, s := range testSecrets {
				if strings.Contains(res.body, s) {
					t.Errorf("reply leaks secret: %s", res.body)
				}
			}
		})
	}
	for _, p := range []string{"ens", "linkrunner", "brevo", "bannerflex", "cardlytics"} {
		if n := len(r.entries(t, p)); n != 0 {
			t.Errorf("%d %s entries queued by refused requests", n, p)
		}
	}
}

func TestCORS(t *testing.T) {
	r := startRelay(t)
	pre := func(origin, path string) resp {
		return r.do(t, req{method: "OPTIONS", path: path, header: map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "content-type,x-relay-key"}})
	}
	res := pre(shopOrig, "/v1/ens/click")
	if res.status != http.StatusNoContent {
		t.Fatalf("preflight status %d %s", res.status, res.body)
	}
	want := map[string]string{
		"Access-Control-Allow-Origin":  shopOrig,
		"Access-Control-Allow-Methods": "POST, OPTIONS",
		"Access-Control-Allow-Headers": "Content-Type, X-Relay-Key, X-Relay-Identity, Idempotency-Key, X-Relay-Consent",
		"Access-Control-Max-Age":       "600",
		"Vary":                         "Origin",
	}
	for k, v := range want {
		if got := res.header.Get(k); got != v {
			t.Errorf("preflight %s = %q, want %q", k, got, v)
		}
	}
	// Preflight with ?key= checks that site only.
	if res := pre(idOrigin, "/v1/ens/click?key="+shopKey); res.status != http.StatusForbidden || res.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight of another site's origin with shop's key: %d %v", res.status, res.header)
	}
	// A route no site of that origin may use.
	if res := pre(shopOrig, "/v1/brevo/events"); res.status != http.StatusForbidden {
		t.Errorf("preflight for a route shop may not use: %d", res.status)
	}
	for _, o := range []string{"https://evil.test", "null", shopOrig + ".evil.test", "http://shop.example.com"} {
		res := pre(o, "/v1/ens/click")
		if res.status != http.StatusForbidden || res.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from %q: %d, ACAO %q", o, res.status, res.header.Get("Access-Control-Allow-Origin"))
		}
	}
	// The real request gets the exact origin back, never "*".
	res = r.do(t, req{path: "/v1/ens/click", body: ensBody, header: shop()})
	if res.status != http.StatusAccepted || res.header.Get("Access-Control-Allow-Origin") != shopOrig || res.header.Get("Vary") != "Origin" {
		t.Fatalf("POST: %d ACAO %q Vary %q", res.status, res.header.Get("Access-Control-Allow-Origin"), res.header.Get("Vary"))
	}
	// sendBeacon: text/plain body, key in the query string.
	res = r.do(t, req{path: "/v1/ens/impression?key=" + shopKey, body: ensBody, header: map[string]string{
		"Content-Type": "text/plain;charset=UTF-8", "Origin": shopOrig}})
	if res.status != http.StatusAccepted {
		t.Fatalf("beacon: %d %s", res.status, res.body)
	}
}

func TestIdentityTokens(t *testing.T) {
	r := startRelay(t)
	ident := func(tok string) map[string]string {
		h := map[string]string{"X-Relay-Key": idKey, "Origin": idOrigin}
		if tok != "" {
			h["X-Relay-Identity"] = tok
		}
		return h
	}
	exp := time.Now().Add(time.Hour).Unix()
	good := identityToken(t, idSecret, jwt.MapClaims{"sub": "user-from-token", "email": "tok@example.com", "customer_id": "cust-tok", "exp": exp}, jwt.SigningMethodHS256)
	cases := []struct {
		name   string
		h      map[string]string
		status int
		code   string
	}{
		{"no token", ident(""), 401, "identity_required"},
		{"expired", ident(identityToken(t, idSecret, jwt.MapClaims{"sub": "u", "exp": time.Now().Add(-time.Hour).Unix()}, jwt.SigningMethodHS256)), 401, "invalid_identity"},
		{"no exp", ident(identityToken(t, idSecret, jwt.MapClaims{"sub": "u"}, jwt.SigningMethodHS256)), 401, "invalid_identity"},
		{"wrong secret", ident(identityToken(t, "another-secret-of-enough-length-0123456789", jwt.MapClaims{"sub": "u", "exp": exp}, jwt.SigningMethodHS256)), 401, "invalid_identity"},
		{"HS512", ident(identityToken(t, idSecret, jwt.MapClaims{"sub": "u", "exp": exp}, jwt.SigningMethodHS512)), 401, "invalid_identity"},
		{"alg none", ident(noneToken(t)), 401, "invalid_identity"},
		{"garbage", ident("not.a.jwt"), 401, "invalid_identity"},
	}
	for _, c := range cases {
		res := r.do(t, req{path: "/v1/linkrunner/capture-event", body: lrEvent, header: c.h})
		if res.status != c.status || decode[refused](t, res.body).Error.Code != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, res.status, res.body, c.status, c.code)
		}
	}
	// A valid token's sub replaces the body's user_id.
	res := r.do(t, req{path: "/v1/linkrunner/capture-event", body: lrPlain, header: ident(good)})
	if res.status != http.StatusAccepted {
		t.Fatalf("valid token: %d %s", res.status, res.body)
	}
	e := r.entries(t, "linkrunner")
	if len(e) != 1 || !strings.Contains(e[0]["body"].(string), `"user_id":"user-from-token"`) || strings.Contains(e[0]["body"].(string), "user_12345") {
		t.Fatalf("stored %v, want user_id from the token", e)
	}
	// Token via query string (sendBeacon cannot set headers); cardlytics customer from the token.
	res = r.do(t, req{path: "/v1/cardlytics/client-events?key=" + idKey + "&identity=" + good, body: cdlxBody,
		header: map[string]string{"Origin": idOrigin, "X-Relay-Customer-Id": "cust-header-ignored"}})
	if res.status != http.StatusAccepted {
		t.Fatalf("cardlytics with token in query: %d %s", res.status, res.body)
	}
	if e := r.entries(t, "cardlytics"); len(e) != 1 || e[0]["customer"] != "cust-tok" {
		t.Fatalf("cardlytics customer %v, want cust-tok from the token", e)
	}
	// Sites without identity_secret: only with trust_client_identity.
	res = r.do(t, req{path: "/v1/linkrunner/capture-event", body: lrEvent, header: shop()})
	if res.status != http.StatusForbidden {
		t.Errorf("identity route from shop (not listed): %d", res.status)
	}
	res = r.do(t, req{path: "/v1/linkrunner/capture-event", body: lrPlain, header: map[string]string{"X-Relay-Key": trustKey}})
	if res.status != http.StatusAccepted {
		t.Errorf("trusting site: %d %s", res.status, res.body)
	}
	// Money route listed explicitly.
	res = r.do(t, req{path: "/v1/linkrunner/capture-payment", body: lrPayment, header: map[string]string{"X-Relay-Key": moneyKey}})
	if res.status != http.StatusAccepted {
		t.Errorf("money site: %d %s", res.status, res.body)
	}
}

// noneToken is an unsigned JWT ("alg":"none"), which must never be accepted.
func noneToken(t *testing.T) string {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "u", "exp": time.Now().Add(time.Hour).Unix()}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestIdempotencyKey(t *testing.T) {
	r := startRelay(t)
	h := shop()
	h["Idempotency-Key"] = "order-77:click"
	var ids []string
	for range 3 {
		res := r.do(t, req{path: "/v1/ens/click", body: ensBody, header: h})
		if res.status != http.StatusAccepted {
			t.Fatalf("%d %s", res.status, res.body)
		}
		ids = append(ids, decode[accepted](t, res.body).IDs...)
	}
	if ids[0] != "order-77:click" || ids[1] != ids[0] || ids[2] != ids[0] {
		t.Fatalf("ids %v", ids)
	}
	if n := len(r.entries(t, "ens")); n != 1 {
		t.Fatalf("%d entries, want 1", n)
	}
}

// TestIdempotencyKeyScopedToCaller: the same Idempotency-Key from a site and from a
// backend is two events, each deduplicated against its own caller only; events without a
// client id leave no marker.
func TestIdempotencyKeyScopedToCaller(t *testing.T) {
	r := startRelay(t)
	site, backendH := shop(), bearer(backend)
	site["Idempotency-Key"], backendH["Idempotency-Key"] = "shared-1", "shared-1"
	for range 2 {
		for _, h := range []map[string]string{site, backendH} {
			if res := r.do(t, req{path: "/v1/ens/click", body: ensBody, header: h}); res.status != http.StatusAccepted {
				t.Fatalf("%d %s", res.status, res.body)
			}
		}
	}
	got := r.entries(t, "ens")
	if len(got) != 2 || got[0][queue.FieldSource] == got[1][queue.FieldSource] {
		t.Fatalf("entries %v, want one per caller", got)
	}
	// Two unkeyed events: two entries, no marker for either.
	for range 2 {
		if res := r.do(t, req{path: "/v1/ens/click", body: ensBody, header: shop()}); res.status != http.StatusAccepted {
			t.Fatalf("%d %s", res.status, res.body)
		}
	}
	if n := len(r.entries(t, "ens")); n != 4 {
		t.Fatalf("%d entries, want 4", n)
	}
	seen, err := r.rdb.Keys(context.Background(), "t:{ens}:seen:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(seen)
	if want := []string{"t:{ens}:seen:client:backend:shared-1", "t:{ens}:seen:site:shop:shared-1"}; !slices.Equal(seen, want) {
		t.Fatalf("markers %v, want %v", seen, want)
	}
}

func TestBatchAllOrNothing(t *testing.T) {
	r := startRelay(t)
	good := `{"events":[{"route":"ens/click","body":` + ensBody + `,"id":"b-1"},{"route":"bannerflex/banner-events","body":` + bfBody + `},{"route":"ens/impression","body":` + ensBody + `}]}`
	res := r.do(t, req{path: "/v1/batch", body: good, header: shop()})
	if res.status != http.StatusAccepted {
		t.Fatalf("%d %s", res.status, res.body)
	}
	if a := decode[accepted](t, res.body); len(a.IDs) != 3 || a.IDs[0] != "b-1" {
		t.Fatalf("ids %v", a.IDs)
	}
	if len(r.entries(t, "ens")) != 2 || len(r.entries(t, "bannerflex")) != 1 {
		t.Fatalf("entries ens %d bannerflex %d", len(r.entries(t, "ens")), len(r.entries(t, "bannerflex")))
	}
	bad := []struct{ body, code, field string }{
		{`{"events":[{"route":"ens/click","body":` + ensBody + `},{"route":"ens/click","body":{"campaignId":"x","placement":"p"}}]}`, "invalid_field", "events[1].body.campaignId"},
		{`{"events":[{"route":"ens/nope","body":{}}]}`, "invalid_field", "events[0].route"},
		{`{"events":[]}`, "missing_field", "events"},
		{`{"events":[{"route":"ens/click","body":` + ensBody + `,"extra":1}]}`, "unknown_field", "events[0].extra"},
		{`{"evts":[]}`, "unknown_field", "evts"},
		{`{"events":[{"route":"ens/click","body":` + ensBody + `,"id":"x"},{"route":"ens/click","body":` + ensBody + `,"id":"x"}]}`, "invalid_field", "events[1].id"},
	}
	for _, b := range bad {
		res := r.do(t, req{path: "/v1/batch", body: b.body, header: shop()})
		e := decode[refused](t, res.body)
		if res.status != 400 || e.Error.Code != b.code || e.Error.Field != b.field {
			t.Errorf("batch %s: %d %s, want %s at %s", b.body, res.status, res.body, b.code, b.field)
		}
	}
	// A route the caller may not use refuses the whole batch, naming the item.
	res = r.do(t, req{path: "/v1/batch", body: `{"events":[{"route":"ens/click","body":` + ensBody + `},{"route":"brevo/events","body":` + brevoV3 + `}]}`, header: shop()})
	if e := decode[refused](t, res.body); res.status != http.StatusForbidden || e.Error.Code != "forbidden" || e.Error.Field != "events[1].route" {
		t.Errorf("batch with a forbidden route: %d %s, want 403 forbidden at events[1].route", res.status, res.body)
	}
	if len(r.entries(t, "ens")) != 2 {
		t.Fatalf("refused batches queued events: %d ens entries", len(r.entries(t, "ens")))
	}
}

func TestRateLimitPerClientIP(t *testing.T) {
	r := startRelay(t)
	var limited resp
	n := 0
	for i := range 20 {
		res := r.do(t, req{path: "/v1/ens/click", body: ensBody, header: tight()})
		if res.status == http.StatusTooManyRequests {
			limited = res
			n = i
			break
		}
	}
	if limited.status != http.StatusTooManyRequests || n < 5 {
		t.Fatalf("no 429 after the burst of 5 (first at %d)", n)
	}
	if ra, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q", limited.header.Get("Retry-After"))
	}
	if e := decode[refused](t, limited.body); e.Error.Code != "rate_limited" {
		t.Fatalf("reply %s", limited.body)
	}
	// X-Forwarded-For from an untrusted peer (loopback is not in trusted_proxies) changes nothing.
	h := tight()
	h["X-Forwarded-For"] = "203.0.113.9"
	if res := r.do(t, req{path: "/v1/ens/click", body: ensBody, header: h}); res.status != http.StatusTooManyRequests {
		t.Fatalf("spoofed X-Forwarded-For escaped the limit: %d", res.status)
	}
	// A backend is not limited per IP.
	for range 10 {
		if res := r.do(t, req{path: "/v1/ens/click", body: ensBody, header: bearer(backend)}); res.status != http.StatusAccepted {
			t.Fatalf("backend: %d", res.status)
		}
	}
}

// allowance503 is how long past redis.enqueue_timeout (1 s in the test config) a 503 may
// come: max(500 ms, 4 × baseline), baseline being an accepted request's time in the same
// test, so a busy machine stretches both alike while a stacked or missing timeout fails.
func allowance503(baseline time.Duration) time.Duration {
	return time.Second + max(500*time.Millisecond, 4*baseline)
}

// timed202 sends one event that must be accepted and returns how long it took.
func timed202(t *testing.T, r *testRelay) time.Duration {
	t.Helper()
	start := time.Now()
	if res := r.do(t, req{path: "/v1/ens/click", body: ensBody, header: bearer(backend)}); res.status != 202 {
		t.Fatalf("before: %d", res.status)
	}
	return time.Since(start)
}

func TestRedisDownAnswers503Fast(t *testing.T) {
	r := startRelay(t)
	baseline := timed202(t, r)
	r.redis.Kill()
	for range 3 {
		start := time.Now()
		res := r.do(t, req{path: "/v1/ens/click", body: ensBody, header: bearer(backend)})
		took := time.Since(start)
		if res.status != http.StatusServiceUnavailable || res.header.Get("Retry-After") == "" {
			t.Fatalf("Redis down: %d %s", res.status, res.body)
		}
		if limit := allowance503(baseline); took > limit {
			t.Fatalf("Redis down: answered after %v, over %v (baseline %v)", took, limit, baseline)
		}
	}
	r.redis.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res := r.do(t, req{path: "/v1/ens/click", body: ensBody, header: bearer(backend)})
		if res.status == http.StatusAccepted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not accepting after Redis came back: %d %s", res.status, res.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// AOF kept the first event; the 503s added nothing.
	if n := len(r.entries(t, "ens")); n != 2 {
		t.Fatalf("%d entries after restart, want 2", n)
	}
}

func TestRedisHangingAnswers503WithinTimeout(t *testing.T) {
	r := startRelay(t)
	baseline := timed202(t, r)
	r.redis.Pause()
	defer r.redis.Resume()
	start := time.Now()
	res := r.do(t, req{path: "/v1/ens/click", body: ensBody, header: bearer(backend)})
	if took := time.Since(start); res.status != http.StatusServiceUnavailable || took > allowance503(baseline) {
		t.Fatalf("Redis paused: %d after %v (limit %v)", res.status, took, allowance503(baseline))
	}
}

// TestNullRefused: an explicit null in a field is refused with the field's path, alone and
// inside /v1/batch (prefixed by the item), and nothing is queued.
func TestNullRefused(t *testing.T) {
	r := startRelay(t)
	ensNull := `{"campaignId":1,"placement":"header_banner","location":null}`
	for _, tc := range []struct{ path, body, field string }{
		{"/v1/ens/click", ensNull, "location"},
		{"/v1/bannerflex/banner-events", strings.Replace(bfBody, `"bnrflx-your-campaign-id"`, "null", 1), "campaignId"},
		{"/v1/batch", `{"events":[{"route":"ens/click","body":` + ensBody + `},{"route":"ens/impression","body":` + ensNull + `}]}`,
			"events[1].body.location"},
		{"/v1/batch", `{"events":[{"route":"bannerflex/banner-events","body":{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f",` +
			`"event":"click","metricId":null}}]}`, "events[0].body.metricId"},
	} {
		res := r.do(t, req{path: tc.path, body: tc.body, header: shop()})
		e := decode[refused](t, res.body)
		if res.status != http.StatusBadRequest || e.Error.Code != "invalid_field" || e.Error.Field != tc.field ||
			!strings.Contains(e.Error.Message, "must not be null") {
			t.Errorf("%s %s: %d %s, want 400 invalid_field at %s saying null is not allowed", tc.path, tc.body, res.status, res.body, tc.field)
		}
	}
	if n := len(r.entries(t, "ens")) + len(r.entries(t, "bannerflex")); n != 0 {
		t.Fatalf("refused events were queued: %d entries", n)
	}
}

// TestRevenueFromSites: Linkrunner capture-event with event_data.amount (revenue) is money.
// A site sends it only with revenue: true, else 403 forbidden naming event_data.amount
// (in a batch, the whole batch); backends always may. Nothing refused is queued.
func TestRevenueFromSites(t *testing.T) {
	const trustSite = 3 // sites[3] of testConfig: trust
	for _, revenue := range []bool{false, true} {
		r := startRelayWith(t, func(cfg *config.Config) {
			if cfg.Sites[trustSite].Key != trustKey {
				t.Fatalf("sites[%d] is %s, not the trust site", trustSite, cfg.Sites[trustSite].Name)
			}
			cfg.Sites[trustSite].Revenue = revenue
		})
		site := map[string]string{"X-Relay-Key": trustKey}
		exp := time.Now().Add(time.Hour).Unix()
		token := identityToken(t, idSecret, jwt.MapClaims{"sub": "u1", "exp": exp}, jwt.SigningMethodHS256)
		ident := map[string]string{"X-Relay-Key": idKey, "Origin": idOrigin, "X-Relay-Identity": token}
		zero := strings.Replace(lrEvent, "249.99", "0", 1) // present, even zero: still revenue
		want := http.StatusForbidden
		if revenue {
			want = http.StatusAccepted
		}
		queued := 0
		for _, tc := range []struct {
			name, path, body string
			h                map[string]string
			status           int
			field            string
		}{
			{"site, amount", "/v1/linkrunner/capture-event", lrEvent, site, want, "event_data.amount"},
			{"site, amount 0", "/v1/linkrunner/capture-event", zero, site, want, "event_data.amount"},
			{"site in batch", "/v1/batch", `{"events":[{"route":"linkrunner/capture-event","body":` + lrPlain +
				`},{"route":"linkrunner/capture-event","body":` + lrEvent + `}]}`, site, want, "events[1].body.event_data.amount"},
			// The identity-token site has no revenue: true in either run.
			{"identity site, amount", "/v1/linkrunner/capture-event", lrEvent, ident, http.StatusForbidden, "event_data.amount"},
			{"identity site, no amount", "/v1/linkrunner/capture-event", lrPlain, ident, http.StatusAccepted, ""},
			{"site, no amount", "/v1/linkrunner/capture-event", lrPlain, site, http.StatusAccepted, ""},
			{"backend, amount", "/v1/linkrunner/capture-event", lrEvent, bearer(backend), http.StatusAccepted, ""},
			{"backend batch, amount", "/v1/batch", `{"events":[{"route":"linkrunner/capture-event","body":` + lrEvent + `}]}`,
				bearer(backend), http.StatusAccepted, ""},
		} {
			res := r.do(t, req{path: tc.path, body: tc.body, header: tc.h})
			if res.status != tc.status {
				t.Errorf("revenue %v, %s: %d %s, want %d", revenue, tc.name, res.status, res.body, tc.status)
				continue
			}
			if tc.status == http.StatusAccepted {
				queued += len(decode[accepted](t, res.body).IDs)
				continue
			}
			if e := decode[refused](t, res.body); e.Error.Code != "forbidden" || e.Error.Field != tc.field {
				t.Errorf("revenue %v, %s: %s, want forbidden at %s", revenue, tc.name, res.body, tc.field)
			}
		}
		if n := len(r.entries(t, "linkrunner")); n != queued {
			t.Errorf("revenue %v: %d entries, want the %d accepted", revenue, n, queued)
		}
	}
}

// TestCountryHeaderOnlyFromTrustedProxies: server.country_header is the edge's statement;
// a peer that is not in server.trusted_proxies (loopback, in startRelay's config) could
// write any value, so it is ignored; from a trusted peer it is stored.
func TestCountryHeaderOnlyFromTrustedProxies(t *testing.T) {
	h := bearer(backend)
	h["CF-IPCountry"] = "FR"
	untrusted := startRelay(t)
	if res := untrusted.do(t, req{path: "/v1/ens/click", body: ensBody, header: h}); res.status != http.StatusAccepted {
		t.Fatalf("untrusted peer: %d %s", res.status, res.body)
	}
	if e := untrusted.entries(t, "ens"); len(e) != 1 || e[0][queue.FieldCountry] != "" {
		t.Errorf("untrusted peer's country header stored: %v", e)
	}
	trusted := startRelayWith(t, func(c *config.Config) { c.Server.TrustedProxies = []string{"127.0.0.0/8"} })
	if res := trusted.do(t, req{path: "/v1/ens/click", body: ensBody, header: h}); res.status != http.StatusAccepted {
		t.Fatalf("trusted peer: %d %s", res.status, res.body)
	}
	if e := trusted.entries(t, "ens"); len(e) != 1 || e[0][queue.FieldCountry] != "FR" {
		t.Errorf("trusted peer's country header not stored: %v", e)
	}
}

// TestNullRefusedInBatchForEveryRoute: for every route, an item of /v1/batch whose body
// has an optional field set to null refuses the whole batch with a 400 naming the field
// by its path in the batch; nothing is queued. (providers' TestNullRefusedInEveryField
// covers every optional field of every route; this covers the batch path of each route.)
func TestNullRefusedInBatchForEveryRoute(t *testing.T) {
	r := startRelay(t)
	h := map[string]string{"Authorization": "Bearer " + backend, "X-Relay-Customer-Id": "cust-42"}
	for _, c := range []struct{ route, body, field string }{
		{"linkrunner/capture-event", lrEvent, "event_data"},
		{"linkrunner/capture-payment", lrPayment, "payment_id"},
		{"ens/impression", ensBody, "location"},
		{"ens/click", ensBody, "device"},
		{"brevo/events", brevoV3, "event_date"},
		{"brevo/track-event", brevoMA, "properties"},
		{"bannerflex/banner-events", bfBody, "campaignId"},
		{"cardlytics/client-events", cdlxBody, "clientEvents[0].clientEventId"},
	} {
		var body map[string]any
		if err := json.Unmarshal([]byte(c.body), &body); err != nil {
			t.Fatalf("%s: %v", c.route, err)
		}
		setPath(body, c.field, nil)
		item, _ := json.Marshal(map[string]any{"route": c.route, "body": body})
		batch := `{"events":[{"route":"ens/click","body":` + ensBody + `},` + string(item) + `]}`
		res := r.do(t, req{path: "/v1/batch", body: batch, header: h})
		e := decode[refused](t, res.body)
		if want := "events[1].body." + c.field; res.status != http.StatusBadRequest || e.Error.Code != "invalid_field" || e.Error.Field != want {
			t.Errorf("%s: %d %s, want 400 invalid_field at %s", c.route, res.status, res.body, want)
		}
	}
	for _, p := range []string{"linkrunner", "ens", "brevo", "bannerflex", "cardlytics"} {
		if n := len(r.entries(t, p)); n != 0 {
			t.Errorf("%s: %d entries queued from refused batches", p, n)
		}
	}
}

// setPath sets the field at path ("a", "a[0].b") in a decoded JSON object.
func setPath(obj map[string]any, path string, v any) {
	name, rest, nested := strings.Cut(path, ".")
	if i := strings.IndexByte(name, '['); i >= 0 {
		idx, _ := strconv.Atoi(strings.TrimSuffix(name[i+1:], "]"))
		setPath(obj[name[:i]].([]any)[idx].(map[string]any), rest, v)
		return
	}
	if nested {
		setPath(obj[name].(map[string]any), rest, v)
		return
	}
	obj[name] = v
}
