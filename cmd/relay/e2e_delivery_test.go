package main_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eventrelay/relay/internal/redistest"
)

const (
	e2eBackend = "backend-token-e2e-0123456789"
	e2eENSKey  = "ens-key-e2e-canary-77"
	e2eLRKey   = "lr-key-e2e-canary-78"
	e2eBVKey   = "brevo-key-e2e-canary-79"
	e2eMAKey   = "brevo-ma-e2e-canary-80"
)

type fakes struct{ lr, ens, brevo, bf *fake }

func newFakes(t *testing.T) fakes {
	return fakes{
		lr:    newFake(t, func(int, fakeHit) (int, string) { return 201, `{"msg":"ok","status":200,"data":null}` }),
		ens:   newFake(t, func(int, fakeHit) (int, string) { return 200, `{"status":"success"}` }),
		brevo: newFake(t, func(int, fakeHit) (int, string) { return 204, `` }),
		bf:    newFake(t, nil),
	}
}

// e2eConfig is the relay config for the fakes f. The providers map comes last, so a test
// may append entries of its own (two spaces deep).
func e2eConfig(redisURL string, f fakes, bannerflexExtra string) string {
	return fmt.Sprintf(`
server: {listen: "{{ingest}}"}
admin: {listen: "{{admin}}", token: "admin-token-e2e-0123456789"}
redis: {url: %q, prefix: e2e}
log: {level: info}
clients:
  - {name: backend, token: %s}
providers:
  linkrunner: {base_url: %q, server_key: %s, timeout: 1s, backoff: {base: 50ms, max: 200ms}}
  ens: {base_url: %q, api_key: %s, timeout: 1s, backoff: {base: 50ms, max: 200ms}}
  brevo: {base_url: %q, tracker_url: %q, api_key: %s, ma_key: %s, timeout: 1s, backoff: {base: 50ms, max: 200ms}}
  bannerflex: {base_url: %q, backoff: {base: 50ms, max: 200ms}%s}
`, redisURL, e2eBackend, f.lr.srv.URL, e2eLRKey, f.ens.srv.URL, e2eENSKey, f.brevo.srv.URL, f.brevo.srv.URL,
		e2eBVKey, e2eMAKey, f.bf.srv.URL, bannerflexExtra)
}

