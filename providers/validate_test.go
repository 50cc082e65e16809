package providers

import (
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/strictjson"
)

// allProviders enables every provider, Brevo with both keys.
func allProviders() config.Providers {
	return enable(&LinkrunnerConfig{ServerKey: "lr"}, &ENSConfig{APIKey: "ens"},
		&BrevoConfig{APIKey: "v3", MAKey: "ma"}, &BannerFlexConfig{}, &CardlyticsConfig{})
}

// enable returns the providers of sections, each enabled under the name of its type.
func enable(sections ...Section) config.Providers {
	p := config.NewProviders(Specs())
	for _, sec := range sections {
		for _, d := range All() {
			if reflect.TypeOf(d.NewSection()) == reflect.TypeOf(sec) {
				p.Enable(d.Name, sec)
			}
		}
	}
	return p
}

func opsByRoute(t testing.TB, p config.Providers) map[string]*Op {
	t.Helper()
	ops := map[string]*Op{}
	for _, op := range Ops(p) {
		ops[op.Route] = op
	}
	return ops
}

// backendID is the identity of a client-token caller: nothing signed, the Cardlytics
// customer from X-Relay-Customer-Id.
func backendID() Identity { return Identity{CustomerID: "cust-42"} }

// signedID is the identity of a site with a verified identity token.
func signedID() Identity {
	return Identity{UserID: "user_1", Email: "jane@example.com", CustomerID: "cust-7", Signed: true}
}

func validate(t testing.TB, ops map[string]*Op, route, body string, id Identity) (Event, error) {
	t.Helper()
	op := ops[route]
	if op == nil {
		t.Fatalf("no op for route %s", route)
	}
	v, err := strictjson.Parse([]byte(body), 0)
	if err != nil {
		t.Fatalf("strictjson.Parse(%s): %v", body, err)
	}
	return op.Validate(v, id)
}

// vcase is one body for one route: accepted when code is "", else refused with code at field.
type vcase struct {
	name, route, body string
	code, field       string
	id                *Identity // nil: backendID()
}

func runCases(t *testing.T, ops map[string]*Op, cases []vcase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := backendID()
			if c.id != nil {
				id = *c.id
			}
			_, err := validate(t, ops, c.route, c.body, id)
			if c.code == "" {
				if err != nil {
					t.Fatalf("refused %s: %v", c.body, err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("%s: got %v, want a *FieldError %s at %q", c.body, err, c.code, c.field)
			}
			if fe.Code != c.code || fe.Field != c.field {
				t.Fatalf("%s: got %s at %q (%s), want %s at %q", c.body, fe.Code, fe.Field, fe.Message, c.code, c.field)
			}
			if c.field != "" && !strings.HasPrefix(fe.Message, c.field+" ") {
				t.Fatalf("message %q does not start with the field %q", fe.Message, c.field)
			}
		})
	}
}

func TestRoutesMatchConfig(t *testing.T) {
	var routes []string
	for _, op := range Ops(allProviders()) {
		routes = append(routes, op.Route)
	}
	p := allProviders()
	if want := p.RouteNames(); !slices.Equal(routes, want) {
		t.Fatalf("Ops routes %v, config's RouteNames %v", routes, want)
	}
}

func TestBrevoRoutesFollowKeys(t *testing.T) {
	for _, c := range []struct {
		cfg  BrevoConfig
		want []string
	}{
		{BrevoConfig{APIKey: "k"}, []string{"brevo/events"}},
		{BrevoConfig{MAKey: "m"}, []string{"brevo/track-event"}},
		{BrevoConfig{}, nil},
	} {
		var got []string
		for _, op := range Ops(enable(&c.cfg)) {
			got = append(got, op.Route)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("brevo %+v: routes %v, want %v", c.cfg, got, c.want)
		}
	}
}

func TestDocExamplesAccepted(t *testing.T) {
	ops := opsByRoute(t, allProviders())
	for _, ex := range docExamples() {
		t.Run(ex.name, func(t *testing.T) {
			ev, err := validate(t, ops, ex.route, ex.body, backendID())
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if ev.Changed {
				t.Fatal("an unsigned body must be forwarded as received")
			}
		})
	}
}

