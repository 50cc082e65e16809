package main_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/eventrelay/relay/internal/redistest"
)

// TestBrowserConsent: a page in headless Chromium, on another origin than the relay,
// states consent to a consent: required site the two ways a browser can: fetch with the
// X-Relay-Consent header (which needs the CORS preflight to allow it) and sendBeacon with
// ?consent= (beacons cannot set headers). Granted events reach the ENS fake; refused ones
// are answered 202 marked "consent", counted, and never delivered.
func TestBrowserConsent(t *testing.T) {
	requireChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), browserTestBudget)
	defer cancel()

	const siteKey = "pk_consent_page_01"
	rs := redistest.Start(t, redistest.Options{})
	ens := newFake(t, func(int, fakeHit) (int, string) { return 200, `{"status":"success"}` })
	shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>shop</title><p>shop</p>`))
	}))
	t.Cleanup(shop.Close)
	origin := shop.URL // http://127.0.0.1:<port>: another origin than the relay's port
	p := startRelay(t, fmt.Sprintf(`
server: {listen: "{{ingest}}"}
admin: {listen: "{{admin}}", token: %q}
redis: {url: %q, prefix: e2econsent}
log: {level: info}
sites:
  - {name: shop, key: %s, origins: [%q], routes: [ens/impression], consent: required}
providers:
  ens: {base_url: %q, api_key: ens-key-browser-consent, backoff: {base: 50ms, max: 200ms}}
`, browserAdminToken, rs.URL(), siteKey, origin, ens.srv.URL))

	b := startBrowser(t, ctx)
	if _, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(origin)); err != nil {
		b.fatalf("open %s: %v", origin, err)
	}
	relay := "http://" + p.ingest + "/v1/ens/impression"
	body := jsString(`{"campaignId":1,"placement":"header_banner"}`)
	fetchWith := func(consent string) string {
		expr := `(async () => {
  const r = await fetch(` + jsString(relay) + `, {method: "POST", body: ` + body + `,
    headers: {"Content-Type": "application/json", "X-Relay-Key": ` + jsString(siteKey) + `, "X-Relay-Consent": ` + jsString(consent) + `}});
  return r.status + " " + await r.text();
})()`
		v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
		if err != nil {
			b.fatalf("fetch with X-Relay-Consent %q: %v", consent, err)
		}
		return v
	}
	if got := fetchWith("ads=1"); !strings.HasPrefix(got, "202 ") || strings.Contains(got, "filtered") {
		b.fatalf("fetch with ads=1: %s; want 202 without filtered", got)
	}
	if got := fetchWith("ads=0"); !strings.HasPrefix(got, "202 ") || !strings.Contains(got, `"filtered":{`) || !strings.Contains(got, `:"consent"}`) {
		b.fatalf("fetch with ads=0: %s; want 202 with the id marked consent", got)
	}
	beacon := func(consent string) {
		u := relay + "?key=" + siteKey + "&consent="
		expr := `String(navigator.sendBeacon(` + jsString(u) + ` + encodeURIComponent(` + jsString(consent) + `), ` + body + `))`
		if got := b.eval(expr); got != "true" {
			b.fatalf("sendBeacon with consent %q: %s", consent, got)
		}
	}
	beacon("ads=1")
	beacon("ads=0,analytics=1")

	// Both refusals counted, both grants delivered; then nothing else arrives, since the
	// refused events were never queued.
	waitCtx(t, ctx, "two consent drops counted", func() bool { return filteredCount(p.admin, "shop", "ens/impression", "consent") == 2 })
	waitCtx(t, ctx, "ENS to get the two granted events", func() bool { return len(ens.got()) >= 2 })
	waitCtx(t, ctx, "the relay to count two deliveries", func() bool { return deliveredCount(p.admin, "ens") == 2 })
	if n := len(ens.got()); n != 2 {
		t.Errorf("ENS got %d requests, want 2 (the granted fetch and beacon)", n)
	}
	b.checkClean()
}

// filteredCount reads relay_events_filtered_total{site,route,reason} from /metrics (-1
// when it cannot).
func filteredCount(admin, site, route, reason string) int {
	client := &http.Client{Timeout: 2 * time.Second}
	res, err := client.Get("http://" + admin + "/metrics")
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "relay_events_filtered_total{") && strings.Contains(line, `site="`+site+`"`) &&
			strings.Contains(line, `route="`+route+`"`) && strings.Contains(line, `reason="`+reason+`"`) {
			var n float64
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &n); err == nil {
				return int(n)
			}
		}
	}
	return 0
}
