package ingest_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/relay/queue"
)

const (
	filtKey    = "pk_filt_0010"
	filtOrigin = "https://filt.example.com"
	consKey    = "pk_cons_0011"
	consOrigin = "https://cons.example.com"
	consSecret = "consent-site-identity-secret-0123456789abcdef"
)

// withFilterSites adds two sites to the test config: filt filters events by name, cons
// requires consent (ens/click's purpose overridden to analytics), verifies identity
// tokens and denies BannerFlex clicks.
func withFilterSites(cfg *config.Config) {
	cfg.Sites = append(cfg.Sites,
		config.Site{
			Name: "filt", Key: filtKey, Origins: []string{filtOrigin}, TrustClientIdentity: true,
			RateLimit: config.RateLimit{PerIP: 1000, Burst: 1000}, Consent: config.ConsentNone,
			Events: config.EventFilter{
				Allow: []string{"purchase*", "impression", "click", "cart_updated", "AdViewableImpression", "UrlLinkClicked"},
				Deny:  []string{"purchase_test*", "UrlLinkClicked"},
			},
		},
		config.Site{
			Name: "cons", Key: consKey, Origins: []string{consOrigin}, IdentitySecret: consSecret,
			RateLimit: config.RateLimit{PerIP: 1000, Burst: 1000}, Consent: config.ConsentRequired,
			Purposes: map[string]string{"ens/click": "analytics"},
			Events:   config.EventFilter{Deny: []string{"click"}},
		},
	)
}

// filteredReply is a 202 reply with the filtered marks.
type filteredReply struct {
	OK       bool              `json:"ok"`
	IDs      []string          `json:"ids"`
	Filtered map[string]string `json:"filtered"`
}

// streamIDs returns the event ids in provider's stream.
func (r *testRelay) streamIDs(t *testing.T, provider string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, e := range r.entries(t, provider) {
		out[e[queue.FieldID].(string)] = true
	}
	return out
}