func TestLinkrunner(t *testing.T) {
	const ev, pay = "linkrunner/capture-event", "linkrunner/capture-payment"
	runCases(t, opsByRoute(t, allProviders()), []vcase{
		{name: "event minimal", route: ev, body: `{"event_name":"signup","user_id":"u1"}`},
		{name: "negative event amount", route: ev, body: `{"event_name":"refund","event_data":{"amount":-5},"user_id":"u1"}`},
		{name: "free text with control chars", route: ev, body: `{"event_name":"x","event_data":{"note":"a\nb"},"user_id":"u1"}`},
		{name: "event_name missing", route: ev, body: `{"user_id":"u1"}`, code: CodeMissingField, field: "event_name"},
		{name: "event_name empty", route: ev, body: `{"event_name":" ","user_id":"u1"}`, code: CodeMissingField, field: "event_name"},
		{name: "event_name null", route: ev, body: `{"event_name":null,"user_id":"u1"}`, code: CodeMissingField, field: "event_name"},
		{name: "event_name number", route: ev, body: `{"event_name":1,"user_id":"u1"}`, code: CodeInvalidField, field: "event_name"},
		{name: "event_name too long", route: ev, body: `{"event_name":"` + strings.Repeat("é", 256) + `","user_id":"u1"}`, code: CodeInvalidField, field: "event_name"},
		{name: "event_name control", route: ev, body: `{"event_name":"a\u0000","user_id":"u1"}`, code: CodeInvalidField, field: "event_name"},
		{name: "user_id missing", route: ev, body: `{"event_name":"x"}`, code: CodeMissingField, field: "user_id"},
		{name: "user_id number", route: ev, body: `{"event_name":"x","user_id":12345}`, code: CodeInvalidField, field: "user_id"},
		{name: "user_id newline", route: ev, body: `{"event_name":"x","user_id":"u\r\n1"}`, code: CodeInvalidField, field: "user_id"},
		{name: "event_data string", route: ev, body: `{"event_name":"x","event_data":"{}","user_id":"u1"}`, code: CodeInvalidField, field: "event_data"},
		{name: "amount string", route: ev, body: `{"event_name":"x","event_data":{"amount":"12.5"},"user_id":"u1"}`, code: CodeInvalidField, field: "event_data.amount"},
		{name: "amount null", route: ev, body: `{"event_name":"x","event_data":{"amount":null},"user_id":"u1"}`, code: CodeInvalidField, field: "event_data.amount"},
		{name: "amount object", route: ev, body: `{"event_name":"x","event_data":{"amount":{"v":1}},"user_id":"u1"}`, code: CodeInvalidField, field: "event_data.amount"},
		{name: "api_key", route: ev, body: `{"event_name":"x","user_id":"u1","api_key":"k"}`, code: CodeUnknownField, field: "api_key"},
		{name: "url", route: ev, body: `{"event_name":"x","user_id":"u1","url":"https://evil.example"}`, code: CodeUnknownField, field: "url"},
		{name: "destination", route: ev, body: `{"event_name":"x","user_id":"u1","destination":"x"}`, code: CodeUnknownField, field: "destination"},
		{name: "case variant", route: ev, body: `{"event_name":"x","User_Id":"u1"}`, code: CodeUnknownField, field: "User_Id"},
		{name: "body array", route: ev, body: `[]`, code: CodeInvalidField, field: ""},

		{name: "payment minimal", route: pay, body: `{"user_id":"u1","amount":0}`},
		{name: "payment every type", route: pay, body: `{"user_id":"u1","amount":10,"type":"DEFAULT","status":"PAYMENT_CANCELLED"}`},
		{name: "payment user_id missing", route: pay, body: `{"amount":1}`, code: CodeMissingField, field: "user_id"},
		{name: "payment amount missing", route: pay, body: `{"user_id":"u1"}`, code: CodeMissingField, field: "amount"},
		{name: "payment amount string", route: pay, body: `{"user_id":"u1","amount":"12.5"}`, code: CodeInvalidField, field: "amount"},
		{name: "payment amount negative", route: pay, body: `{"user_id":"u1","amount":-1}`, code: CodeInvalidField, field: "amount"},
		{name: "payment type", route: pay, body: `{"user_id":"u1","amount":1,"type":"BONUS"}`, code: CodeInvalidField, field: "type"},
		{name: "payment type case", route: pay, body: `{"user_id":"u1","amount":1,"type":"default"}`, code: CodeInvalidField, field: "type"},
		{name: "payment type number", route: pay, body: `{"user_id":"u1","amount":1,"type":1}`, code: CodeInvalidField, field: "type"},
		{name: "payment status", route: pay, body: `{"user_id":"u1","amount":1,"status":"DONE"}`, code: CodeInvalidField, field: "status"},
		{name: "payment_id number", route: pay, body: `{"user_id":"u1","amount":1,"payment_id":7}`, code: CodeInvalidField, field: "payment_id"},
		{name: "payment_id empty", route: pay, body: `{"user_id":"u1","amount":1,"payment_id":""}`, code: CodeInvalidField, field: "payment_id"},
		{name: "payment event_data amount", route: pay, body: `{"user_id":"u1","amount":1,"event_data":{"amount":"1"}}`, code: CodeInvalidField, field: "event_data.amount"},
		{name: "payment event_data array", route: pay, body: `{"user_id":"u1","amount":1,"event_data":[]}`, code: CodeInvalidField, field: "event_data"},
		{name: "payment currency", route: pay, body: `{"user_id":"u1","amount":1,"currency":"USD"}`, code: CodeUnknownField, field: "currency"},
		{name: "payment api_key", route: pay, body: `{"user_id":"u1","amount":1,"api_key":"k"}`, code: CodeUnknownField, field: "api_key"},
	})
}

func TestENS(t *testing.T) {
	const click = "ens/click"
	runCases(t, opsByRoute(t, allProviders()), []vcase{
		{name: "minimal", route: click, body: `{"campaignId":7,"placement":"article_inline"}`},
		{name: "campaignId missing", route: click, body: `{"placement":"p"}`, code: CodeMissingField, field: "campaignId"},
		{name: "campaignId string", route: click, body: `{"campaignId":"1","placement":"p"}`, code: CodeInvalidField, field: "campaignId"},
		{name: "placement missing", route: click, body: `{"campaignId":1}`, code: CodeMissingField, field: "placement"},
		{name: "location", route: click, body: `{"campaignId":1,"placement":"p","location":"us"}`, code: CodeInvalidField, field: "location"},
		{name: "device", route: click, body: `{"campaignId":1,"placement":"p","device":"phone"}`, code: CodeInvalidField, field: "device"},
		{name: "api_key", route: click, body: `{"campaignId":1,"placement":"p","api_key":"k"}`, code: CodeUnknownField, field: "api_key"},
	})
}

