package providers

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/internal/testpki"
)

// Cardlytics in the conformance suite: the same cfCheck as every other route, once per
// auth mode, against a fake that requires the relay's client certificate (mutual TLS, as
// Cardlytics does). Where Cardlytics differs, the case's fields say so:
//   - startSession is an aux path: answered with a token and not recorded, so the checks
//     see only the clientEvent request, the one that carries the event. startSession's
//     own request and failures are in cardlytics_upstream_test.go.
//   - 401 renews the session and retries once; the fake answers 401 to both attempts, so
//     the outcome is the suite's default for 401 (retryable, status 401).
//   - 405 is documented as permanent for Cardlytics only: added through permanent.
//   - 403 on clientEvent is the relay's certificate or source IP refused (a configuration
//     fault): retryable, overriding the suite's default through permanent.
// The session token is a secret like the others: only its own header may carry it.

const (
	cfCardlyticsClientID = "cxid-canary-4b7e2a91c3d5"
	cfCardlyticsSecret   = "cxsec-canary-8f1a6d3e0b27"
	cfCardlyticsToken    = "cxtok-canary-2c9d5e7f1a3b"
	// cfCardlyticsEventID is the relay event id: X-CDLX-Request-Id, and the seed of the
	// derived clientEventId.
	cfCardlyticsEventID = "evt-cx-1"
	// cfCardlyticsImpression is the provider's documented AdImpression example; its
	// clientEventId must travel unchanged.
	cfCardlyticsImpression = `{"clientEventId":"2e08d638-04e2-4561-b56a-ca32cfff6203","clientEventType":"AdImpression",` +
		`"clientEvent":"AdViewableImpression","clientEventTimestamp":"2023-03-11T08:00:00Z","clientEventMetadata":` +
		`{"serveToken":"91e471aed3c04b81bee792f23ad4859d","section":"LatestOffers","channel":"OLB","imageSlots":["logo"],` +
		`"categoryId":"1","displayPosition":2}}`
	// cfCardlyticsEnrollment is the documented SessionAction example without its
	// clientEventId, which the relay derives.
	cfCardlyticsEnrollment = `{"clientEventType":"SessionAction","clientEvent":"LogEnrollment",` +
		`"clientEventTimestamp":"2023-03-11T08:00:00Z","clientEventMetadata":null}`
	// cfCardlyticsDerivedID is the clientEventId of cfCardlyticsEnrollment as the second
	// event of cfCardlyticsEventID: uuid.NewSHA1(cardlyticsEventIDSpace, "evt-cx-1/1").
	// A literal, not computed: a change of the namespace would give events in retry
	// across a deploy new ids, and must fail here.
	cfCardlyticsDerivedID = "6a67a04f-8f5c-5a98-b370-e97b15076594"
)

// cfCardlyticsCases returns the Cardlytics cases, one per auth mode. They share one PKI,
// issued with t (the test that runs them): its files live as long as t.
func cfCardlyticsCases(t *testing.T) []cfCase {
	t.Helper()
	pki := testpki.New(t)
	serve := func(h http.Handler) *httptest.Server {
		s := httptest.NewUnstartedServer(h)
		s.TLS = pki.ServerTLS()
		s.StartTLS()
		return s
	}
	build := func(auth string) func(string, time.Duration) delivery.Adapter {
		return func(base string, timeout time.Duration) delivery.Adapter {
			a, err := newCardlyticsAdapter(&CardlyticsConfig{Delivery: cfDelivery(base, timeout), Auth: auth,
				ClientID: cfCardlyticsClientID, Secret: cfCardlyticsSecret, InstitutionID: "inst-42",
				TLSCertFile: pki.ClientCertFile, TLSKeyFile: pki.ClientKeyFile, TLSCAFile: pki.CAFile}, nil)
			if err != nil {
				// build has no test to fail: the config is fixed and the files are
				// checked below, so this is a broken suite, not a finding.
				panic("conformance: Cardlytics adapter: " + err.Error())
			}
			return a
		}
	}
	if _, err := newCardlyticsAdapter(&CardlyticsConfig{Delivery: cfDelivery("https://127.0.0.1", cfTimeout),
		ClientID: "id", Secret: "s", TLSCertFile: pki.ClientCertFile, TLSKeyFile: pki.ClientKeyFile, TLSCAFile: pki.CAFile}, nil); err != nil {
		t.Fatalf("the test PKI does not load: %v", err)
	}
	msg := func() *delivery.Message {
		m := cfMsg(cfCardlyticsEventID, "cardlytics/client-events",
			`{"clientEvents":[`+cfCardlyticsImpression+","+cfCardlyticsEnrollment+`]}`)()
		// backendID's customer: the body is checked inbound as a backend sends it.
		m.Provider, m.CustomerID = Cardlytics, backendID().CustomerID
		return m
	}
	enrollment := `{"clientEventId":"` + cfCardlyticsDerivedID + `",` + cfCardlyticsEnrollment[1:]
	wantBody := `{"clientEvents":[` + cfCardlyticsImpression + "," + enrollment + `]}`
	secrets := []string{cfCardlyticsClientID, cfCardlyticsSecret, cfCardlyticsToken}
	return []cfCase{{
		name: "cardlytics/client-events (bearer)", build: build(cardlyticsAuthBearer), serve: serve,
		aux:      map[string]cfReply{cardlyticsSessionPath: {status: 200, body: `{"token":"` + cfCardlyticsToken + `"}`}},
		msg:      msg,
		wantPath: cardlyticsEventsPath, wantBody: wantBody,
		wantHeader: map[string]string{"Authorization": "Bearer " + cfCardlyticsToken,
			"x-source-customer-id": backendID().CustomerID, "X-CDLX-Request-Id": cfCardlyticsEventID},
		secrets: secrets, success: []int{200, 204}, permanent: map[int]bool{405: true, 403: false},
	}, {
		name: "cardlytics/client-events (session)", build: build(cardlyticsAuthSession), serve: serve,
		aux:      map[string]cfReply{cardlyticsSessionPath: {status: 200, body: `{"sessionToken":"` + cfCardlyticsToken + `"}`}},
		msg:      msg,
		wantPath: cardlyticsEventsPath, wantBody: wantBody,
		// No customer header: in session mode the token is the customer's.
		wantHeader: map[string]string{"X-CDLX-Session-Token": cfCardlyticsToken, "X-CDLX-Request-Id": cfCardlyticsEventID},
		secrets:    secrets, success: []int{200, 204}, permanent: map[int]bool{405: true, 403: false},
	}}
}
