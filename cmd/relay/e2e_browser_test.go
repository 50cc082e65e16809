package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/eventrelay/relay/internal/redistest"
)

const (
	// chromiumPath is the system browser (Debian package chromium) the test drives.
	chromiumPath = "/usr/bin/chromium"
	// browserTestBudget bounds the whole test: relay, Redis, browser and every wait.
	browserTestBudget = 50 * time.Second
	browserAdminToken = "admin-token-browser-0123456789"
)

// TestBrowserDeliveryPageReplaysDeadLetter drives the admin delivery page in headless
// Chromium against the real relay binary: an event BannerFlex refuses with 400 is
// dead-lettered, the page shows it after the operator types the admin token, and its
// Replay button sends it again; BannerFlex accepts it the second time.
//
// The test skips when /usr/bin/chromium is missing unless RELAY_BROWSER_TEST=1 or
// CI=true, in which case it fails. Screenshots go to RELAY_SCREENSHOT_DIR when set.
func TestBrowserDeliveryPageReplaysDeadLetter(t *testing.T) {
	requireChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), browserTestBudget)
	defer cancel()

	shots := screenshotDir(t)

	rs := redistest.Start(t, redistest.Options{})
	bf := newFake(t, func(n int, _ fakeHit) (int, string) {
		if n == 0 {
			return 400, `{"ok":false,"error":"unknown banner"}`
		}
		return 200, `{"ok":true}`
	})
	p := startRelay(t, fmt.Sprintf(`
server: {listen: "{{ingest}}"}
admin: {listen: "{{admin}}", token: %q}
redis: {url: %q, prefix: e2eui}
log: {level: info}
clients:
  - {name: backend, token: %s}
providers:
  bannerflex: {base_url: %q, backoff: {base: 50ms, max: 200ms}}
`, browserAdminToken, rs.URL(), e2eBackend, bf.srv.URL))

	auth := map[string]string{"Authorization": "Bearer " + e2eBackend}
	body := `{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","event":"impression","campaignId":"bnrflx-spring"}`
	if status, resp := p.post(t, "/v1/bannerflex/banner-events", body, auth); status != 202 {
		t.Fatalf("ingest: %d %s", status, resp)
	}
	waitCtx(t, ctx, "BannerFlex to get the first request", func() bool { return len(bf.got()) >= 1 })

	b := startBrowser(t, ctx)
	b.shotDir = shots

	adminURL := "http://" + p.admin + "/admin/"
	res, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(adminURL))
	if err != nil {
		b.fatalf("open %s: %v", adminURL, err)
	}
	if res.Status != 200 {
		b.fatalf("GET /admin/ without a token: HTTP %d, want 200", res.Status)
	}
	if err := chromedp.Do(b.ctx,
		chromedp.WaitVisible(chromedp.CSS("#token-form")),
		chromedp.SendKeys(chromedp.CSS("#token"), browserAdminToken+"\r"),
	); err != nil {
		b.fatalf("type the admin token: %v", err)
	}

	deadCell := `[data-provider="bannerflex"] [data-field="dead"]`
	b.waitText(deadCell, "1", 15*time.Second)

	// The token stays in the tab's memory only.
	if got := b.eval(`JSON.stringify([localStorage.length, sessionStorage.length, document.cookie, location.href, document.getElementById("token").value])`); got != fmt.Sprintf(`[0,0,"",%q,""]`, adminURL) {
		b.fatalf("after login, [localStorage, sessionStorage, cookie, URL, #token value] = %s", got)
	}
	if got := b.eval(`document.body.innerText.includes(` + jsString(browserAdminToken) + `) ? "leaked" : "ok"`); got != "ok" {
		b.fatalf("the admin token is shown on the page")
	}

	sid := deadStreamID(t, p.admin, "bannerflex")
	replay := fmt.Sprintf(`button[data-action="replay"][data-id=%s]`, jsString(sid))
	b.waitText(replay, "Replay", 10*time.Second)
	row := `(() => { const b = document.querySelector(` + jsString(replay) + `); const tr = b && b.closest("tr"); return tr ? tr.innerText : ""; })()`
	if got := b.eval(row); !strings.Contains(got, "bannerflex/banner-events") || !strings.Contains(got, "permanent") || !strings.Contains(got, "400") {
		b.fatalf("dead letter row %q: want route bannerflex/banner-events, reason permanent, status 400", got)
	}
	if n := b.eval(`String(document.querySelectorAll('[data-action="replay-all"]').length)`); n != "1" {
		b.fatalf("%s replay-all buttons, want 1 (for bannerflex)", n)
	}
	if n := b.eval(`String(document.querySelectorAll('[data-action="purge"], [data-action="delete"]').length)`); n != "0" {
		// Purging is the redrive form's two-click action (TestBrowserChartsAndRedrive),
		// never a one-click button on a row.
		b.fatalf("the page offers a one-click purge (%s buttons)", n)
	}
	b.screenshot("delivery-page-dead-letter.png")

	if err := chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(replay))); err != nil {
		b.fatalf("click Replay: %v", err)
	}
	b.waitText(deadCell, "0", 15*time.Second)
	waitCtx(t, ctx, "BannerFlex to get the replayed event", func() bool { return len(bf.got()) >= 2 })
	waitCtx(t, ctx, "the relay to count the delivery", func() bool { return deliveredCount(p.admin, "bannerflex") == 1 })
	// Redis owes nothing more: exactly the refused request and the replayed one.
	waitRelayQuiescent(t, rs.URL(), "e2eui", 20*time.Second, "bannerflex")
	hits := bf.got()
	if len(hits) != 2 {
		t.Errorf("%d BannerFlex requests, want 2 (refused, then replayed once)", len(hits))
	}
	if hits[1].body != hits[0].body {
		t.Errorf("replayed request body %s, first %s", hits[1].body, hits[0].body)
	}
	b.waitText(`String(document.querySelectorAll('[data-action="replay"]').length)`, "0", 5*time.Second)
	// last_minute counts the current minute plus the overlapping part of the previous one,
	// so a delivery a moment ago shows as 1 whatever the second of the minute.
	b.waitText(`[data-provider="bannerflex"] [data-field="delivered"]`, "1", 5*time.Second)

	b.screenshot("delivery-page-replayed.png")
	b.checkClean()
}