func TestBannerFlex(t *testing.T) {
	const r, banner = "bannerflex/banner-events", `"bannerId":"3f2504e0-4f89-41d3-9a0c-0305e82c3301"`
	runCases(t, opsByRoute(t, allProviders()), []vcase{
		{name: "no campaign", route: r, body: `{` + banner + `,"event":"impression"}`},
		{name: "campaign max", route: r, body: `{` + banner + `,"event":"click","campaignId":"bnrflx-` + strings.Repeat("a", 64) + `"}`},
		// No document allows null in any field: a null is refused, not read as absent.
		{name: "metricId null on click", route: r, body: `{` + banner + `,"event":"click","metricId":null}`, code: CodeInvalidField, field: "metricId"},
		{name: "bannerId missing", route: r, body: `{"event":"click"}`, code: CodeMissingField, field: "bannerId"},
		{name: "bannerId placeholder", route: r, body: `{"bannerId":"your-banner-uuid","event":"click"}`, code: CodeInvalidField, field: "bannerId"},
		{name: "bannerId no hyphens", route: r, body: `{"bannerId":"3f2504e04f8941d39a0c0305e82c3301","event":"click"}`, code: CodeInvalidField, field: "bannerId"},
		{name: "bannerId braces", route: r, body: `{"bannerId":"{3f2504e0-4f89-41d3-9a0c-0305e82c3301}","event":"click"}`, code: CodeInvalidField, field: "bannerId"},
		{name: "bannerId number", route: r, body: `{"bannerId":1,"event":"click"}`, code: CodeInvalidField, field: "bannerId"},
		{name: "event missing", route: r, body: `{` + banner + `}`, code: CodeMissingField, field: "event"},
		{name: "event bad", route: r, body: `{` + banner + `,"event":"view"}`, code: CodeInvalidField, field: "event"},
		{name: "event case", route: r, body: `{` + banner + `,"event":"Click"}`, code: CodeInvalidField, field: "event"},
		{name: "campaign prefix", route: r, body: `{` + banner + `,"event":"click","campaignId":"campaign-1"}`, code: CodeInvalidField, field: "campaignId"},
		{name: "campaign empty suffix", route: r, body: `{` + banner + `,"event":"click","campaignId":"bnrflx-"}`, code: CodeInvalidField, field: "campaignId"},
		{name: "campaign bad char", route: r, body: `{` + banner + `,"event":"click","campaignId":"bnrflx-a_b"}`, code: CodeInvalidField, field: "campaignId"},
		{name: "campaign too long", route: r, body: `{` + banner + `,"event":"click","campaignId":"bnrflx-` + strings.Repeat("a", 65) + `"}`, code: CodeInvalidField, field: "campaignId"},
		{name: "campaign number", route: r, body: `{` + banner + `,"event":"click","campaignId":5}`, code: CodeInvalidField, field: "campaignId"},
		{name: "custom metric missing", route: r, body: `{` + banner + `,"event":"custom"}`, code: CodeMissingField, field: "metricId"},
		{name: "custom metric bad", route: r, body: `{` + banner + `,"event":"custom","metricId":"signup"}`, code: CodeInvalidField, field: "metricId"},
		{name: "metric on click", route: r, body: `{` + banner + `,"event":"click","metricId":"bnrflx-cta"}`, code: CodeInvalidField, field: "metricId"},
		{name: "destination", route: r, body: `{` + banner + `,"event":"click","destination":"x"}`, code: CodeUnknownField, field: "destination"},
		{name: "url", route: r, body: `{` + banner + `,"event":"click","url":"x"}`, code: CodeUnknownField, field: "url"},
	})
}

