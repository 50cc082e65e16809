package main_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventrelay/relay/internal/redistest"
	"github.com/eventrelay/relay/internal/testpki"
	"github.com/eventrelay/relay/relay/admin"
)

// e2eAdminToken is e2eConfig's admin.token.
const e2eAdminToken = "admin-token-e2e-0123456789"

// adminCall sends one admin API request to p and decodes the reply into out.
func (p *relayProc) adminCall(t *testing.T, method, path, body string, out any) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+p.admin+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e2eAdminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s %s: %v: %s", method, path, err, b)
	}
}

// deadTotal is the length of provider's dead-letter stream, through the admin API.
func (p *relayProc) deadTotal(t *testing.T, provider string) int64 {
	t.Helper()
	var l admin.DeadListReply
	p.adminCall(t, "GET", "/admin/api/dead/"+provider+"?limit=1", "", &l)
	return l.Total
}

// TestReplayKeepsUpstreamDedupeKeys: a Cardlytics event sent without clientEventId and a
// Linkrunner payment sent without payment_id are refused once (400: dead-lettered), then
// replayed by filter; the replayed requests carry the same clientEventId / payment_id as
// the first attempts (derived from the relay's event id), so the upstreams can dedupe.
func TestReplayKeepsUpstreamDedupeKeys(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	f := newFakes(t)
	var lrCalls atomic.Int32
	f.lr = newFake(t, func(int, fakeHit) (int, string) {
		if lrCalls.Add(1) == 1 {
			return 400, `{"msg":"invalid","status":400}`
		}
		return 201, `{"msg":"ok","status":200,"data":null}`
	})
	pki := testpki.New(t)
	var cxCalls atomic.Int32
	cx := &cardlyticsE2E{pki: pki, up: newTLSFake(t, pki.ServerTLS(), func(_ int, h fakeHit) (int, string) {
		if h.path == e2eCXSessionPath {
			return 200, `{"token":"` + e2eCXToken + `"}`
		}
		if cxCalls.Add(1) == 1 {
			return 400, `{"message":"invalid event"}`
		}
		return 200, `{"requestId":"r-1"}`
	})}
	p := startRelay(t, e2eConfig(rs.URL(), f, "")+cx.providerConfig())
	auth := map[string]string{"Authorization": "Bearer " + e2eBackend}

	status, body := p.post(t, "/v1/linkrunner/capture-payment", `{"user_id":"user_12345","amount":149.99,"type":"FIRST_PAYMENT"}`, auth)
	if status != 202 {
		t.Fatalf("capture-payment: %d %s", status, body)
	}
	cxBody := strings.Replace(e2eCXImpression, `"clientEventId":"2e08d638-04e2-4561-b56a-ca32cfff6203",`, "", 1)
	status, body = p.post(t, "/v1/cardlytics/client-events", cxBody, map[string]string{
		"Authorization": "Bearer " + e2eBackend, "X-Relay-Customer-Id": e2eCXCustomer})
	if status != 202 {
		t.Fatalf("client-events: %d %s", status, body)
	}
	for _, provider := range []string{"linkrunner", "cardlytics"} {
		waitFor(t, 20*time.Second, provider+" dead letter", func() bool { return p.deadTotal(t, provider) == 1 })
	}

	for _, c := range []struct{ provider, filter string }{
		{"linkrunner", `{"reason":"permanent","status":400,"route":"linkrunner/capture-payment"}`},
		{"cardlytics", `{"reason":"permanent","route":"cardlytics/client-events","since":"2020-01-01T00:00:00Z"}`},
	} {
		var dry, r admin.ReplayReply
		p.adminCall(t, "POST", "/admin/api/dead/"+c.provider+"/replay", `{"filter":`+c.filter+`,"dry_run":true}`, &dry)
		if dry.Replayed != 1 || !dry.DryRun || p.deadTotal(t, c.provider) != 1 {
			t.Fatalf("%s dry run: %+v", c.provider, dry)
		}
		p.adminCall(t, "POST", "/admin/api/dead/"+c.provider+"/replay", `{"filter":`+c.filter+`}`, &r)
		if r.Replayed != 1 {
			t.Fatalf("%s replay: %+v", c.provider, r)
		}
	}

	// Each upstream saw the event twice: the refused attempt and the replayed one.
	eventHits := func(up *fake, path string) []fakeHit {
		var out []fakeHit
		for _, h := range up.got() {
			if h.path == path {
				out = append(out, h)
			}
		}
		return out
	}
	waitFor(t, 20*time.Second, "replayed deliveries", func() bool {
		return len(eventHits(f.lr, "/api/v1/capture-payment")) == 2 && len(eventHits(cx.up, e2eCXEventsPath)) == 2
	})
	lr := eventHits(f.lr, "/api/v1/capture-payment")
	var first, again struct {
		PaymentID string `json:"payment_id"`
	}
	if json.Unmarshal([]byte(lr[0].body), &first) != nil || json.Unmarshal([]byte(lr[1].body), &again) != nil ||
		first.PaymentID == "" || again.PaymentID != first.PaymentID {
		t.Errorf("linkrunner payment_id: first %s, replayed %s", lr[0].body, lr[1].body)
	}
	cxHits := eventHits(cx.up, e2eCXEventsPath)
	type cxEvents struct {
		ClientEvents []struct {
			ClientEventID string `json:"clientEventId"`
		} `json:"clientEvents"`
	}
	var cx1, cx2 cxEvents
	if json.Unmarshal([]byte(cxHits[0].body), &cx1) != nil || json.Unmarshal([]byte(cxHits[1].body), &cx2) != nil ||
		len(cx1.ClientEvents) != 1 || len(cx2.ClientEvents) != 1 || cx1.ClientEvents[0].ClientEventID == "" ||
		cx2.ClientEvents[0].ClientEventID != cx1.ClientEvents[0].ClientEventID {
		t.Errorf("cardlytics clientEventId: first %s, replayed %s", cxHits[0].body, cxHits[1].body)
	}
	if a, b := cxHits[0].header.Get("X-CDLX-Request-Id"), cxHits[1].header.Get("X-CDLX-Request-Id"); a == "" || a != b {
		t.Errorf("cardlytics X-CDLX-Request-Id: first %q, replayed %q", a, b)
	}
	for _, provider := range []string{"linkrunner", "cardlytics"} {
		waitFor(t, 10*time.Second, provider+" dead letters gone", func() bool { return p.deadTotal(t, provider) == 0 })
	}
}