func TestEndToEndEveryRouteArrivesUpstream(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	f := newFakes(t)
	// Cardlytics needs a PKI and a TLS fake, so it is added here only, not to every test's
	// config: its entry goes last in the providers map, which ends e2eConfig.
	cx := newCardlyticsE2E(t)
	p := startRelay(t, e2eConfig(rs.URL(), f, "")+cx.providerConfig())
	auth := map[string]string{"Authorization": "Bearer " + e2eBackend, "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"}
	cases := []struct {
		route, body string
		up          *fake
		path        string
		header      [2]string
		want        string // upstream body, JSON
	}{
		{"linkrunner/capture-event", `{"event_name":"product_viewed","event_data":{"amount":249.99},"user_id":"user_12345"}`, f.lr, "/api/v1/capture-event",
			[2]string{"linkrunner-key", e2eLRKey}, `{"event_name":"product_viewed","event_data":{"amount":249.99},"user_id":"user_12345"}`},
		{"linkrunner/capture-payment", `{"user_id":"user_12345","payment_id":"pay_1","amount":149.99,"type":"FIRST_PAYMENT"}`, f.lr, "/api/v1/capture-payment",
			[2]string{"linkrunner-key", e2eLRKey}, `{"user_id":"user_12345","payment_id":"pay_1","amount":149.99,"type":"FIRST_PAYMENT"}`},
		{"ens/impression", `{"campaignId":1,"placement":"header_banner","location":"US","device":"mobile"}`, f.ens, "/api/v1/campaigns/impression",
			[2]string{"Authorization", "Bearer " + e2eENSKey}, `{"campaignId":1,"placement":"header_banner","location":"US","device":"mobile"}`},
		{"ens/click", `{"campaignId":2,"placement":"article_inline"}`, f.ens, "/api/v1/campaigns/click",
			[2]string{"Authorization", "Bearer " + e2eENSKey}, `{"campaignId":2,"placement":"article_inline","device":"desktop"}`},
		{"brevo/events", `{"event_name":"cart_updated","identifiers":{"email_id":"jane@example.com"}}`, f.brevo, "/v3/events",
			[2]string{"api-key", e2eBVKey}, `{"event_name":"cart_updated","identifiers":{"email_id":"jane@example.com"}}`},
		{"brevo/track-event", `{"email":"jane@example.com","event":"cart_updated","properties":{"plan":"pro"}}`, f.brevo, "/api/v2/trackEvent",
			[2]string{"ma-key", e2eMAKey}, `{"email":"jane@example.com","event":"cart_updated","properties":{"plan":"pro"}}`},
		{"bannerflex/banner-events", `{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","event":"impression","campaignId":"bnrflx-spring"}`, f.bf, "/api/public/banner-events",
			[2]string{}, `{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","event":"impression","campaignId":"bnrflx-spring"}`},
	}
	for _, c := range cases {
		if status, body := p.post(t, "/v1/"+c.route, c.body, auth); status != 202 {
			t.Fatalf("%s: %d %s", c.route, status, body)
		}
	}
	cxID := cx.post(t, p)
	others := []string{e2eENSKey, e2eLRKey, e2eBVKey, e2eMAKey} // not Cardlytics'
	secrets := append(e2eCXSecrets(), others...)
	for _, c := range cases {
		var hit *fakeHit
		waitFor(t, 10*time.Second, c.route+" upstream", func() bool {
			for _, h := range c.up.got() {
				if h.path == c.path {
					hit = &h
					return true
				}
			}
			return false
		})
		if c.header[0] != "" && hit.header.Get(c.header[0]) != c.header[1] {
			t.Errorf("%s: %s = %q", c.route, c.header[0], hit.header.Get(c.header[0]))
		}
		if !jsonEqual(hit.body, c.want) {
			t.Errorf("%s: upstream body %s, want %s", c.route, hit.body, c.want)
		}
		for _, s := range secrets {
			if s != c.header[1] && !strings.HasSuffix(c.header[1], s) && strings.Contains(fmt.Sprint(hit.header)+hit.body, s) {
				t.Errorf("%s: another provider's secret reached this upstream", c.route)
			}
		}
	}
	cx.check(t, cxID, others...)
	// Nothing left in Redis to deliver or retry: the counts below are final.
	waitRelayQuiescent(t, rs.URL(), "e2e", 30*time.Second, "linkrunner", "ens", "brevo", "bannerflex", "cardlytics")
	total := len(f.lr.got()) + len(f.ens.got()) + len(f.brevo.got()) + len(f.bf.got())
	if total != len(cases) {
		t.Errorf("%d upstream requests for %d events (duplicates: %d)", total, len(cases), total-len(cases))
	}
	if n := len(cx.up.got()); n != 2 {
		t.Errorf("%d Cardlytics requests, want 2 (startSession, clientEvent)", n)
	}
	for _, s := range append(secrets, e2eBackend) {
		if strings.Contains(p.output(), s) {
			t.Errorf("secret %q in the relay's logs", s)
		}
	}
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

// A relay killed with SIGKILL while its request is at the upstream: another relay takes
// the entry over after the visibility timeout and delivers it (one duplicate at most).
func TestKill9MidAttemptIsRedelivered(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	f := newFakes(t)
	release := make(chan struct{})
	f.bf.reply = func(n int, _ fakeHit) (int, string) {
		if n == 0 {
			<-release // the first attempt hangs at the upstream until the relay is dead
		}
		return 200, `{"ok":true}`
	}
	cfg := e2eConfig(rs.URL(), f, ", timeout: 5s, visibility_timeout: 6s")
	a := startRelay(t, cfg)
	status, body := a.post(t, "/v1/bannerflex/banner-events", `{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","event":"click"}`,
		map[string]string{"Authorization": "Bearer " + e2eBackend})
	if status != 202 {
		t.Fatalf("%d %s", status, body)
	}
	waitFor(t, 5*time.Second, "the attempt in flight", func() bool { return len(f.bf.got()) == 1 })
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.exited
	close(release) // the upstream accepts the first attempt after all: the relay never knew
	b := startRelay(t, cfg)
	waitFor(t, 20*time.Second, "redelivery by the second relay", func() bool { return len(f.bf.got()) >= 2 })
	// The entry leaves the dead relay's pending list only when the second relay has
	// reclaimed, delivered and acked it; after that no relay owes anything.
	waitRelayQuiescent(t, rs.URL(), "e2e", 20*time.Second, "bannerflex")
	if n := len(f.bf.got()); n != 2 {
		t.Fatalf("%d upstream requests, want 2 (the killed attempt and one redelivery)", n)
	}
	_ = b
}

// SIGTERM: the relay stops cleanly (exit 0), and what it had not delivered is delivered
// by the next one.
func TestSIGTERMLosesNothing(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	f := newFakes(t)
	f.bf.reply = func(int, fakeHit) (int, string) {
		time.Sleep(50 * time.Millisecond)
		return 200, `{"ok":true}`
	}
	cfg := e2eConfig(rs.URL(), f, ", workers: 2, timeout: 2s, visibility_timeout: 5s")
	a := startRelay(t, cfg)
	const n = 60
	ids := map[string]bool{}
	for i := range n {
		status, body := a.post(t, "/v1/bannerflex/banner-events",
			fmt.Sprintf(`{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","event":"click","campaignId":"bnrflx-c%d"}`, i),
			map[string]string{"Authorization": "Bearer " + e2eBackend})
		if status != 202 {
			t.Fatalf("%d %s", status, body)
		}
		ids[fmt.Sprintf("bnrflx-c%d", i)] = true
	}
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.exited:
		if a.exitErr != nil {
			t.Fatalf("exit after SIGTERM: %v", a.exitErr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("relay did not stop within 15 s of SIGTERM")
	}
	startRelay(t, cfg)
	waitFor(t, 30*time.Second, "every event delivered", func() bool {
		seen := map[string]bool{}
		for _, h := range f.bf.got() {
			var b struct{ CampaignID string }
			_ = json.Unmarshal([]byte(h.body), &b)
			seen[b.CampaignID] = true
		}
		for id := range ids {
			if !seen[id] {
				return false
			}
		}
		return true
	})
	// A clean stop finishes or gives back what it holds: once Redis owes nothing, exactly
	// one request per event reached BannerFlex (a duplicate would need a crash).
	waitRelayQuiescent(t, rs.URL(), "e2e", 30*time.Second, "bannerflex")
	if got := len(f.bf.got()); got != n {
		t.Errorf("%d upstream requests for %d events (duplicates: %d)", got, n, got-n)
	}
}