// linkrunnerSigned etc. check that a signed identity replaces body values, and that an
// unsigned body keeps its own.
func TestIdentityOverride(t *testing.T) {
	ops := opsByRoute(t, allProviders())
	signed := signedID()
	noUser := signed
	noUser.UserID = ""
	emailOnly := Identity{Email: "jane@example.com", Signed: true}
	none := Identity{Signed: true}
	badEmail := Identity{Email: "not an address", Signed: true}
	for _, c := range []struct {
		name, route, body string
		id                Identity
		want              string // body after validation; "" means the body as sent
		changed           bool
	}{
		{"linkrunner replaces user_id", "linkrunner/capture-event", `{"event_name":"x","user_id":"attacker"}`, signed,
			`{"event_name":"x","user_id":"user_1"}`, true},
		{"linkrunner adds user_id", "linkrunner/capture-payment", `{"amount":5}`, signed,
			`{"amount":5,"user_id":"user_1"}`, true},
		{"linkrunner same user_id", "linkrunner/capture-event", `{"event_name":"x","user_id":"user_1"}`, signed, "", false},
		{"linkrunner unsigned keeps body", "linkrunner/capture-event", `{"event_name":"x","user_id":"body_user"}`,
			Identity{UserID: "other"}, "", false},
		{"brevo identifiers replaced entirely", "brevo/events",
			`{"event_name":"x","identifiers":{"email_id":"other@example.com","phone_id":"+33612345678"}}`, signed,
			`{"event_name":"x","identifiers":{"email_id":"jane@example.com","ext_id":"user_1"}}`, true},
		{"brevo identifiers added", "brevo/events", `{"event_name":"x"}`, emailOnly,
			`{"event_name":"x","identifiers":{"email_id":"jane@example.com"}}`, true},
		{"brevo identifiers same", "brevo/events", `{"event_name":"x","identifiers":{"email_id":"jane@example.com"}}`, emailOnly, "", false},
		{"brevo identifiers from sub only", "brevo/events", `{"event_name":"x","identifiers":{"contact_id":3}}`,
			Identity{UserID: "u9", Signed: true}, `{"event_name":"x","identifiers":{"ext_id":"u9"}}`, true},
		{"brevo unsigned keeps identifiers", "brevo/events", `{"event_name":"x","identifiers":{"phone_id":"+33612345678"}}`,
			Identity{Email: "jane@example.com"}, "", false},
		{"brevo legacy replaces email", "brevo/track-event", `{"email":"other@example.com","event":"x"}`, signed,
			`{"email":"jane@example.com","event":"x"}`, true},
		{"brevo legacy adds email", "brevo/track-event", `{"event":"x"}`, signed, `{"event":"x","email":"jane@example.com"}`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ev, err := validate(t, ops, c.route, c.body, c.id)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			want := c.want
			if want == "" {
				v, _ := strictjson.Parse([]byte(c.body), 0)
				want = string(v.AppendJSON(nil))
			}
			if got := string(ev.Body.AppendJSON(nil)); got != want || ev.Changed != c.changed {
				t.Fatalf("body %s changed %v, want %s changed %v", got, ev.Changed, want, c.changed)
			}
		})
	}
	runCases(t, ops, []vcase{
		{name: "linkrunner token without sub", route: "linkrunner/capture-event", body: `{"event_name":"x","user_id":"u"}`,
			id: &noUser, code: CodeMissingField, field: "user_id"},
		{name: "linkrunner unsigned without user", route: "linkrunner/capture-event", body: `{"event_name":"x"}`,
			id: &Identity{UserID: "u"}, code: CodeMissingField, field: "user_id"},
		{name: "brevo token without email or sub", route: "brevo/events", body: `{"event_name":"x","identifiers":{"email_id":"a@example.com"}}`,
			id: &none, code: CodeMissingField, field: "identifiers"},
		{name: "brevo token with bad email", route: "brevo/events", body: `{"event_name":"x"}`,
			id: &badEmail, code: CodeInvalidField, field: "identifiers.email_id"},
		{name: "brevo signed contact SMS", route: "brevo/events", body: `{"event_name":"x","contact_properties":{"sms":"+33612345678"}}`,
			id: &signed, code: CodeInvalidField, field: "contact_properties.sms"},
		{name: "brevo unsigned contact SMS", route: "brevo/events",
			body: `{"event_name":"x","identifiers":{"ext_id":"e"},"contact_properties":{"SMS":"+33612345678"}}`},
		{name: "brevo legacy signed EXT_ID property", route: "brevo/track-event", body: `{"event":"x","properties":{"EXT_ID":"other"}}`,
			id: &signed, code: CodeInvalidField, field: "properties.EXT_ID"},
		{name: "brevo legacy token without email", route: "brevo/track-event", body: `{"email":"a@example.com","event":"x"}`,
			id: &Identity{UserID: "u", Signed: true}, code: CodeMissingField, field: "email"},
		{name: "cardlytics without customer", route: "cardlytics/client-events", body: sessionEvents(1),
			id: &Identity{}, code: CodeMissingField, field: "X-Relay-Customer-Id"},
		{name: "cardlytics token without customer", route: "cardlytics/client-events", body: sessionEvents(1),
			id: &Identity{UserID: "u", Signed: true}, code: CodeMissingField, field: "X-Relay-Customer-Id"},
	})
}

func TestCardlyticsCustomer(t *testing.T) {
	ops := opsByRoute(t, allProviders())
	for _, id := range []Identity{backendID(), signedID(), {CustomerID: "cust@bank.example:1_a.b-c"}, {CustomerID: strings.Repeat("x", 128)}} {
		ev, err := validate(t, ops, "cardlytics/client-events", sessionEvents(1), id)
		if err != nil {
			t.Fatalf("customer %q refused: %v", id.CustomerID, err)
		}
		if ev.CustomerID != id.CustomerID || ev.Changed {
			t.Fatalf("customer %q: event has %q, changed %v", id.CustomerID, ev.CustomerID, ev.Changed)
		}
	}
	for _, c := range []string{"a\r\nX-Evil: 1", "a\x00", "a b", "é", strings.Repeat("x", 129), "a/b"} {
		_, err := validate(t, ops, "cardlytics/client-events", sessionEvents(1), Identity{CustomerID: c})
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Code != CodeInvalidField || fe.Field != "X-Relay-Customer-Id" {
			t.Errorf("customer %q: got %v, want invalid_field X-Relay-Customer-Id", c, err)
		}
	}
}

// sessionEvents returns a valid body of n SessionAction events without ids.
func sessionEvents(n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = `{"clientEventType":"SessionAction","clientEvent":"LogEnrollment","clientEventTimestamp":"2023-03-11T08:00:00Z"}`
	}
	return `{"clientEvents":[` + strings.Join(items, ",") + `]}`
}

