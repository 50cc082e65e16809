package ingest_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventrelay/relay/config"
)

// TestBatchIdentityRefusalsNameTheItem: an item refused for its identity is named
// (events[i]...), since the SDK drops only the item a refusal's field names and would
// otherwise drop the valid items with it; a bad token stays a refusal of the whole
// request, without a field: it applies to every item.
func TestBatchIdentityRefusalsNameTheItem(t *testing.T) {
	r := startRelayWith(t, func(cfg *config.Config) {
		// Neither identity_secret nor trust_client_identity; default routes.
		cfg.Sites = append(cfg.Sites, config.Site{Name: "plain", Key: "pk_plain_0009", Origins: []string{"https://plain.example.com"},
			RateLimit: cfg.Sites[0].RateLimit, Consent: "none"})
	})
	exp := time.Now().Add(time.Hour).Unix()
	noCustomer := identityToken(t, idSecret, jwt.MapClaims{"sub": "u", "exp": exp}, jwt.SigningMethodHS256)
	badSig := identityToken(t, "another-secret-0123456789abcdef0123", jwt.MapClaims{"sub": "u", "exp": exp}, jwt.SigningMethodHS256)
	lr := `{"events":[{"route":"ens/click","body":` + ensBody + `},{"route":"linkrunner/capture-event","body":` + lrPlain + `}]}`
	cdlx := `{"events":[{"route":"ens/click","body":` + ensBody + `},{"route":"cardlytics/client-events","body":` + cdlxBody + `}]}`
	plain := map[string]string{"X-Relay-Key": "pk_plain_0009", "Origin": "https://plain.example.com"}
	ident := map[string]string{"X-Relay-Key": idKey, "Origin": idOrigin}
	for _, c := range []struct {
		name, path, body string
		header           map[string]string
		status           int
		code, field, msg string
	}{
		{"site without identity config", "/v1/batch", lr, plain, 403, "forbidden", "events[1].route", "needs an identity"},
		{"identity site, no token", "/v1/batch", lr, ident, 401, "identity_required", "events[1].route", "needs an identity token"},
		{"token without customer_id", "/v1/batch?identity=" + noCustomer, cdlx, ident, 400, "missing_field", "events[1]", "X-Relay-Customer-Id"},
		{"backend without customer header", "/v1/batch", cdlx, bearer(backend), 400, "missing_field", "events[1]", "X-Relay-Customer-Id"},
		{"bad token: the whole request", "/v1/batch?identity=" + badSig, lr, ident, 401, "invalid_identity", "", "bad signature"},
	} {
		res := r.do(t, req{path: c.path, body: c.body, header: c.header})
		e := decode[refused](t, res.body)
		if res.status != c.status || e.Error.Code != c.code || e.Error.Field != c.field || !strings.Contains(e.Error.Message, c.msg) {
			t.Errorf("%s: %d %s; want %d %s naming %q, message with %q", c.name, res.status, res.body, c.status, c.code, c.field, c.msg)
		}
	}
	if n := len(r.entries(t, "ens")); n != 0 {
		t.Errorf("refused batches queued %d ens events", n)
	}
}

// TestBatchValueCapNamesEvents: two events, each accepted alone, that together hold more
// than strictjson.MaxValues values are refused naming "events" (the SDK then sends smaller
// batches), never the second item (which the SDK would drop as bad).
func TestBatchValueCapNamesEvents(t *testing.T) {
	r := startRelayWith(t, func(cfg *config.Config) { cfg.Server.MaxBodyBytes = 65536 })
	arr := "[" + strings.Repeat("1,", 5999) + "1]"
	ev := `{"route":"brevo/events","body":{"event_name":"cart","identifiers":{"email_id":"a@example.com"},"event_properties":{"a":` + arr + `}}}`
	if res := r.do(t, req{path: "/v1/batch", body: `{"events":[` + ev + `]}`, header: bearer(backend)}); res.status != http.StatusAccepted {
		t.Fatalf("one event: %d %s, want 202", res.status, res.body)
	}
	res := r.do(t, req{path: "/v1/batch", body: `{"events":[` + ev + `,` + ev + `]}`, header: bearer(backend)})
	if e := decode[refused](t, res.body); res.status != http.StatusBadRequest || e.Error.Code != "invalid_json" || e.Error.Field != "events" {
		t.Errorf("two events over the value cap: %d %s, want 400 invalid_json naming events", res.status, res.body)
	}
	// A body too large as a whole names events too. Only the headers are sent (the
	// refusal comes from the announced length): a client still writing the body when
	// the server closes may see a reset instead of the reply.
	c := r.dial(t)
	fmt.Fprintf(c, "POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", backend, 6*len(ev)+20)
	replies, _ := readReplies(c, 3*time.Second)
	if len(replies) != 1 {
		t.Fatalf("%d replies to a batch over max_body_bytes, want one", len(replies))
	}
	if e := decode[refused](t, replies[0].body); replies[0].status != http.StatusRequestEntityTooLarge || e.Error.Code != "body_too_large" || e.Error.Field != "events" {
		t.Errorf("batch over max_body_bytes: %d %s, want 413 body_too_large naming events", replies[0].status, replies[0].body)
	}
	if n := len(r.entries(t, "brevo")); n != 1 {
		t.Errorf("%d brevo events queued, want the one accepted", n)
	}
}