// browser is one headless Chromium for a test, with what the page reported.
type browser struct {
	t       *testing.T
	ctx     context.Context
	shotDir string
	out     lockedWriter
	mu      sync.Mutex
	errs    []string
}

// cspProbe runs before the page's scripts and records Content-Security-Policy violations.
const cspProbe = `window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});`

func startBrowser(t *testing.T, ctx context.Context) *browser {
	t.Helper()
	profile := t.TempDir() // removed after the cleanups below have stopped the browser
	b := &browser{t: t, out: lockedWriter{&sync.Mutex{}, &bytes.Buffer{}}}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(b.out),
	)
	t.Cleanup(cancelAlloc) // kills the browser and waits for it
	bctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelTab)
	b.ctx = bctx
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chromium output:\n%s", tail(b.output(), 4096))
		}
	})
	// The first call starts the browser under ctx, so its life is bounded by the budget.
	err := chromedp.Listen(bctx, func(ev any) {
		if ev, ok := ev.(*runtime.EventExceptionThrown); ok && ev.ExceptionDetails != nil {
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg += " " + d.Exception.Description
			}
			b.mu.Lock()
			b.errs = append(b.errs, fmt.Sprintf("%s:%d: %s", d.URL, d.LineNumber+1, msg))
			b.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("start %s: %v\n%s", chromiumPath, err, tail(b.output(), 4096))
	}
	if _, err := chromedp.Call(bctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspProbe}); err != nil {
		t.Fatalf("install the CSP probe: %v", err)
	}
	return b
}

// output is what Chromium printed so far.
func (b *browser) output() string {
	b.out.mu.Lock()
	defer b.out.mu.Unlock()
	return b.out.buf.String()
}