func TestCardlyticsConfiguredEvents(t *testing.T) {
	body := `{"clientEvents":[{"clientEventType":"SessionAction","clientEvent":"LogOut","clientEventTimestamp":"2023-03-11T08:00:00Z"}]}`
	if _, err := validate(t, opsByRoute(t, allProviders()), "cardlytics/client-events", body, backendID()); err == nil {
		t.Fatal("LogOut accepted without configuration")
	}
	p := allProviders()
	p.Section(Cardlytics).(*CardlyticsConfig).ClientEvents = map[string][]string{"SessionAction": {"LogOut"}}
	ops := opsByRoute(t, p)
	if _, err := validate(t, ops, "cardlytics/client-events", body, backendID()); err != nil {
		t.Fatalf("configured LogOut refused: %v", err)
	}
	// The extra is per type, and the documented table is not changed for other configs.
	other := strings.Replace(body, "SessionAction", "CustomerProfileAction", 1)
	if _, err := validate(t, ops, "cardlytics/client-events", other, backendID()); err == nil {
		t.Fatal("LogOut accepted as a CustomerProfileAction")
	}
	if !slices.Equal(cardlyticsEvents["SessionAction"], []string{"UnParkAllOffers", "LogEnrollment", "RewardSummaryLinkClicked"}) {
		t.Fatalf("configuration changed the documented table: %v", cardlyticsEvents["SessionAction"])
	}
}

