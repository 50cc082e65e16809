package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/internal/redistest"
)

const (
	sdkSiteKey = "pk_sdk_e2e_0001"
	sdkSecret  = "sdk-identity-secret-e2e-0123456789abcdef"
	// sdkBanner is the one BannerFlex banner of the page: the only UUID in its bodies that
	// is not an event's marker.
	sdkBanner = "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f"
	// sdkTestBudget bounds the whole test, two relay starts and a browser included.
	sdkTestBudget = 120 * time.Second
)

// sdkRoutes are the routes the page sends, each with the upstream path its events reach.
var sdkRoutes = map[string]string{
	"linkrunner/capture-event":   "/api/v1/capture-event",
	"linkrunner/capture-payment": "/api/v1/capture-payment",
	"ens/impression":             "/api/v1/campaigns/impression",
	"ens/click":                  "/api/v1/campaigns/click",
	"brevo/events":               "/v3/events",
	"brevo/track-event":          "/api/v2/trackEvent",
	"bannerflex/banner-events":   "/api/public/banner-events",
	"cardlytics/client-events":   e2eCXEventsPath,
}

// sdkPage is the site's page: it loads the SDK from the relay and defines sendRound,
// which tracks one event of every route, each carrying a fresh UUID (its marker) in a
// field the upstream receives, and returns [route, marker, event id] triples. The
// capture-payment event uses its marker as its explicit id: the relay forwards the event
// id as payment_id.
const sdkPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>shop</title>
<script src="{{relayURL}}/v1/relay.js"></script>
<script>
relay.init({key: {{key}}, endpoint: {{relayJS}}, identity: {{identity}},
  flushInterval: 100, retryBase: 200, retryMax: 1000, maxRetries: 1000});
var banner = {{banner}};
var bodies = {
  "linkrunner/capture-event": function (m) { return {event_name: "sdk_test", event_data: {m: m}}; },
  "linkrunner/capture-payment": function () { return {amount: 1.5, type: "ONE_TIME"}; },
  "ens/impression": function (m) { return {campaignId: 1, placement: m}; },
  "ens/click": function (m) { return {campaignId: 2, placement: m}; },
  "brevo/events": function (m) { return {event_name: "sdk_test", event_properties: {m: m}}; },
  "brevo/track-event": function (m) { return {event: "sdk_test", properties: {m: m}}; },
  "bannerflex/banner-events": function (m) { return {bannerId: banner, event: "click", campaignId: "bnrflx-" + m}; },
  "cardlytics/client-events": function (m) { return {clientEvents: [{clientEventId: m,
    clientEventType: "SessionAction", clientEvent: "LogEnrollment", clientEventTimestamp: "2024-01-01T00:00:00Z"}]}; }
};
function sendRound() {
  var out = [];
  for (var r in bodies) {
    var m = crypto.randomUUID();
    out.push([r, m, relay.track(r, bodies[r](m), r == "linkrunner/capture-payment" ? {id: m} : undefined)]);
  }
  return out;
}
</script></head><body><h1>shop</h1></body></html>`

// TestBrowserSDKDeliversEveryEventOnce drives the browser SDK in headless Chromium: a page
// on an allowed origin loads /v1/relay.js from the relay binary and tracks events of every
// route a site may use (identities from a signed token). The relay is killed (Redis keeps
// running) while the page tracks more, and started again after a few seconds: the SDK
// retries until they are accepted. Then the page tracks two rounds, sends the first
// (keepalive fetch) and navigates away with the second still queued: only the pagehide
// beacon carries it, and it carries the first again, which the event ids keep from being
// queued twice. Once Redis holds nothing undelivered, every event has reached its upstream
// exactly once, counted by its marker, and the relay holds one dedupe marker per event.
//
// Gated like TestBrowserDeliveryPageReplaysDeadLetter: skips without /usr/bin/chromium
// unless RELAY_BROWSER_TEST=1.
func TestBrowserSDKDeliversEveryEventOnce(t *testing.T) {
	requireChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), sdkTestBudget)
	defer cancel()

	rs := redistest.Start(t, redistest.Options{})
	opt, err := redis.ParseURL(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	f := newFakes(t)
	cx := newCardlyticsE2E(t)

	ingest := freeAddr(t)
	relayURL := "http://" + ingest
	away := make(chan struct{}, 1)
	var pageHTML string
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Path == "/away" {
			_, _ = fmt.Fprint(w, `<!doctype html><title>away</title><p id="away">away</p>`)
			select {
			case away <- struct{}{}:
			default:
			}
			return
		}
		_, _ = fmt.Fprint(w, pageHTML)
	}))
	t.Cleanup(site.Close)

	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "user_sdk_1", "email": "jane@example.com", "customer_id": "cust-sdk-1",
		"exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(sdkSecret))
	if err != nil {
		t.Fatal(err)
	}
	pageHTML = strings.NewReplacer("{{relayURL}}", relayURL, "{{relayJS}}", jsString(relayURL), "{{key}}", jsString(sdkSiteKey),
		"{{identity}}", jsString(token), "{{banner}}", jsString(sdkBanner)).Replace(sdkPage)

	routes := make([]string, 0, len(sdkRoutes))
	for r := range sdkRoutes {
		routes = append(routes, r)
	}
	cfg := strings.Replace(e2eConfig(rs.URL(), f, "")+cx.providerConfig(), "{{ingest}}", ingest, 1) + fmt.Sprintf(`