// eval runs a JavaScript expression that yields a string.
func (b *browser) eval(expr string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitText waits until the trimmed text of the element sel (a CSS selector), or the value
// of sel when it is a JavaScript expression (starts with "String("), equals want.
func (b *browser) waitText(sel, want string, d time.Duration) {
	b.t.Helper()
	expr := sel
	if !strings.HasPrefix(sel, "String(") {
		expr = `(() => { const n = document.querySelector(` + jsString(sel) + `); return n ? n.textContent.trim() : "<no element>"; })()`
	}
	deadline := time.Now().Add(d)
	var got string
	var err error
	for {
		got, err = chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		b.fatalf("waiting for %s to be %q: %v", sel, want, err)
	}
	b.fatalf("%s is %q after %v, want %q", sel, got, d, want)
}

// screenshot saves the viewport as a PNG in shotDir, checks that it decodes and logs
// its path.
func (b *browser) screenshot(name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		b.t.Fatalf("screenshot %s is not a PNG: %v", name, err)
	}
	if r := img.Bounds(); r.Dx() < 100 || r.Dy() < 100 {
		b.t.Fatalf("screenshot %s is %dx%d", name, r.Dx(), r.Dy())
	}
	path := filepath.Join(b.shotDir, name)
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s (%dx%d)", path, img.Bounds().Dx(), img.Bounds().Dy())
	return path
}

// checkClean fails the test if the page threw or broke its Content-Security-Policy.
func (b *browser) checkClean() {
	b.t.Helper()
	b.mu.Lock()
	errs := append([]string(nil), b.errs...)
	b.mu.Unlock()
	if len(errs) > 0 {
		b.t.Errorf("uncaught exceptions on the page:\n%s", strings.Join(errs, "\n"))
	}
	if v := b.eval(`JSON.stringify(window.__cspViolations || [])`); v != "[]" {
		b.t.Errorf("Content-Security-Policy violations: %s", v)
	}
}

// fatalf reports what the page shows, saves a screenshot if it can, and stops the test.
func (b *browser) fatalf(format string, args ...any) {
	b.t.Helper()
	msg := fmt.Sprintf(format, args...)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(b.ctx), 5*time.Second)
	defer cancel()
	if text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 3000) : ""`)); err == nil {
		msg += "\npage text:\n" + text
	}
	if buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil && b.shotDir != "" {
		path := filepath.Join(b.shotDir, "failure.png")
		if os.WriteFile(path, buf, 0o644) == nil {
			msg += "\nscreenshot: " + path
		}
	}
	b.mu.Lock()
	if len(b.errs) > 0 {
		msg += "\npage exceptions:\n" + strings.Join(b.errs, "\n")
	}
	b.mu.Unlock()
	b.t.Fatal(msg)
}

// waitCtx is waitFor bounded by ctx instead of a duration.
func waitCtx(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if ctx.Err() != nil {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// deadStreamID asks the admin API for the provider's newest dead letter.
func deadStreamID(t *testing.T, admin, provider string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+admin+"/admin/api/dead/"+provider+"?limit=10", nil)
	req.Header.Set("Authorization", "Bearer "+browserAdminToken)
	client := &http.Client{Timeout: 5 * time.Second}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET dead letters: %v", err)
	}
	defer res.Body.Close()
	var out struct {
		Dead []struct {
			StreamID string `json:"stream_id"`
		} `json:"dead"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 200 {
		t.Fatalf("GET dead letters: HTTP %d, %v", res.StatusCode, err)
	}
	if len(out.Dead) != 1 || out.Dead[0].StreamID == "" {
		t.Fatalf("dead letters of %s: %+v, want one with a stream_id", provider, out.Dead)
	}
	return out.Dead[0].StreamID
}

// deliveredCount reads relay_deliveries_total{provider,outcome="delivered"} from /metrics
// (-1 when it cannot).
func deliveredCount(admin, provider string) int {
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
		if strings.HasPrefix(line, "relay_deliveries_total{") && strings.Contains(line, `outcome="delivered"`) &&
			strings.Contains(line, `provider="`+provider+`"`) {
			var n float64
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &n); err == nil {
				return int(n)
			}
		}
	}
	return 0
}

// jsString quotes s as a JavaScript (JSON) string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// requireChromium skips the test when /usr/bin/chromium is missing, or fails it when the
// browser tests are required (RELAY_BROWSER_TEST=1, or CI=true: scripts/test.sh then
// installs chromium and chromium-driver).
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("RELAY_BROWSER_TEST") == "1" || os.Getenv("CI") == "true" {
			t.Fatalf("the browser tests are required but %s is missing (%v): apt-get install chromium chromium-driver", chromiumPath, err)
		}
		t.Skipf("%s not found: the browser test needs the Debian package chromium (set RELAY_BROWSER_TEST=1 to make this a failure)", chromiumPath)
	}
}

// screenshotDir is RELAY_SCREENSHOT_DIR (created when missing), else a temporary
// directory of the test.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("RELAY_SCREENSHOT_DIR")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