func TestCardlytics(t *testing.T) {
	const r = "cardlytics/client-events"
	meta := `"clientEventMetadata":{"section":"LatestOffers","channel":"OLB"}`
	item := func(extra string) string {
		return `{"clientEventType":"AdInteraction","clientEvent":"UrlLinkClicked",` +
			`"clientEventTimestamp":"2023-03-11T08:00:00.123+01:00"` + extra + `}`
	}
	ad := func(extra string) string { return `{"clientEvents":[` + item(extra) + `]}` }
	withMeta := func(m string) string {
		return ad(`,"clientEventMetadata":{"section":"LatestOffers","channel":"OLB"` + m + `}`)
	}
	item0 := "clientEvents[0]."
	runCases(t, opsByRoute(t, allProviders()), []vcase{
		{name: "minimal ad", route: r, body: ad("," + meta)},
		{name: "category section", route: r, body: ad(`,"clientEventMetadata":{"section":"GroceryCategory","channel":"MobileApp"}`)},
		{name: "fifty events", route: r, body: sessionEvents(50)},
		{name: "session metadata absent", route: r, body: sessionEvents(1)},
		{name: "clientEvents missing", route: r, body: `{}`, code: CodeMissingField, field: "clientEvents"},
		{name: "clientEvents object", route: r, body: `{"clientEvents":{}}`, code: CodeInvalidField, field: "clientEvents"},
		{name: "clientEvents empty", route: r, body: `{"clientEvents":[]}`, code: CodeInvalidField, field: "clientEvents"},
		{name: "fifty-one events", route: r, body: sessionEvents(51), code: CodeInvalidField, field: "clientEvents"},
		{name: "item not object", route: r, body: `{"clientEvents":["x"]}`, code: CodeInvalidField, field: "clientEvents[0]"},
		{name: "type missing", route: r, body: `{"clientEvents":[{"clientEvent":"LogEnrollment","clientEventTimestamp":"2023-03-11T08:00:00Z"}]}`,
			code: CodeMissingField, field: item0 + "clientEventType"},
		{name: "type bad", route: r, body: strings.Replace(sessionEvents(1), "SessionAction", "Session", 1), code: CodeInvalidField, field: item0 + "clientEventType"},
		{name: "event missing", route: r, body: strings.Replace(sessionEvents(1), `"clientEvent":"LogEnrollment",`, "", 1),
			code: CodeMissingField, field: item0 + "clientEvent"},
		{name: "event of other type", route: r, body: strings.Replace(sessionEvents(1), "LogEnrollment", "ParkOffer", 1),
			code: CodeInvalidField, field: item0 + "clientEvent"},
		{name: "event number", route: r, body: strings.Replace(sessionEvents(1), `"LogEnrollment"`, "1", 1),
			code: CodeInvalidField, field: item0 + "clientEvent"},
		{name: "timestamp missing", route: r, body: strings.Replace(sessionEvents(1), `,"clientEventTimestamp":"2023-03-11T08:00:00Z"`, "", 1),
			code: CodeMissingField, field: item0 + "clientEventTimestamp"},
		{name: "timestamp no zone", route: r, body: strings.Replace(sessionEvents(1), "08:00:00Z", "08:00:00", 1),
			code: CodeInvalidField, field: item0 + "clientEventTimestamp"},
		{name: "timestamp date only", route: r, body: strings.Replace(sessionEvents(1), "T08:00:00Z", "", 1),
			code: CodeInvalidField, field: item0 + "clientEventTimestamp"},
		{name: "id not guid", route: r, body: ad(`,"clientEventId":"123",` + meta), code: CodeInvalidField, field: item0 + "clientEventId"},
		{name: "id number", route: r, body: ad(`,"clientEventId":123,` + meta), code: CodeInvalidField, field: item0 + "clientEventId"},
		{name: "id repeated", route: r, code: CodeInvalidField, field: "clientEvents[1].clientEventId",
			body: strings.ReplaceAll(sessionEvents(2), `{"clientEventType"`, `{"clientEventId":"2e08d638-04e2-4561-b56a-ca32cfff6203","clientEventType"`)},
		{name: "metadata absent", route: r, body: ad(""), code: CodeMissingField, field: item0 + "clientEventMetadata"},
		{name: "metadata null", route: r, body: ad(`,"clientEventMetadata":null`), code: CodeMissingField, field: item0 + "clientEventMetadata"},
		{name: "metadata array", route: r, body: ad(`,"clientEventMetadata":[]`), code: CodeInvalidField, field: item0 + "clientEventMetadata"},
		{name: "metadata on session", route: r, code: CodeInvalidField, field: item0 + "clientEventMetadata",
			body: strings.Replace(sessionEvents(1), `"LogEnrollment"`, `"LogEnrollment",`+meta, 1)},
		{name: "section missing", route: r, body: ad(`,"clientEventMetadata":{"channel":"OLB"}`), code: CodeMissingField, field: item0 + "clientEventMetadata.section"},
		{name: "section empty", route: r, body: ad(`,"clientEventMetadata":{"section":"","channel":"OLB"}`), code: CodeMissingField, field: item0 + "clientEventMetadata.section"},
		{name: "section spaces", route: r, body: ad(`,"clientEventMetadata":{"section":"Latest Offers","channel":"OLB"}`), code: CodeInvalidField, field: item0 + "clientEventMetadata.section"},
		{name: "channel missing", route: r, body: ad(`,"clientEventMetadata":{"section":"Email"}`), code: CodeMissingField, field: item0 + "clientEventMetadata.channel"},
		{name: "channel bad", route: r, body: ad(`,"clientEventMetadata":{"section":"Email","channel":"Fax"}`), code: CodeInvalidField, field: item0 + "clientEventMetadata.channel"},
		{name: "imageSlots string", route: r, body: withMeta(`,"imageSlots":"logo"`), code: CodeInvalidField, field: item0 + "clientEventMetadata.imageSlots"},
		{name: "imageSlot number", route: r, body: withMeta(`,"imageSlots":["logo",1]`), code: CodeInvalidField, field: item0 + "clientEventMetadata.imageSlots[1]"},
		{name: "categoryId number", route: r, body: withMeta(`,"categoryId":1`), code: CodeInvalidField, field: item0 + "clientEventMetadata.categoryId"},
		{name: "curationId number", route: r, body: withMeta(`,"curationId":22`), code: CodeInvalidField, field: item0 + "clientEventMetadata.curationId"},
		{name: "serveToken number", route: r, body: withMeta(`,"serveToken":1`), code: CodeInvalidField, field: item0 + "clientEventMetadata.serveToken"},
		{name: "displayPosition negative", route: r, body: withMeta(`,"displayPosition":-1`), code: CodeInvalidField, field: item0 + "clientEventMetadata.displayPosition"},
		{name: "displayPosition fraction", route: r, body: withMeta(`,"displayPosition":1.5`), code: CodeInvalidField, field: item0 + "clientEventMetadata.displayPosition"},
		{name: "displayPosition string", route: r, body: withMeta(`,"displayPosition":"2"`), code: CodeInvalidField, field: item0 + "clientEventMetadata.displayPosition"},
		{name: "metadata unknown", route: r, body: withMeta(`,"url":"x"`), code: CodeUnknownField, field: item0 + "clientEventMetadata.url"},
		{name: "item unknown", route: r, body: ad(`,"sourceCustomerId":"c",` + meta), code: CodeUnknownField, field: item0 + "sourceCustomerId"},
		{name: "top api_key", route: r, body: `{"clientEvents":[],"api_key":"k"}`, code: CodeUnknownField, field: "api_key"},
		{name: "top destination", route: r, body: `{"destination":"x"}`, code: CodeUnknownField, field: "destination"},
		{name: "second item path", route: r, code: CodeInvalidField, field: "clientEvents[1].clientEventMetadata.channel",
			body: `{"clientEvents":[` + item(","+meta) + "," + item(`,"clientEventMetadata":{"section":"Email","channel":"Fax"}`) + `]}`},
	})
}

// bigProperties returns event_properties whose compact JSON is exactly n bytes.
func bigProperties(n int) string {
	return `{"p":"` + strings.Repeat("x", n-len(`{"p":""}`)) + `"}`
}

