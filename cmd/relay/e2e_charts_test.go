package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/internal/redistest"
)

// Chart geometry of the page's SVGs (relay/admin/ui/index.html, the Charts block).
const (
	chartH, chartT, chartB = 150.0, 10.0, 22.0
	chartsTestBudget       = 120 * time.Second
	chartsAdminToken       = "admin-token-charts-0123456789"
)

// TestBrowserChartsAndRedrive drives the delivery page's Charts and Redrive sections in
// headless Chromium against the real relay binary. Known ENS traffic: 3 events delivered
// at once, 2 refused once with 503 (retried, then delivered), 1 refused with 400
// (dead-lettered); two dead letters are in Redis before the relay starts. The SVG charts
// must carry exactly those counts (delivered 5, retried 2, dead 1 over the hour), points
// placed by the chart's own scale, and the queue depth the relays sampled (as the series
// API serves it). The redrive form then counts, replays and purges by filter.
//
// Gated like TestBrowserDeliveryPageReplaysDeadLetter: skipped without /usr/bin/chromium
// unless RELAY_BROWSER_TEST=1. Screenshots go to RELAY_SCREENSHOT_DIR when set;
// RELAY_UPDATE_DOCS_IMG=1 also writes docs/img/charts.png.
func TestBrowserChartsAndRedrive(t *testing.T) {
	requireChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), chartsTestBudget)
	defer cancel()
	shots := screenshotDir(t)

	rs := redistest.Start(t, redistest.Options{})
	opt, err := redis.ParseURL(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	for i := range 2 { // dead letters from before: the sampled queue depth shows them
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: "e2ech:{ens}:dead", Values: []any{
			"id", fmt.Sprintf("old-%d", i), "route", "ens/click", "body", `{"campaignId":9,"placement":"top"}`,
			"at", strconv.FormatInt(time.Now().Add(-2*time.Hour).UnixMilli(), 10), "src", "client:backend",
			"attempts", "12", "status", "503", "error", "HTTP 503", "reason", "max_attempts", "dead_at", "0", "stream_id", "1-0"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}

	// ENS answers by campaignId: 1 → 200; 2 → 503 the first time, then 200; 3 → 400.
	var mu sync.Mutex
	seen := map[float64]int{}
	ens := newFake(t, func(_ int, h fakeHit) (int, string) {
		var b struct{ CampaignID float64 }
		_ = json.Unmarshal([]byte(h.body), &b)
		mu.Lock()
		seen[b.CampaignID]++
		n := seen[b.CampaignID]
		mu.Unlock()
		switch {
		case b.CampaignID == 3:
			return 400, `{"status":"error","message":"unknown campaign"}`
		case b.CampaignID == 2 && n <= 2: // two such events: each refused once
			return 503, `{"status":"error"}`
		}
		return 200, `{"status":"success"}`
	})
	bf := newFake(t, nil)
	p := startRelay(t, fmt.Sprintf(`
server: {listen: "{{ingest}}"}
admin: {listen: "{{admin}}", token: %q}
redis: {url: %q, prefix: e2ech}
log: {level: info}
clients:
  - {name: backend, token: %s}
providers:
  ens: {base_url: %q, api_key: %s, workers: 1, timeout: 1s, backoff: {base: 50ms, max: 200ms}}
  bannerflex: {base_url: %q, backoff: {base: 50ms, max: 200ms}}
`, chartsAdminToken, rs.URL(), e2eBackend, ens.srv.URL, e2eENSKey, bf.srv.URL))

	auth := map[string]string{"Authorization": "Bearer " + e2eBackend}
	for _, c := range []int{1, 1, 1, 2, 2, 3} {
		if status, body := p.post(t, "/v1/ens/click", fmt.Sprintf(`{"campaignId":%d,"placement":"top"}`, c), auth); status != 202 {
			t.Fatalf("ens/click: %d %s", status, body)
		}
	}
	for range 4 {
		body := `{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","event":"impression","campaignId":"bnrflx-spring"}`
		if status, resp := p.post(t, "/v1/bannerflex/banner-events", body, auth); status != 202 {
			t.Fatalf("bannerflex: %d %s", status, resp)
		}
	}
	want := map[string]int64{"delivered": 5, "retried": 2, "dead": 1}
	waitCtx(t, ctx, "the series to count every outcome", func() bool {
		got := seriesSums(t, p.admin, "ens")
		return got["delivered"] == want["delivered"] && got["retried"] == want["retried"] && got["dead"] == want["dead"]
	})

	b := startBrowser(t, ctx)
	b.shotDir = shots
	if _, err := chromedp.Run(b.ctx, chromedp.NavigateResponse("http://"+p.admin+"/admin/")); err != nil {
		b.fatalf("open the page: %v", err)
	}
	if err := chromedp.Do(b.ctx, chromedp.WaitVisible(chromedp.CSS("#token-form")),
		chromedp.SendKeys(chromedp.CSS("#token"), chartsAdminToken+"\r")); err != nil {
		b.fatalf("type the admin token: %v", err)
	}
	outcomes := `svg[data-chart="outcomes"][data-provider="ens"]`
	b.waitText(`String(document.querySelectorAll('`+outcomes+` polyline').length)`, "3", 20*time.Second)

	// The outcome chart: exact sums, 60 minutes, every point where the scale puts it.
	chart := readChart(b, outcomes)
	if chart.Minutes != 60 {
		t.Errorf("outcomes chart spans %d minutes, want 60", chart.Minutes)
	}
	for _, s := range chart.Series {
		if sum := s.sum(); sum != want[s.Name] {
			t.Errorf("outcomes chart %s: values sum to %d, want %d (%v)", s.Name, sum, want[s.Name], s.Values)
		}
		s.checkPoints(t, chart.Max, "outcomes "+s.Name)
	}

	// The depth chart: the series API's samples, drawn; the pre-existing dead letters show.
	var depth svgChart
	for range 3 { // a new minute may begin between the two reads: read both again
		depth = readChart(b, `svg[data-chart="depth"][data-provider="ens"]`)
		if depthValues(t, p.admin, "ens") == depth.values("dead") {
			break
		}
	}
	if api := depthValues(t, p.admin, "ens"); api != depth.values("dead") {
		t.Errorf("depth chart dead %q, series API %q", depth.values("dead"), api)
	}
	sampled := 0
	for _, v := range depth.series("dead").Values {
		if v != "" {
			sampled++
			if n, _ := strconv.Atoi(v); n < 2 {
				t.Errorf("sampled dead-letter depth %s, want at least the 2 from before", v)
			}
		}
	}
	if sampled == 0 {
		t.Error("the depth chart has no sample")
	}
	for _, s := range depth.Series {
		s.checkPoints(t, depth.Max, "depth "+s.Name)
	}
	b.eval(`(document.getElementById("charts").scrollIntoView(), "")`)
	saveElementShot(b, "#charts", filepath.Join(shots, "charts.png"))
	if os.Getenv("RELAY_UPDATE_DOCS_IMG") == "1" {
		saveElementShot(b, "#charts", filepath.Join("..", "..", "docs", "img", "charts.png"))
	}

	// Redrive by filter from the page: count, replay, purge.
	setValue := func(sel, v string) {
		b.eval(`(() => { const n = document.querySelector(` + jsString(sel) + `); n.value = ` + jsString(v) + `; return ""; })()`)
	}
	b.waitText(`String(document.querySelector("#rd-provider").options.length)`, "2", 10*time.Second)
	setValue("#rd-provider", "ens")
	setValue("#rd-reason", "permanent")
	click := func(sel string) {
		if err := chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
			b.fatalf("click %s: %v", sel, err)
		}
	}
	click("#rd-count")
	b.waitText(`String(document.getElementById("redrive-result").dataset.matched)`, "1", 10*time.Second)
	if got := deadTotal(t, p.admin, "ens"); got != 3 {
		t.Errorf("after the dry run: %d dead letters, want 3", got)
	}
	click("#rd-replay")
	b.waitText(`String(document.getElementById("redrive-result").dataset.replayed)`, "1", 10*time.Second)
	waitCtx(t, ctx, "ENS to get the replayed campaign 3", func() bool { mu.Lock(); defer mu.Unlock(); return seen[3] == 2 })
	waitCtx(t, ctx, "campaign 3 dead-lettered again", func() bool { return deadTotal(t, p.admin, "ens") == 3 })
	setValue("#rd-status", "400")
	click("#rd-purge")
	if deadTotal(t, p.admin, "ens") != 3 {
		t.Fatal("one click on Purge purged")
	}
	click("#rd-purge")
	b.waitText(`String(document.getElementById("redrive-result").dataset.purged)`, "1", 10*time.Second)
	if got := deadTotal(t, p.admin, "ens"); got != 2 {
		t.Errorf("after the purge by filter: %d dead letters, want the 2 from before", got)
	}

	// More dead letters than one call's page (500): the page pages through them (limit
	// and cursors), one audit line per call, and sums the counts.
	const more = 1100
	pipe := rdb.Pipeline()
	for i := range more {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: "e2ech:{ens}:dead", Values: []any{
			"id", fmt.Sprintf("bulk-%d", i), "route", "ens/click", "body", `{"campaignId":9,"placement":"top"}`,
			"at", strconv.FormatInt(time.Now().UnixMilli(), 10), "src", "client:backend",
			"attempts", "12", "status", "503", "error", "HTTP 503", "reason", "max_attempts", "dead_at", "0", "stream_id", "1-0"}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	auditCalls := func(action string) int {
		return strings.Count(p.output(), `"msg":"admin `+action+`"`)
	}
	setValue("#rd-reason", "")
	setValue("#rd-status", "")
	replays := auditCalls("replay")
	click("#rd-count")
	b.waitText(`String(document.getElementById("redrive-result").dataset.matched)`, strconv.Itoa(more+2), 20*time.Second)
	if got := auditCalls("replay") - replays; got != 3 {
		t.Errorf("a dry run over %d dead letters made %d calls, want 3 (pages of 500)", more+2, got)
	}
	purges := auditCalls("purge")
	click("#rd-purge")
	click("#rd-purge")
	b.waitText(`String(document.getElementById("redrive-result").dataset.purged)`, strconv.Itoa(more+2), 20*time.Second)
	if got := auditCalls("purge") - purges; got != 3 {
		t.Errorf("a purge of %d dead letters made %d calls, want 3 (pages of 500)", more+2, got)
	}
	if got := deadTotal(t, p.admin, "ens"); got != 0 {
		t.Errorf("after purging everything from the page: %d dead letters", got)
	}
	b.checkClean()
}

// svgChart is what the page drew in one chart.
type svgChart struct {
	Max     float64     `json:"max"`
	Minutes int         `json:"minutes"`
	Series  []svgSeries `json:"series"`
}

type svgSeries struct {
	Name   string   `json:"name"`
	Values []string `json:"values"`
	Points string   `json:"points"`
}

func readChart(b *browser, sel string) svgChart {
	b.t.Helper()
	raw := b.eval(`(() => { const s = document.querySelector(` + jsString(sel) + `); if (!s) return "null";
	  return JSON.stringify({max: Number(s.dataset.max), minutes: Number(s.dataset.minutes),
	    series: [...s.querySelectorAll("polyline")].map(l => ({name: l.dataset.series,
	      values: l.dataset.values.split(","), points: l.getAttribute("points")}))}); })()`)
	var c svgChart
	if err := json.Unmarshal([]byte(raw), &c); err != nil || len(c.Series) == 0 {
		b.fatalf("chart %s: %s (%v)", sel, raw, err)
	}
	return c
}

func (c svgChart) series(name string) svgSeries {
	for _, s := range c.Series {
		if s.Name == name {
			return s
		}
	}
	return svgSeries{}
}

func (c svgChart) values(name string) string { return strings.Join(c.series(name).Values, ",") }

func (s svgSeries) sum() int64 {
	var n int64
	for _, v := range s.Values {
		x, _ := strconv.ParseInt(v, 10, 64)
		n += x
	}
	return n
}

// checkPoints checks that the polyline has one point per value present, left to right,
// at the height the chart's scale gives that value.
func (s svgSeries) checkPoints(t *testing.T, max float64, what string) {
	t.Helper()
	var vals []float64
	for _, v := range s.Values {
		if v != "" {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: value %q", what, v)
			}
			vals = append(vals, x)
		}
	}
	pts := strings.Fields(s.Points)
	if len(pts) != len(vals) {
		t.Fatalf("%s: %d points for %d values", what, len(pts), len(vals))
	}
	prevX := math.Inf(-1)
	for i, pt := range pts {
		var x, y float64
		if _, err := fmt.Sscanf(pt, "%g,%g", &x, &y); err != nil {
			t.Fatalf("%s: point %q: %v", what, pt, err)
		}
		if wantY := chartT + (chartH-chartT-chartB)*(1-vals[i]/max); math.Abs(y-wantY) > 0.02 || x <= prevX {
			t.Errorf("%s: point %d (%g,%g) for value %g: want y %.2f and x after %g", what, i, x, y, vals[i], wantY, prevX)
		}
		prevX = x
	}
}

