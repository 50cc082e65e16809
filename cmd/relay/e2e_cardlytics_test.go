package main_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventrelay/relay/internal/testpki"
)

// Cardlytics end to end: the relay binary against a fake Cardlytics that, like the real
// one, requires the relay's client certificate (mutual TLS), in bearer mode: startSession
// with clientId/secret, then clientEvent with the session's bearer token.

const (
	e2eCXClientID = "cdlx-client-e2e-canary-81"
	e2eCXSecret   = "cdlx-secret-e2e-canary-82"
	e2eCXToken    = "cdlx-token-e2e-canary-83"
	e2eCXCustomer = "cust-e2e-1"
	// e2eCXImpression is the provider's documented AdImpression example
	// (cardlytics-client-events.txt). It has its clientEventId, so it must arrive unchanged.
	e2eCXImpression = `{"clientEvents":[{"clientEventId":"2e08d638-04e2-4561-b56a-ca32cfff6203",` +
		`"clientEventType":"AdImpression","clientEvent":"AdViewableImpression","clientEventTimestamp":"2023-03-11T08:00:00Z",` +
		`"clientEventMetadata":{"serveToken":"91e471aed3c04b81bee792f23ad4859d","section":"LatestOffers","channel":"OLB",` +
		`"imageSlots":["logo"],"categoryId":"1","displayPosition":2}}]}`
	e2eCXSessionPath = "/v2/session/startSession"
	e2eCXEventsPath  = "/v2/events/clientEvent"
)

// e2eCXSecrets are the Cardlytics credentials: none may reach another upstream or the logs.
func e2eCXSecrets() []string { return []string{e2eCXClientID, e2eCXSecret, e2eCXToken} }

// cardlyticsE2E is a fake Cardlytics over mutual TLS, with the PKI the relay's config names.
type cardlyticsE2E struct {
	pki *testpki.PKI
	up  *fake
}

func newCardlyticsE2E(t *testing.T) *cardlyticsE2E {
	t.Helper()
	pki := testpki.New(t)
	up := newTLSFake(t, pki.ServerTLS(), func(_ int, h fakeHit) (int, string) {
		switch h.path {
		case e2eCXSessionPath:
			return 200, `{"token":"` + e2eCXToken + `"}`
		case e2eCXEventsPath:
			id, _ := json.Marshal(h.header.Get("X-CDLX-Request-Id"))
			return 200, `{"requestId":` + string(id) + `}`
		}
		return 404, `{"message":"no such path"}`
	})
	return &cardlyticsE2E{pki: pki, up: up}
}

// providerConfig is the `cardlytics:` entry for the relay config's providers map, two
// spaces deep like e2eConfig's.
func (c *cardlyticsE2E) providerConfig() string {
	return fmt.Sprintf("  cardlytics: {base_url: %q, auth: bearer, client_id: %s, secret: %s, "+
		"tls_cert_file: %q, tls_key_file: %q, tls_ca_file: %q, timeout: 1s, backoff: {base: 50ms, max: 200ms}}\n",
		c.up.srv.URL, e2eCXClientID, e2eCXSecret, c.pki.ClientCertFile, c.pki.ClientKeyFile, c.pki.CAFile)
}

// post sends the documented example to the relay as a backend, for e2eCXCustomer, and
// returns the event id of the 202.
func (c *cardlyticsE2E) post(t *testing.T, p *relayProc) string {
	t.Helper()
	status, body := p.post(t, "/v1/cardlytics/client-events", e2eCXImpression, map[string]string{
		"Authorization": "Bearer " + e2eBackend, "X-Relay-Customer-Id": e2eCXCustomer})
	var reply struct{ IDs []string }
	if status != 202 || json.Unmarshal([]byte(body), &reply) != nil || len(reply.IDs) != 1 || reply.IDs[0] == "" {
		t.Fatalf("cardlytics/client-events: %d %s, want 202 with one event id", status, body)
	}
	return reply.IDs[0]
}

// check waits for the clientEvent request, then checks the whole exchange: one
// startSession with the relay's credentials for the customer, then one clientEvent with
// the session's token, the event id and the body as sent. foreign are other providers'
// secrets, which must not reach Cardlytics.
func (c *cardlyticsE2E) check(t *testing.T, eventID string, foreign ...string) {
	t.Helper()
	waitFor(t, 10*time.Second, "cardlytics upstream", func() bool {
		hits := c.up.got()
		return len(hits) > 0 && hits[len(hits)-1].path == e2eCXEventsPath
	})
	hits := c.up.got()
	if len(hits) != 2 || hits[0].path != e2eCXSessionPath {
		paths := make([]string, len(hits))
		for i, h := range hits {
			paths[i] = h.path
		}
		t.Fatalf("cardlytics: requests %v, want %s then %s", paths, e2eCXSessionPath, e2eCXEventsPath)
	}
	session, event := hits[0], hits[1]
	for _, hc := range []struct {
		hit        fakeHit
		name, want string
	}{
		{session, "x-source-customer-id", e2eCXCustomer},
		{event, "Authorization", "Bearer " + e2eCXToken},
		{event, "x-source-customer-id", e2eCXCustomer},
		// The relay's event id: what a trace from the 202 to Cardlytics' requestId follows.
		{event, "X-CDLX-Request-Id", eventID},
	} {
		if got := hc.hit.header.Values(hc.name); len(got) != 1 || got[0] != hc.want {
			t.Errorf("cardlytics %s: %s = %q, want %q", hc.hit.path, hc.name, got, hc.want)
		}
	}
	if want := fmt.Sprintf(`{"clientId":%q,"secret":%q}`, e2eCXClientID, e2eCXSecret); !jsonEqual(session.body, want) {
		t.Errorf("cardlytics startSession body %s, want %s", session.body, want)
	}
	if !jsonEqual(event.body, e2eCXImpression) {
		t.Errorf("cardlytics clientEvent body %s, want %s", event.body, e2eCXImpression)
	}
	// clientId and secret belong in startSession's body only; the token in Authorization.
	eventText := fmt.Sprint(event.header) + event.body
	eventText = strings.Replace(eventText, "Bearer "+e2eCXToken, "", 1)
	for _, s := range append(foreign, e2eCXSecrets()...) {
		if strings.Contains(eventText, s) || strings.Contains(fmt.Sprint(session.header), s) {
			t.Errorf("cardlytics: secret %q where it does not belong", s)
		}
	}
}