func TestBrevo(t *testing.T) {
	const v3, legacy = "brevo/events", "brevo/track-event"
	ids := `"identifiers":{"email_id":"jane@example.com"}`
	ev := func(extra string) string { return `{"event_name":"order_created",` + ids + extra + `}` }
	withIDs := func(x string) string { return `{"event_name":"x","identifiers":{` + x + `}}` }
	runCases(t, opsByRoute(t, allProviders()), []vcase{
		{name: "all identifiers", route: v3, body: withIDs(`"contact_id":12,"email_id":"a.b+c@sub.example.co.uk","ext_id":"e1",` +
			`"phone_id":"+33612345678","whatsapp_id":"+33612345678","landline_number_id":"+33112345678"`)},
		{name: "zone offset date", route: v3, body: ev(`,"event_date":"2024-01-24T17:39:57+01:00"`)},
		{name: "object", route: v3, body: ev(`,"object":{"type":"order","identifiers":{"id":"o-1"}}`)},
		{name: "properties at limit", route: v3, body: ev(`,"event_properties":` + bigProperties(50_000))},
		{name: "name missing", route: v3, body: `{` + ids + `}`, code: CodeMissingField, field: "event_name"},
		{name: "name spaces", route: v3, body: `{"event_name":"video played",` + ids + `}`, code: CodeInvalidField, field: "event_name"},
		{name: "name accent", route: v3, body: `{"event_name":"vidéo",` + ids + `}`, code: CodeInvalidField, field: "event_name"},
		{name: "name too long", route: v3, body: `{"event_name":"` + strings.Repeat("a", 256) + `",` + ids + `}`, code: CodeInvalidField, field: "event_name"},
		{name: "name number", route: v3, body: `{"event_name":5,` + ids + `}`, code: CodeInvalidField, field: "event_name"},
		{name: "identifiers missing", route: v3, body: `{"event_name":"x"}`, code: CodeMissingField, field: "identifiers"},
		{name: "identifiers empty", route: v3, body: withIDs(""), code: CodeMissingField, field: "identifiers"},
		{name: "identifier null", route: v3, body: withIDs(`"email_id":null`), code: CodeInvalidField, field: "identifiers.email_id"},
		{name: "identifiers string", route: v3, body: `{"event_name":"x","identifiers":"a@example.com"}`, code: CodeInvalidField, field: "identifiers"},
		{name: "identifier unknown", route: v3, body: withIDs(`"email":"a@example.com"`), code: CodeUnknownField, field: "identifiers.email"},
		{name: "email_id shape", route: v3, body: withIDs(`"email_id":"jane@"`), code: CodeInvalidField, field: "identifiers.email_id"},
		{name: "email_id two at", route: v3, body: withIDs(`"email_id":"a@b@example.com"`), code: CodeInvalidField, field: "identifiers.email_id"},
		{name: "email_id display name", route: v3, body: withIDs(`"email_id":"Jane <jane@example.com>"`), code: CodeInvalidField, field: "identifiers.email_id"},
		{name: "email_id number", route: v3, body: withIDs(`"email_id":1`), code: CodeInvalidField, field: "identifiers.email_id"},
		{name: "contact_id string", route: v3, body: withIDs(`"contact_id":"12"`), code: CodeInvalidField, field: "identifiers.contact_id"},
		{name: "contact_id zero", route: v3, body: withIDs(`"contact_id":0`), code: CodeInvalidField, field: "identifiers.contact_id"},
		{name: "contact_id fraction", route: v3, body: withIDs(`"contact_id":1.5`), code: CodeInvalidField, field: "identifiers.contact_id"},
		{name: "phone_id number", route: v3, body: withIDs(`"phone_id":33612345678`), code: CodeInvalidField, field: "identifiers.phone_id"},
		{name: "ext_id empty", route: v3, body: withIDs(`"ext_id":""`), code: CodeInvalidField, field: "identifiers.ext_id"},
		{name: "date bad", route: v3, body: ev(`,"event_date":"yesterday"`), code: CodeInvalidField, field: "event_date"},
		{name: "date number", route: v3, body: ev(`,"event_date":1706114397`), code: CodeInvalidField, field: "event_date"},
		{name: "contact_properties array", route: v3, body: ev(`,"contact_properties":[]`), code: CodeInvalidField, field: "contact_properties"},
		{name: "contact property array", route: v3, body: ev(`,"contact_properties":{"TAGS":["a"]}`), code: CodeInvalidField, field: "contact_properties.TAGS"},
		{name: "contact property null", route: v3, body: ev(`,"contact_properties":{"AGE":null}`), code: CodeInvalidField, field: "contact_properties.AGE"},
		{name: "event_properties string", route: v3, body: ev(`,"event_properties":"x"`), code: CodeInvalidField, field: "event_properties"},
		{name: "event_properties too big", route: v3, body: ev(`,"event_properties":` + bigProperties(50_001)), code: CodeInvalidField, field: "event_properties"},
		{name: "object string", route: v3, body: ev(`,"object":"order"`), code: CodeInvalidField, field: "object"},
		{name: "v3 api_key", route: v3, body: ev(`,"api_key":"k"`), code: CodeUnknownField, field: "api_key"},
		{name: "v3 url", route: v3, body: ev(`,"url":"x"`), code: CodeUnknownField, field: "url"},

		{name: "legacy minimal", route: legacy, body: `{"email":"a@example.com","event":"item_deleted"}`},
		{name: "legacy eventdata id", route: legacy, body: `{"email":"a@example.com","event":"x","eventdata":{"id":"cart:1","data":{}}}`},
		{name: "legacy email missing", route: legacy, body: `{"event":"x"}`, code: CodeMissingField, field: "email"},
		{name: "legacy email shape", route: legacy, body: `{"email":"jane","event":"x"}`, code: CodeInvalidField, field: "email"},
		{name: "legacy event missing", route: legacy, body: `{"email":"a@example.com"}`, code: CodeMissingField, field: "event"},
		{name: "legacy event object", route: legacy, body: `{"email":"a@example.com","event":{}}`, code: CodeInvalidField, field: "event"},
		{name: "legacy properties string", route: legacy, body: `{"email":"a@example.com","event":"x","properties":"a"}`, code: CodeInvalidField, field: "properties"},
		{name: "legacy reserved email", route: legacy, body: `{"email":"a@example.com","event":"x","properties":{"email":"b@example.com"}}`,
			code: CodeInvalidField, field: "properties.email"},
		{name: "legacy reserved EVENT", route: legacy, body: `{"email":"a@example.com","event":"x","properties":{"n":1,"EVENT":"y"}}`,
			code: CodeInvalidField, field: "properties.EVENT"},
		{name: "legacy eventdata unknown", route: legacy, body: `{"email":"a@example.com","event":"x","eventdata":{"items":[]}}`,
			code: CodeUnknownField, field: "eventdata.items"},
		{name: "legacy eventdata id number", route: legacy, body: `{"email":"a@example.com","event":"x","eventdata":{"id":5}}`,
			code: CodeInvalidField, field: "eventdata.id"},
		{name: "legacy eventdata data string", route: legacy, body: `{"email":"a@example.com","event":"x","eventdata":{"data":"x"}}`,
			code: CodeInvalidField, field: "eventdata.data"},
		{name: "legacy ma-key", route: legacy, body: `{"email":"a@example.com","event":"x","ma-key":"k"}`, code: CodeUnknownField, field: "ma-key"},
		{name: "legacy destination", route: legacy, body: `{"email":"a@example.com","event":"x","destination":"x"}`, code: CodeUnknownField, field: "destination"},
	})
}