sites:
  - name: shop
    key: %s
    origins: [%q]
    routes: [%s]
    identity_secret: %q
    rate_limit: {per_ip: 1000, burst: 1000}
`, sdkSiteKey, site.URL, strings.Join(routes, ", "), sdkSecret)
	p := startRelay(t, cfg)

	b := startBrowser(t, ctx)
	b.shotDir = t.TempDir()
	res, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(site.URL+"/"))
	if err != nil || res.Status != 200 {
		b.fatalf("open the page: %v", err)
	}
	if got := b.eval(`typeof relay === "object" ? "loaded" : "missing"`); got != "loaded" {
		b.fatalf("the SDK did not load from %s/v1/relay.js: %s", relayURL, got)
	}

	var sent [][3]string // [route, marker, event id] of every event the page tracked
	round := func(expr string) {
		t.Helper()
		var got [][3]string
		if err := json.Unmarshal([]byte(b.eval(expr)), &got); err != nil || len(got) == 0 {
			b.fatalf("%s: %v", expr, err)
		}
		for _, e := range got {
			if e[2] == "" {
				b.fatalf("track(%s) refused the event", e[0])
			}
		}
		sent = append(sent, got...)
	}
	stats := func() (st struct{ Queued, Sent, Dropped, Rejected, Failed int }) {
		if err := json.Unmarshal([]byte(b.eval(`JSON.stringify(relay.stats())`)), &st); err != nil {
			b.fatalf("relay.stats(): %v", err)
		}
		return st
	}

	// 1. The relay is up: two rounds are accepted.
	round(`JSON.stringify(sendRound().concat(sendRound()))`)
	waitCtx(t, ctx, "the first rounds accepted", func() bool { st := stats(); return st.Sent == len(sent) && st.Queued == 0 })
	waitCtx(t, ctx, "the first rounds delivered", func() bool { return undelivered(t, rdb) == 0 })

	// 2. The relay is killed, Redis keeps running; the page tracks two more rounds, which
	// the SDK cannot send, and keeps retrying.
	p.kill()
	down := time.Now()
	round(`JSON.stringify(sendRound())`)
	waitCtx(t, ctx, "the SDK to fail and retry", func() bool { return stats().Failed >= 2 })
	round(`JSON.stringify(sendRound())`)
	waitCtx(t, ctx, "three failed attempts and two seconds down", func() bool {
		return stats().Failed >= 3 && time.Since(down) >= 2*time.Second
	})
	if st := stats(); st.Queued != 16 || st.Sent != 16 || st.Dropped+st.Rejected != 0 {
		b.fatalf("relay down: stats %+v, want 16 queued and 16 sent", st)
	}
	startRelay(t, cfg)
	waitCtx(t, ctx, "the queued rounds accepted after the restart", func() bool { st := stats(); return st.Sent == len(sent) && st.Queued == 0 })

	// 3. Closing: the first round goes by fetch, the second is still queued when the page
	// navigates away; only the pagehide beacon sends it (flushInterval is now 10 min).
	round(`(() => { relay.init({flushInterval: 600000}); const a = sendRound(); relay.flush(); const b = sendRound();
		setTimeout(() => { location.href = "/away"; }, 0); return JSON.stringify(a.concat(b)); })()`)
	select {
	case <-away:
	case <-ctx.Done():
		b.fatalf("the page did not navigate to /away")
	}
	b.waitText("#away", "away", 10*time.Second)

	// Quiescence: every tracked event has reached its upstream and Redis holds nothing
	// undelivered, so no request is still to come.
	waitFor(t, 30*time.Second, "every event upstream and nothing undelivered in Redis", func() bool {
		return upstreamMarkers([]*fake{f.lr, f.ens, f.brevo, f.bf, cx.up}) >= len(sent) && undelivered(t, rdb) == 0
	})
	if n := seenMarkers(t, rdb); n != len(sent) {
		t.Errorf("%d dedupe markers for %d events: every SDK event must carry its id", n, len(sent))
	}
	checkUpstreamOnce(t, sent, []*fake{f.lr, f.ens, f.brevo, f.bf, cx.up})
	for _, k := range []string{"e2e:{linkrunner}:dead", "e2e:{ens}:dead", "e2e:{brevo}:dead", "e2e:{bannerflex}:dead", "e2e:{cardlytics}:dead"} {
		if n := rdb.XLen(ctx, k).Val(); n != 0 {
			t.Errorf("%s holds %d dead letters", k, n)
		}
	}
	b.checkClean()
}

// undelivered counts the entries of every events stream and retry set under prefix e2e
// (lanes and shards included): 0 once the relay has nothing left to deliver.
func undelivered(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var n int64
	for _, pattern := range []string{"e2e:*:events", "e2e:*:retry"} {
		keys, err := rdb.Keys(ctx, pattern).Result()
		if err != nil {
			t.Fatalf("KEYS %s: %v", pattern, err)
		}
		for _, k := range keys {
			if strings.HasSuffix(k, ":events") {
				n += rdb.XLen(ctx, k).Val()
			} else {
				n += rdb.ZCard(ctx, k).Val()
			}
		}
	}
	return n
}

// seenMarkers counts the site's dedupe markers: one per event id the relay accepted.
func seenMarkers(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keys, err := rdb.Keys(ctx, "e2e:*:seen:site:shop:*").Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	return len(keys)
}

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// upstreamMarkers counts the distinct event markers the upstreams have received.
func upstreamMarkers(ups []*fake) int {
	return len(markerCounts(ups))
}

// markerCounts counts each event marker in the upstreams' request bodies, with the path
// it first arrived at.
func markerCounts(ups []*fake) map[string]*markerSeen {
	got := map[string]*markerSeen{}
	for _, up := range ups {
		for _, h := range up.got() {
			if h.path == e2eCXSessionPath {
				continue
			}
			for _, m := range uuidRE.FindAllString(h.body, -1) {
				if m == sdkBanner {
					continue
				}
				if got[m] == nil {
					got[m] = &markerSeen{path: h.path}
				}
				got[m].n++
			}
		}
	}
	return got
}

type markerSeen struct {
	n    int
	path string
}

// checkUpstreamOnce counts every event marker in the upstreams' request bodies: each
// tracked event must arrive exactly once, at its route's upstream path, and nothing else.
func checkUpstreamOnce(t *testing.T, sent [][3]string, ups []*fake) {
	t.Helper()
	got := markerCounts(ups)
	want := map[string]bool{}
	for _, e := range sent {
		route, marker := e[0], e[1]
		want[marker] = true
		switch s := got[marker]; {
		case s == nil:
			t.Errorf("%s event %s (id %s) never reached its upstream", route, marker, e[2])
		case s.n != 1:
			t.Errorf("%s event %s reached its upstream %d times", route, marker, s.n)
		case s.path != sdkRoutes[route]:
			t.Errorf("%s event %s reached %s, want %s", route, marker, s.path, sdkRoutes[route])
		}
	}
	for m, s := range got {
		if !want[m] {
			t.Errorf("upstream %s got %s, which the page never tracked", s.path, m)
		}
	}
	t.Logf("%d events tracked, %d distinct markers upstream", len(sent), len(got))
}

// sdkProbePage records every fetch of the page (start, end, status, Retry-After) before the
// SDK loads, so the test can read the SDK's timing from the browser's own clock.
const sdkProbePage = `<!doctype html>
<html><head><meta charset="utf-8"><title>probe</title>
<script>
window.__log = [];
var realFetch = window.fetch;
window.fetch = function (u, o) {
  var e = {at: performance.now()};
  __log.push(e);
  return realFetch.apply(this, arguments).then(function (r) {
    e.status = r.status; e.end = performance.now(); e.retryAfter = Number(r.headers.get("Retry-After"));
    return r;
  }, function (x) { e.status = 0; e.end = performance.now(); throw x; });
};
</script>
<script src="{{relayURL}}/v1/relay.js"></script>
</head><body><h1>probe</h1></body></html>`

// startSDKProbe starts Redis, the fake upstreams, a site serving sdkProbePage and a relay
// on a free port with sites (YAML list items; %[1]q is the site's origin). It returns the
// fakes, the relay's URL and the site.
func startSDKProbe(t *testing.T, sites string) (fakes, string, *httptest.Server) {
	t.Helper()
	rs := redistest.Start(t, redistest.Options{})
	f := newFakes(t)
	ingest := freeAddr(t)
	relayURL := "http://" + ingest
	page := strings.ReplaceAll(sdkProbePage, "{{relayURL}}", relayURL)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = fmt.Fprint(w, page)
	}))
	t.Cleanup(site.Close)
	startRelay(t, strings.Replace(e2eConfig(rs.URL(), f, ""), "{{ingest}}", ingest, 1)+
		"\nsites:"+fmt.Sprintf(sites, site.URL))
	return f, relayURL, site
}

// TestBrowserSDKRetryAfterRejectsAndNeverThrows checks the SDK's failure handling against
// the real relay in Chromium: after a 429 it waits at least Retry-After before resending
// (its own backoff is set to 20 ms); a batch refused for one item is resent without that
// item; the queue is bounded (oldest dropped, counted); bad calls return "" and nothing
// throws into the page.
func TestBrowserSDKRetryAfterRejectsAndNeverThrows(t *testing.T) {
	requireChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), sdkTestBudget)
	defer cancel()
	f, relayURL, site := startSDKProbe(t, `
  - {name: tight, key: pk_sdk_tight_1, origins: [%[1]q], routes: [ens/click], rate_limit: {per_ip: 0.5, burst: 1}}
  - {name: shop, key: pk_sdk_shop_1, origins: [%[1]q], routes: [ens/click], rate_limit: {per_ip: 1000, burst: 1000}}