// filteredMetric reads relay_events_filtered_total{site,route,reason}; -1 when the series
// does not exist.
func (r *testRelay) filteredMetric(t *testing.T, site, route, reason string) float64 {
	t.Helper()
	fams, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "relay_events_filtered_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["site"] == site && labels["route"] == route && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

// send posts body to route and decodes the 202 reply; it fails the test on anything else.
func (r *testRelay) send(t *testing.T, path, body string, h map[string]string) filteredReply {
	t.Helper()
	res := r.do(t, req{path: path, body: body, header: h})
	if res.status != http.StatusAccepted {
		t.Fatalf("%s %s: %d %s, want 202", path, body, res.status, res.body)
	}
	rep := decode[filteredReply](t, res.body)
	if !rep.OK || len(rep.IDs) == 0 {
		t.Fatalf("%s: reply %s", path, res.body)
	}
	return rep
}

func filt(extra map[string]string) map[string]string {
	h := map[string]string{"X-Relay-Key": filtKey, "Origin": filtOrigin}
	for k, v := range extra {
		h[k] = v
	}
	return h
}

func cons(extra map[string]string) map[string]string {
	h := map[string]string{"X-Relay-Key": consKey, "Origin": consOrigin}
	for k, v := range extra {
		h[k] = v
	}
	return h
}

const (
	bfClick      = `{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","event":"click"}`
	bfCustom     = `{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","event":"custom","metricId":"bnrflx-cta"}`
	cdlxImpr     = `{"clientEventType":"AdImpression","clientEvent":"AdViewableImpression","clientEventTimestamp":"2023-03-11T08:00:00Z","clientEventMetadata":{"section":"LatestOffers","channel":"OLB"}}`
	cdlxClick    = `{"clientEventType":"AdInteraction","clientEvent":"UrlLinkClicked","clientEventTimestamp":"2023-03-11T08:00:01Z","clientEventMetadata":{"section":"LatestOffers","channel":"OLB"}}`
	brevoMAPage  = `{"email":"jane@example.com","event":"page_view"}`
	brevoMACart  = `{"email":"jane@example.com","event":"cart_updated"}`
	brevoV3Debug = `{"event_name":"purchase_test_1","identifiers":{"email_id":"jane@example.com"}}`
)

// TestEventFiltersPerRoute: each route with an event name is filtered on its own field;
// filtered events are answered 202 with their id marked, absent from Redis, and counted;
// kept ones are queued; routes without names and backends are not filtered.
func TestEventFiltersPerRoute(t *testing.T) {
	r := startRelayWith(t, withFilterSites)
	cust := map[string]string{"X-Relay-Customer-Id": "cust-42"}
	cases := []struct {
		name, route, provider, body string
		header                      map[string]string
		reason                      string // "" kept
	}{
		{"linkrunner allowed prefix", "linkrunner/capture-event", "linkrunner", `{"event_name":"purchase_completed","user_id":"u1"}`, filt(nil), ""},
		{"linkrunner deny wins over allow", "linkrunner/capture-event", "linkrunner", `{"event_name":"purchase_test_7","user_id":"u1"}`, filt(nil), "deny"},
		{"linkrunner not in allow", "linkrunner/capture-event", "linkrunner", `{"event_name":"signup","user_id":"u1"}`, filt(nil), "not_allowed"},
		{"brevo v3 event_name allowed", "brevo/events", "brevo", brevoV3, filt(nil), ""},
		{"brevo v3 event_name denied", "brevo/events", "brevo", brevoV3Debug, filt(nil), "deny"},
		{"brevo legacy event allowed", "brevo/track-event", "brevo", brevoMACart, filt(nil), ""},
		{"brevo legacy event not allowed", "brevo/track-event", "brevo", brevoMAPage, filt(nil), "not_allowed"},
		{"bannerflex event allowed", "bannerflex/banner-events", "bannerflex", bfBody, filt(nil), ""},
		{"bannerflex event not allowed", "bannerflex/banner-events", "bannerflex", bfCustom, filt(nil), "not_allowed"},
		{"ens has no name: never filtered", "ens/click", "ens", ensBody, filt(nil), ""},
		{"cardlytics all names allowed", "cardlytics/client-events", "cardlytics", `{"clientEvents":[` + cdlxImpr + `]}`, filt(cust), ""},
		{"cardlytics one denied name filters the request", "cardlytics/client-events", "cardlytics", `{"clientEvents":[` + cdlxImpr + `,` + cdlxClick + `]}`, filt(cust), "deny"},
		{"backend not subject to site filters", "linkrunner/capture-event", "linkrunner", `{"event_name":"signup","user_id":"u1"}`, bearer(backend), ""},
	}
	want := map[[2]string]float64{}
	for _, c := range cases {
		rep := r.send(t, "/v1/"+c.route, c.body, c.header)
		id := rep.IDs[0]
		inStream := r.streamIDs(t, c.provider)[id]
		switch {
		case c.reason == "" && (len(rep.Filtered) != 0 || !inStream):
			t.Errorf("%s: reply %+v, in stream %v: want kept and queued", c.name, rep, inStream)
		case c.reason != "" && (rep.Filtered[id] != c.reason || len(rep.Filtered) != 1 || inStream):
			t.Errorf("%s: reply %+v, in stream %v: want filtered[%s] = %q and not queued", c.name, rep, inStream, id, c.reason)
		}
		if c.reason != "" {
			want[[2]string{c.route, c.reason}]++
		}
	}
	for k, n := range want {
		if got := r.filteredMetric(t, "filt", k[0], k[1]); got != n {
			t.Errorf("relay_events_filtered_total{site=filt,route=%s,reason=%s} = %v, want %v", k[0], k[1], got, n)
		}
	}
	// Exported as 0 from the start where the configuration makes a reason possible, and
	// only there: ENS events have no name, so no filter series.
	if got := r.filteredMetric(t, "filt", "bannerflex/banner-events", "deny"); got != 0 {
		t.Errorf("filt bannerflex deny = %v, want 0 (exported before any drop)", got)
	}
	if got := r.filteredMetric(t, "filt", "ens/click", "deny"); got != -1 {
		t.Errorf("filt ens/click deny exported (%v): ENS events have no name", got)
	}
}

// TestFilteredEventWithIdempotencyKey: a filtered event answers with the client's id,
// marked, and leaves no dedupe marker: nothing of it is in Redis.
func TestFilteredEventWithIdempotencyKey(t *testing.T) {
	r := startRelayWith(t, withFilterSites)
	for range 2 {
		rep := r.send(t, "/v1/bannerflex/banner-events", bfCustom, filt(map[string]string{"Idempotency-Key": "client-id-1"}))
		if len(rep.IDs) != 1 || rep.IDs[0] != "client-id-1" || rep.Filtered["client-id-1"] != "not_allowed" {
			t.Fatalf("reply %+v, want ids [client-id-1] marked not_allowed", rep)
		}
	}
	if keys := r.rdb.Keys(context.Background(), "*").Val(); len(keys) != 0 {
		t.Errorf("Redis holds %v after filtered events only; want nothing", keys)
	}
	if got := r.filteredMetric(t, "filt", "bannerflex/banner-events", "not_allowed"); got != 2 {
		t.Errorf("filtered count %v, want 2", got)
	}
}

// TestBatchMixesKeptAndFilteredItems: one /v1/batch with kept, denied, not-allowed and
// consent-dropped items: ids in order, marks for exactly the dropped ones, only the kept
// ones in Redis.
func TestBatchMixesKeptAndFilteredItems(t *testing.T) {
	r := startRelayWith(t, withFilterSites)
	body := `{"events":[
		{"route":"bannerflex/banner-events","body":` + bfBody + `,"id":"b-1"},
		{"route":"bannerflex/banner-events","body":` + bfCustom + `,"id":"b-2"},
		{"route":"linkrunner/capture-event","body":{"event_name":"purchase_test_x","user_id":"u1"}},
		{"route":"ens/click","body":` + ensBody + `},
		{"route":"linkrunner/capture-event","body":{"event_name":"purchase","user_id":"u1"},"id":"l-1"}]}`
	rep := r.send(t, "/v1/batch", body, filt(nil))
	if len(rep.IDs) != 5 || rep.IDs[0] != "b-1" || rep.IDs[1] != "b-2" || rep.IDs[4] != "l-1" {
		t.Fatalf("ids %v: want 5 in item order", rep.IDs)
	}
	wantMarks := map[string]string{"b-2": "not_allowed", rep.IDs[2]: "deny"}
	if len(rep.Filtered) != len(wantMarks) || rep.Filtered["b-2"] != "not_allowed" || rep.Filtered[rep.IDs[2]] != "deny" {
		t.Errorf("filtered %v, want %v", rep.Filtered, wantMarks)
	}
	bf, lr, ens := r.streamIDs(t, "bannerflex"), r.streamIDs(t, "linkrunner"), r.streamIDs(t, "ens")
	if len(bf) != 1 || !bf["b-1"] || len(lr) != 1 || !lr["l-1"] || len(ens) != 1 || !ens[rep.IDs[3]] {
		t.Errorf("streams: bannerflex %v, linkrunner %v, ens %v; want only b-1, l-1 and %s", bf, lr, ens, rep.IDs[3])
	}
	if a, b := r.filteredMetric(t, "filt", "bannerflex/banner-events", "not_allowed"), r.filteredMetric(t, "filt", "linkrunner/capture-event", "deny"); a != 1 || b != 1 {
		t.Errorf("filtered counts %v, %v; want 1 each", a, b)
	}

	// Consent inside a batch: the request's consent applies to each item's purpose.
	rep = r.send(t, "/v1/batch", `{"events":[{"route":"ens/impression","body":`+ensBody+`},{"route":"ens/click","body":`+ensBody+`}]}`,
		cons(map[string]string{"X-Relay-Consent": "ads=1"}))
	if len(rep.IDs) != 2 || len(rep.Filtered) != 1 || rep.Filtered[rep.IDs[1]] != "consent" {
		t.Errorf("consent batch reply %+v: want the click (purpose analytics) marked consent", rep)
	}
	ens = r.streamIDs(t, "ens")
	if !ens[rep.IDs[0]] || ens[rep.IDs[1]] {
		t.Errorf("ens stream %v: want the impression queued, the click not", ens)
	}

	// Every item dropped: still 202, nothing queued.
	rep = r.send(t, "/v1/batch", `{"events":[{"route":"ens/impression","body":`+ensBody+`}]}`, cons(nil))
	if rep.Filtered[rep.IDs[0]] != "consent" || r.streamIDs(t, "ens")[rep.IDs[0]] {
		t.Errorf("all-dropped batch: reply %+v, want marked and not queued", rep)
	}
}

// TestConsent: a consent: required site queues an event only when its route's purpose is
// granted, by header, query or identity token; a refusal in either source wins.
func TestConsent(t *testing.T) {
	r := startRelayWith(t, withFilterSites)
	exp := time.Now().Add(time.Hour).Unix()
	token := func(consent any) string {
		claims := jwt.MapClaims{"sub": "u1", "exp": exp}
		if consent != nil {
			claims["consent"] = consent
		}
		return identityToken(t, consSecret, claims, jwt.SigningMethodHS256)
	}
	q := func(v string) string { return "?consent=" + url.QueryEscape(v) }
	cases := []struct {
		name, path string
		header     map[string]string
		kept       bool
	}{
		{"nothing stated", "/v1/ens/impression", cons(nil), false},
		{"header grants ads", "/v1/ens/impression", cons(map[string]string{"X-Relay-Consent": "ads=1"}), true},
		{"header refuses ads", "/v1/ens/impression", cons(map[string]string{"X-Relay-Consent": "ads=0,analytics=1"}), false},
		{"purpose override: click is analytics", "/v1/ens/click", cons(map[string]string{"X-Relay-Consent": "ads=1"}), false},
		{"purpose override granted", "/v1/ens/click", cons(map[string]string{"X-Relay-Consent": "analytics=1"}), true},
		{"query grants (beacon)", "/v1/ens/impression" + q("ads=1") + "&key=" + consKey, map[string]string{"Origin": consOrigin}, true},
		{"query refuses", "/v1/ens/impression" + q("ads=0"), cons(nil), false},
		{"token claim text grants", "/v1/ens/impression", cons(map[string]string{"X-Relay-Identity": token("ads=1")}), true},
		{"token claim object grants", "/v1/ens/impression", cons(map[string]string{"X-Relay-Identity": token(map[string]bool{"ads": true})}), true},
		{"token query grants", "/v1/ens/impression?identity=" + token("ads=1"), cons(nil), true},
		{"token grants, header withdraws", "/v1/ens/impression", cons(map[string]string{"X-Relay-Identity": token("ads=1"), "X-Relay-Consent": "ads=0"}), false},
		{"token refuses, header cannot grant", "/v1/ens/impression", cons(map[string]string{"X-Relay-Identity": token("ads=0"), "X-Relay-Consent": "ads=1"}), false},
		{"token without claim, header grants", "/v1/ens/impression", cons(map[string]string{"X-Relay-Identity": token(nil), "X-Relay-Consent": "ads=1"}), true},
		{"backend not subject to consent", "/v1/ens/impression", bearer(backend), true},
		{"consent none: header ignored", "/v1/ens/impression", map[string]string{"X-Relay-Key": shopKey, "Origin": shopOrig, "X-Relay-Consent": "ads=0"}, true},
	}
	dropped := 0
	for _, c := range cases {
		rep := r.send(t, c.path, ensBody, c.header)
		id := rep.IDs[0]
		queued := r.streamIDs(t, "ens")[id]
		if c.kept != queued || c.kept != (len(rep.Filtered) == 0) || (!c.kept && rep.Filtered[id] != "consent") {
			t.Errorf("%s: reply %+v, queued %v; want kept=%v", c.name, rep, queued, c.kept)
		}
		if !c.kept && strings.HasPrefix(c.path, "/v1/ens/impression") {
			dropped++
		}
	}
	if got := r.filteredMetric(t, "cons", "ens/impression", "consent"); got != float64(dropped) {
		t.Errorf("relay_events_filtered_total{cons,ens/impression,consent} = %v, want %d", got, dropped)
	}
	if got := r.filteredMetric(t, "cons", "ens/click", "consent"); got != 1 {
		t.Errorf("relay_events_filtered_total{cons,ens/click,consent} = %v, want 1", got)
	}
}

// TestConsentRefusals: a malformed statement is a 400 naming where it came from; a bad
// identity token is refused even on a route that needs no identity, since its consent
// claim would decide.
func TestConsentRefusals(t *testing.T) {
	r := startRelayWith(t, withFilterSites)
	exp := time.Now().Add(time.Hour).Unix()
	for _, c := range []struct {
		name, path string
		header     map[string]string
		status     int
		field      string
	}{
		{"malformed header", "/v1/ens/impression", cons(map[string]string{"X-Relay-Consent": "ads=yes"}), 400, "X-Relay-Consent"},
		{"header with a repeated purpose", "/v1/ens/impression", cons(map[string]string{"X-Relay-Consent": "ads=1,ads=0"}), 400, "X-Relay-Consent"},
		{"malformed query", "/v1/ens/impression?consent=ads", cons(nil), 400, "consent"},
		{"malformed header on an event the filter drops", "/v1/bannerflex/banner-events", cons(map[string]string{"X-Relay-Consent": "ads=yes"}), 400, "X-Relay-Consent"},
		{"bad token signature", "/v1/ens/impression", cons(map[string]string{"X-Relay-Identity": identityToken(t, "another-secret-0123456789abcdef0123", jwt.MapClaims{"exp": exp, "consent": "ads=1"}, jwt.SigningMethodHS256)}), 401, ""},
		{"malformed consent claim", "/v1/ens/impression", cons(map[string]string{"X-Relay-Identity": identityToken(t, consSecret, jwt.MapClaims{"exp": exp, "consent": "ads=yes"}, jwt.SigningMethodHS256)}), 401, ""},
	} {
		body := ensBody
		if strings.HasPrefix(c.path, "/v1/bannerflex/") {
			body = bfClick
		}
		res := r.do(t, req{path: c.path, body: body, header: c.header})
		e := decode[refused](t, res.body)
		if res.status != c.status || e.Error.Field != c.field {
			t.Errorf("%s: %d %s; want %d naming %q", c.name, res.status, res.body, c.status, c.field)
		}
	}
	if n := r.rdb.XLen(context.Background(), "t:{ens}:events").Val(); n != 0 {
		t.Errorf("%d events queued by refused requests", n)
	}

	// Filter and consent on one site: the filter's reason comes first.
	rep := r.send(t, "/v1/bannerflex/banner-events", bfClick, cons(map[string]string{"X-Relay-Consent": "ads=0"}))
	if rep.Filtered[rep.IDs[0]] != "deny" {
		t.Errorf("denied click without consent: %+v, want reason deny", rep)
	}
	rep = r.send(t, "/v1/bannerflex/banner-events", bfBody, cons(map[string]string{"X-Relay-Consent": "ads=0"}))
	if rep.Filtered[rep.IDs[0]] != "consent" {
		t.Errorf("impression without consent: %+v, want reason consent", rep)
	}
	if n := r.rdb.XLen(context.Background(), "t:{bannerflex}:events").Val(); n != 0 {
		t.Errorf("%d BannerFlex events queued, want 0", n)
	}
}

// TestConsentClaimReadOnlyWhereConsentIsRequired: with consent: none nothing is read, so a
// token's consent claim in a shape the relay does not parse does not refuse the event;
// where consent is required, the same claim is refused (the claim would decide).
func TestConsentClaimReadOnlyWhereConsentIsRequired(t *testing.T) {
	r := startRelayWith(t, withFilterSites)
	claims := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "u", "exp": time.Now().Add(time.Hour).Unix(), "consent": map[string]string{"ads": "granted"}}
	}
	none := identityToken(t, idSecret, claims(), jwt.SigningMethodHS256) // site ident: consent none
	res := r.do(t, req{path: "/v1/linkrunner/capture-event?identity=" + none, body: lrPlain,
		header: map[string]string{"X-Relay-Key": idKey, "Origin": idOrigin}})
	if res.status != http.StatusAccepted || len(r.entries(t, "linkrunner")) != 1 {
		t.Errorf("consent: none site: %d %s, want 202 and the event queued", res.status, res.body)
	}
	required := identityToken(t, consSecret, claims(), jwt.SigningMethodHS256)
	res = r.do(t, req{path: "/v1/ens/impression", body: ensBody, header: cons(map[string]string{"X-Relay-Identity": required})})
	if e := decode[refused](t, res.body); res.status != http.StatusUnauthorized || e.Error.Code != "invalid_identity" {
		t.Errorf("consent: required site: %d %s, want 401 invalid_identity", res.status, res.body)
	}
}