func TestShapes(t *testing.T) {
	for s, want := range map[string]bool{
		"jane@example.com": true, "a.b+c@sub.example.co.uk": true, "josé@exämple.fr": true, "o'brien@example.ie": true,
		"": false, "jane": false, "@example.com": false, "jane@": false, "jane@localhost": false, "jane@1.2.3.4": false,
		".jane@example.com": false, "ja..ne@example.com": false, "jane@-example.com": false, "jane@example..com": false,
		"ja ne@example.com": false, "jane@exa mple.com": false, "\"jane\"@example.com": false, "jane@example.com\n": false,
		strings.Repeat("a", 65) + "@example.com": false, "a@" + strings.Repeat("a", 64) + ".com": false,
	} {
		if isEmail(s) != want {
			t.Errorf("isEmail(%q) = %v, want %v", s, !want, want)
		}
	}
	for _, s := range []string{"2023-03-11T08:00:00Z", "2024-02-06T20:59:23.383Z", "2024-01-24T17:39:57+01:00"} {
		if !isTimestamp(s) {
			t.Errorf("isTimestamp(%q) = false", s)
		}
	}
	for _, s := range []string{"2023-03-11", "2023-03-11 08:00:00Z", "2023-03-11T25:00:00Z", "2023-02-30T08:00:00Z", "1678521600"} {
		if isTimestamp(s) {
			t.Errorf("isTimestamp(%q) = true", s)
		}
	}
}

func TestOpClaims(t *testing.T) {
	want := map[string]struct {
		claim Claim
		money bool
	}{
		"linkrunner/capture-event": {ClaimUser, false}, "linkrunner/capture-payment": {ClaimUser, true},
		"ens/impression": {ClaimNone, false}, "ens/click": {ClaimNone, false},
		"brevo/events": {ClaimEmail, false}, "brevo/track-event": {ClaimEmail, false},
		"bannerflex/banner-events": {ClaimNone, false}, "cardlytics/client-events": {ClaimCustomer, false},
	}
	for _, op := range Ops(allProviders()) {
		if w := want[op.Route]; op.Identity != w.claim || op.Money != w.money {
			t.Errorf("%s: claim %q money %v, want %q %v", op.Route, op.Identity, op.Money, w.claim, w.money)
		}
	}
}

func TestCardlyticsEventTypesMatchTable(t *testing.T) {
	types := slices.Sorted(maps.Keys(cardlyticsEvents))
	if got := slices.Sorted(slices.Values(cardlyticsEventTypes())); !slices.Equal(got, types) {
		t.Fatalf("cardlyticsEventTypes %v, table has %v", got, types)
	}
}

// TestLinkrunnerRevenue: capture-event says when it carries revenue (event_data.amount),
// which ingest lets only backends and sites with revenue: true send.
func TestLinkrunnerRevenue(t *testing.T) {
	ops := opsByRoute(t, allProviders())
	for _, tc := range []struct{ route, body, want string }{
		{"linkrunner/capture-event", `{"event_name":"e","user_id":"u","event_data":{"amount":0}}`, "event_data.amount"},
		{"linkrunner/capture-event", `{"event_name":"e","user_id":"u","event_data":{"total_amount":5}}`, ""},
		{"linkrunner/capture-event", `{"event_name":"e","user_id":"u"}`, ""},
		// A money route already: sites must list it, so its amounts need no second flag.
		{"linkrunner/capture-payment", `{"user_id":"u","amount":1,"event_data":{"amount":1}}`, ""},
	} {
		ev, err := validate(t, ops, tc.route, tc.body, backendID())
		if err != nil || ev.Revenue != tc.want {
			t.Errorf("%s %s: Revenue %q, %v; want %q", tc.route, tc.body, ev.Revenue, err, tc.want)
		}
	}
}

func TestENSPlacementRefusesControlCharacters(t *testing.T) {
	ops := opsByRoute(t, allProviders())
	for _, body := range []string{`{"campaignId":1,"placement":"a\u0000b"}`, `{"campaignId":1,"placement":"a\nb"}`, `{"campaignId":1,"placement":"  "}`} {
		if _, err := validate(t, ops, "ens/click", body, backendID()); err == nil {
			t.Errorf("%s accepted", body)
		}
	}
}
