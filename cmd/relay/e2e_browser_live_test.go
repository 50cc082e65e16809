package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/eventrelay/relay/internal/redistest"
)

// The page's Live section streams the live tail in a real Chromium under the page's CSP:
// after the token is entered, Start shows events as they are ingested and delivered
// (filtered), Pause disconnects and Resume shows new ones again; the token never goes
// into a URL or storage.
func TestBrowserLiveTail(t *testing.T) {
	requireChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), browserTestBudget)
	defer cancel()
	rs := redistest.Start(t, redistest.Options{})
	bf := newFake(t, nil)
	p := startRelay(t, fmt.Sprintf(`
server: {listen: "{{ingest}}"}
admin: {listen: "{{admin}}", token: %q}
redis: {url: %q, prefix: e2elive}
log: {level: info}
clients:
  - {name: backend, token: %s}
providers:
  bannerflex: {base_url: %q}
`, browserAdminToken, rs.URL(), e2eBackend, bf.srv.URL))
	auth := map[string]string{"Authorization": "Bearer " + e2eBackend}
	post := func() string {
		body := `{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","event":"impression","campaignId":"bnrflx-spring"}`
		status, resp := p.post(t, "/v1/bannerflex/banner-events", body, auth)
		if status != 202 {
			t.Fatalf("ingest: %d %s", status, resp)
		}
		var r struct{ IDs []string }
		_ = json.Unmarshal([]byte(resp), &r)
		return r.IDs[0]
	}

	b := startBrowser(t, ctx)
	b.shotDir = t.TempDir()
	if _, err := chromedp.Run(b.ctx, chromedp.NavigateResponse("http://"+p.admin+"/admin/")); err != nil {
		b.fatalf("open the page: %v", err)
	}
	if err := chromedp.Do(b.ctx,
		chromedp.WaitVisible(chromedp.CSS("#token-form")),
		chromedp.SendKeys(chromedp.CSS("#token"), browserAdminToken+"\r"),
		chromedp.WaitVisible(chromedp.CSS("#live")),
		chromedp.SendKeys(chromedp.CSS("#live-status"), "delivered"),
	); err != nil {
		b.fatalf("log in and start the live view: %v", err)
	}
	// Pressed from script: a mouse click at the button's coordinates can land elsewhere
	// when the page's tables re-render (every 2 s) and move it between lookup and click.
	toggleLive := func() { b.eval(`document.getElementById("live-toggle").click(); "pressed"`) }
	toggleLive()
	b.waitText("#live-state", "Live.", 15*time.Second)
	rowsWith := func(id string) string {
		return `String(Array.from(document.querySelectorAll("#live-table tbody tr")).filter(r => r.innerText.includes(` + jsString(id) + `)).map(r => r.innerText.replace(/\s+/g, " ")).join("|"))`
	}
	first := post()
	waitCtx(t, ctx, "the delivered row", func() bool { return strings.Contains(b.eval(rowsWith(first)), "delivered") })
	if got := b.eval(rowsWith(first)); strings.Contains(got, "ingested") || !strings.Contains(got, "bannerflex/banner-events") {
		t.Errorf("rows of %s with status=delivered: %q", first, got)
	}

	toggleLive() // pause
	b.waitText("#live-state", "Paused.", 5*time.Second)
	b.waitText("#live-toggle", "Resume", 5*time.Second)
	toggleLive() // resume
	b.waitText("#live-state", "Live.", 15*time.Second)
	second := post()
	waitCtx(t, ctx, "the delivered row after resuming", func() bool { return strings.Contains(b.eval(rowsWith(second)), "delivered") })

	page := b.eval(`document.body.innerText`)
	for _, leak := range []string{browserAdminToken, e2eBackend} {
		if strings.Contains(page, leak) {
			t.Errorf("the page shows %q", leak)
		}
	}
	if got := b.eval(`JSON.stringify([localStorage.length, sessionStorage.length, document.cookie, location.search])`); got != `[0,0,"",""]` {
		t.Errorf("storage, cookie, query after the live view: %s", got)
	}
	b.screenshot("live-tail.png")
	b.checkClean()
}