`)

	b := startBrowser(t, ctx)
	b.shotDir = t.TempDir()
	if _, err := chromedp.Run(b.ctx, chromedp.Navigate(site.URL+"/")); err != nil {
		b.fatalf("open the page: %v", err)
	}

	// 429: one token every 2 s; the second event's request is refused with Retry-After.
	b.eval(`relay.init({key: "pk_sdk_tight_1", endpoint: ` + jsString(relayURL) + `, batchSize: 1, flushInterval: 20,
		retryBase: 10, retryMax: 20}); relay.track("ens/click", {campaignId: 1, placement: "p1"});
		relay.track("ens/click", {campaignId: 1, placement: "p2"}); "ok"`)
	b.waitText(`String(relay.stats().sent)`, "2", 30*time.Second)
	var log []struct {
		At, End    float64
		Status     int
		RetryAfter float64
	}
	if err := json.Unmarshal([]byte(b.eval(`JSON.stringify(__log)`)), &log); err != nil {
		b.fatalf("fetch log: %v", err)
	}
	limited := 0
	for i, e := range log {
		if e.Status != 429 {
			continue
		}
		limited++
		if e.RetryAfter < 1 || i+1 >= len(log) {
			b.fatalf("429 with Retry-After %v, then %d more requests", e.RetryAfter, len(log)-i-1)
		}
		if wait := log[i+1].At - e.End; wait < e.RetryAfter*1000-50 {
			t.Errorf("resent %.0f ms after a 429 with Retry-After: %v", wait, e.RetryAfter)
		}
	}
	if limited == 0 || log[len(log)-1].Status != 202 {
		t.Errorf("fetch log %+v: want a 429, and a 202 last", log)
	}

	// A 400 naming one item, then a 403 naming one (a route the site may not use): each
	// time that item is dropped, the others resent and accepted.
	b.eval(`relay.init({key: "pk_sdk_shop_1", batchSize: 20}); __log.length = 0;
		relay.track("ens/click", {campaignId: 0, placement: "bad"});
		relay.track("ens/impression", {campaignId: 1, placement: "forbidden"});
		relay.track("ens/click", {campaignId: 1, placement: "p3"}); "ok"`)
	b.waitText(`String(relay.stats().sent)`, "3", 20*time.Second)
	if got := b.eval(`JSON.stringify(__log.map(e => e.status)) + " rejected " + relay.stats().rejected`); got != "[400,403,202] rejected 2" {
		t.Errorf("item refusals: statuses and rejected count %s, want [400,403,202] rejected 2", got)
	}
	waitFor(t, 20*time.Second, "three clicks at ENS", func() bool { return len(f.ens.got()) >= 3 })
	for _, h := range f.ens.got() {
		if strings.Contains(h.body, `"bad"`) || strings.Contains(h.body, `"forbidden"`) {
			t.Errorf("a refused item reached ENS: %s", h.body)
		}
	}

	// Bad calls return "" and are counted (rejected: the 2 refused items above and these
	// 4); the queue keeps the newest maxQueue events.
	got := b.eval(`(() => {
		relay.init({endpoint: "http://127.0.0.1:1", maxQueue: 3, retryBase: 600000, retryMax: 600000});
		const circular = {}; circular.self = circular;
		const bad = [relay.track(), relay.track("ens/click", null), relay.track("ens/click", circular),
			relay.track("ens/click", {campaignId: 1, placement: "x"}, {id: "not an id!"})];
		relay.init(); relay.init(null); relay.init("nonsense");
		for (let i = 0; i < 5; i++) relay.track("ens/click", {campaignId: 1, placement: "q" + i});
		const s = relay.stats();
		return JSON.stringify([bad, s.queued, s.dropped, s.rejected]);
	})()`)
	if got != `[["","","",""],3,2,6]` {
		t.Errorf("bad calls and overflow: [returns, queued, dropped, rejected] = %s, want [[\"\",\"\",\"\",\"\"],3,2,6]", got)
	}
	b.checkClean()
}

// TestBrowserSDKRefusedBeaconIsSentAgain: when the page is hidden and the browser refuses
// the beacon (its quota) and the keepalive fetch fallback fails too, the events are not
// taken for sent: the pagehide that follows beacons them, and they reach ENS. And stats()
// counts an in-flight event that the queue's overflow dropped once, as dropped, not also as
// sent when its batch is answered 202.
func TestBrowserSDKRefusedBeaconIsSentAgain(t *testing.T) {
	requireChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), sdkTestBudget)
	defer cancel()
	f, relayURL, site := startSDKProbe(t, `
  - {name: shop, key: pk_sdk_shop_1, origins: [%[1]q], routes: [ens/click], rate_limit: {per_ip: 1000, burst: 1000}}