// series reads GET /admin/api/series for provider.
func chartsSeries(t *testing.T, admin, provider string) []map[string]any {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+admin+"/admin/api/series?provider="+provider, nil)
	req.Header.Set("Authorization", "Bearer "+chartsAdminToken)
	res, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET series: %v", err)
	}
	defer res.Body.Close()
	var out struct {
		Points []map[string]any `json:"points"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 200 {
		t.Fatalf("GET series: HTTP %d %v", res.StatusCode, err)
	}
	return out.Points
}

// seriesSums adds up the series' outcome counts.
func seriesSums(t *testing.T, admin, provider string) map[string]int64 {
	sums := map[string]int64{}
	for _, p := range chartsSeries(t, admin, provider) {
		for _, k := range []string{"delivered", "retried", "dead"} {
			if v, ok := p[k].(float64); ok {
				sums[k] += int64(v)
			}
		}
	}
	return sums
}

// depthValues are the series' sampled dead-letter depths as the chart lists them.
func depthValues(t *testing.T, admin, provider string) string {
	var out []string
	for _, p := range chartsSeries(t, admin, provider) {
		d, _ := p["depth"].(map[string]any)
		if v, ok := d["dead"].(float64); ok {
			out = append(out, strconv.FormatInt(int64(v), 10))
		} else {
			out = append(out, "")
		}
	}
	return strings.Join(out, ",")
}

// deadTotal is the provider's dead-letter count through the admin API.
func deadTotal(t *testing.T, admin, provider string) int64 {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+admin+"/admin/api/dead/"+provider+"?limit=1", nil)
	req.Header.Set("Authorization", "Bearer "+chartsAdminToken)
	res, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET dead letters: %v", err)
	}
	defer res.Body.Close()
	var out struct {
		Total int64 `json:"total"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Total
}

// saveElementShot saves a PNG of the element sel.
func saveElementShot(b *browser, sel, path string) {
	b.t.Helper()
	buf, err := chromedp.Run(b.ctx, chromedp.Screenshot(chromedp.CSS(sel)))
	if err != nil {
		b.fatalf("screenshot of %s: %v", sel, err)
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
}