`)

	b := startBrowser(t, ctx)
	if _, err := chromedp.Run(b.ctx, chromedp.Navigate(site.URL+"/")); err != nil {
		b.fatalf("open the page: %v", err)
	}
	// The first beacon is refused and every fetch fails; by pagehide the quota is free.
	got := b.eval(`(() => {
		const real = navigator.sendBeacon.bind(navigator);
		window.__beacons = []; window.__beaconOK = false;
		Object.defineProperty(navigator, "sendBeacon", {configurable: true, value: function (u, s) {
			if (!__beaconOK) return false;
			__beacons.push(JSON.parse(s).events.map(e => e.body.placement).join(","));
			return real(u, s);
		}});
		window.fetch = function () { return Promise.reject(new TypeError("keepalive quota")); };
		relay.init({key: "pk_sdk_shop_1", endpoint: ` + jsString(relayURL) + `, flushInterval: 600000});
		relay.track("ens/click", {campaignId: 1, placement: "b1"});
		relay.track("ens/click", {campaignId: 1, placement: "b2"});
		Object.defineProperty(document, "visibilityState", {configurable: true, get: () => "hidden"});
		document.dispatchEvent(new Event("visibilitychange"));
		__beaconOK = true;
		window.dispatchEvent(new Event("pagehide"));
		return JSON.stringify(__beacons);
	})()`)
	if got != `["b1,b2"]` {
		t.Errorf("beacons at pagehide after a refused one: %s, want [\"b1,b2\"]", got)
	}
	waitFor(t, 30*time.Second, "the beaconed clicks at ENS", func() bool {
		n := 0
		for _, h := range f.ens.got() {
			if strings.Contains(h.body, `"b1"`) || strings.Contains(h.body, `"b2"`) {
				n++
			}
		}
		return n >= 2
	})

	// b1 and b2 are still queued (unconfirmed): flush them into a fetch that hangs, then
	// overflow the queue (maxQueue 2) with two more while that batch is in flight.
	b.eval(`(() => {
		window.__fetches = 0;
		window.fetch = function () {
			__fetches++;
			return new Promise(r => { window.__release = () => r(new Response("{}", {status: 202})); });
		};
		relay.init({maxQueue: 2, batchSize: 2});
		relay.flush();
		relay.track("ens/click", {campaignId: 1, placement: "c1"});
		relay.track("ens/click", {campaignId: 1, placement: "c2"});
		__release();
		return "ok";
	})()`)
	// The 202 is handled before the next batch (c1, c2) is fetched.
	b.waitText(`String(__fetches)`, "2", 20*time.Second)
	got = b.eval(`(() => { const s = relay.stats(); return JSON.stringify([s.queued, s.sent, s.dropped, s.rejected]); })()`)
	if got != `[2,0,2,0]` {
		t.Errorf("[queued, sent, dropped, rejected] = %s, want [2,0,2,0]: the two dropped in flight counted once", got)
	}
	b.checkClean()
}
