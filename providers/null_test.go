package providers

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// nullCase is one route's full valid body (every documented field present) with the paths
// of its optional and required fields, and the objects whose members are the caller's own
// (free-form: event_data, event_properties, ...), which the walk below does not list.
type nullCase struct {
	route, body        string
	optional, required []string
	free               []string
}

// nullCases covers every route: TestNullRefusedInEveryField fails, naming the route, when
// one is missing, and when a body holds a field that is neither listed nor free-form.
func nullCases() []nullCase {
	const (
		banner = `"bannerId":"3f2504e0-4f89-41d3-9a0c-0305e82c3301"`
		meta   = "clientEvents[0].clientEventMetadata."
		item   = "clientEvents[0]."
	)
	ens := nullCase{
		body:     `{"campaignId":1,"placement":"header_banner","location":"US","device":"mobile"}`,
		optional: []string{"location", "device"},
		required: []string{"campaignId", "placement"},
	}
	impression, click := ens, ens
	impression.route, click.route = "ens/impression", "ens/click"
	return []nullCase{{
		route:    "linkrunner/capture-event",
		body:     `{"event_name":"purchase_completed","event_data":{"product_id":"ABC123","amount":149.99},"user_id":"user_12345"}`,
		optional: []string{"event_data", "event_data.amount"},
		required: []string{"event_name", "user_id"},
		free:     []string{"event_data"},
	}, {
		route: "linkrunner/capture-payment",
		body: `{"user_id":"user_12345","payment_id":"pay_001","amount":249.99,"type":"FIRST_PAYMENT",` +
			`"status":"PAYMENT_COMPLETED","event_data":{"currency":"USD","amount":249.99}}`,
		optional: []string{"payment_id", "type", "status", "event_data", "event_data.amount"},
		required: []string{"user_id", "amount"},
		free:     []string{"event_data"},
	}, impression, click, {
		route: "brevo/events",
		body: `{"event_name":"order_created","event_date":"2024-02-06T20:59:23.383Z","identifiers":{"contact_id":12,` +
			`"email_id":"jane.doe@example.com","ext_id":"e1","phone_id":"+33612345678","whatsapp_id":"+33612345678",` +
			`"landline_number_id":"+33112345678"},"contact_properties":{"AGE":32},"event_properties":{"duration":142},` +
			`"object":{"type":"order"}}`,
		optional: []string{"event_date", "contact_properties", "event_properties", "object", "identifiers.contact_id",
			"identifiers.email_id", "identifiers.ext_id", "identifiers.phone_id", "identifiers.whatsapp_id",
			"identifiers.landline_number_id", "contact_properties.AGE"},
		required: []string{"event_name", "identifiers"},
		free:     []string{"contact_properties", "event_properties", "object"},
	}, {
		route: "brevo/track-event",
		body: `{"email":"jane.doe@example.com","event":"cart_updated","eventdata":{"id":"cart-1",` +
			`"data":{"added_product":[{"price":"50.00"}]}},"properties":{"additionalProp":"string"}}`,
		optional: []string{"properties", "eventdata", "eventdata.id", "eventdata.data"},
		required: []string{"email", "event"},
		free:     []string{"properties", "eventdata.data"},
	}, {
		route:    "bannerflex/banner-events",
		body:     `{` + banner + `,"event":"impression","campaignId":"bnrflx-a1b2c3d4"}`,
		optional: []string{"campaignId", "metricId"}, // metricId: set to null, though impressions take none
		required: []string{"bannerId", "event"},
	}, {
		route:    "bannerflex/banner-events",
		body:     `{` + banner + `,"event":"custom","metricId":"bnrflx-cta","campaignId":"bnrflx-a1b2c3d4"}`,
		optional: []string{"campaignId"},
		required: []string{"bannerId", "event", "metricId"},
	}, {
		route: "cardlytics/client-events",
		body: `{"clientEvents":[{"clientEventId":"2e08d638-04e2-4561-b56a-ca32cfff6203","clientEventType":"AdInteraction",` +
			`"clientEvent":"ActivateOffer","clientEventTimestamp":"2023-03-11T08:00:00Z","clientEventMetadata":{` +
			`"serveToken":"91e471aed3c04b81bee792f23ad4859d","section":"LatestOffers","channel":"OLB",` +
			`"imageSlots":["logo"],"categoryId":"1","curationId":"22","displayPosition":2}}]}`,
		optional: []string{item + "clientEventId", meta + "serveToken", meta + "imageSlots", meta + "categoryId",
			meta + "curationId", meta + "displayPosition"},
		// clientEventMetadata is required for ad events; for the other types the
		// documentation itself sends null, which stays accepted (TestDocExamplesAccepted).
		required: []string{"clientEvents", item + "clientEventType", item + "clientEvent", item + "clientEventTimestamp",
			item + "clientEventMetadata", meta + "section", meta + "channel"},
	}}
}

// TestNullRefusedInEveryField sets each field of each route's valid body to null: an
// optional field is refused as invalid_field "must not be null", a required one as
// missing_field, both naming the field.
func TestNullRefusedInEveryField(t *testing.T) {
	ops := opsByRoute(t, allProviders())
	covered := map[string]bool{}
	for _, c := range nullCases() {
		covered[c.route] = true
		t.Run(c.route, func(t *testing.T) {
			if _, err := validate(t, ops, c.route, c.body, backendID()); err != nil {
				t.Fatalf("base body refused: %v", err)
			}
			for _, p := range nullWalk(t, c.body) {
				inFree := slices.ContainsFunc(c.free, func(f string) bool { return strings.HasPrefix(p, f+".") })
				if !inFree && !slices.Contains(c.optional, p) && !slices.Contains(c.required, p) {
					t.Errorf("field %s of the body is in neither optional nor required", p)
				}
			}
			for _, p := range c.optional {
				nullExpect(t, ops, c.route, nullAt(t, c.body, p), CodeInvalidField, p, p+" must not be null")
			}
			for _, p := range c.required {
				nullExpect(t, ops, c.route, nullAt(t, c.body, p), CodeMissingField, p, p+" ")
			}
		})
	}
	for route := range ops {
		if !covered[route] {
			t.Errorf("route %s has no entry in nullCases", route)
		}
	}
}

func nullExpect(t *testing.T, ops map[string]*Op, route, body, code, field, msg string) {
	t.Helper()
	_, err := validate(t, ops, route, body, backendID())
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Code != code || fe.Field != field || !strings.HasPrefix(fe.Message, msg) {
		t.Errorf("%s: got %v (%+v), want %s at %s, message %q...", body, err, fe, code, field, msg)
	}
}

// nullDecode decodes body keeping numbers as written.
func nullDecode(t *testing.T, body string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// nullAt returns body with the member at path ("a.b[0].c") set to null.
func nullAt(t *testing.T, body, path string) string {
	t.Helper()
	root := nullDecode(t, body)
	cur := root
	parts := strings.Split(strings.ReplaceAll(path, "[", ".["), ".")
	for i, p := range parts {
		last := i == len(parts)-1
		if idx, ok := strings.CutPrefix(p, "["); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(idx, "]"))
			cur = cur.([]any)[n]
			continue
		}
		obj, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("%s: %s is not inside an object", body, path)
		}
		if last {
			obj[p] = nil
		} else {
			cur = obj[p]
		}
	}
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(root); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// nullWalk lists the paths of every object member in body, nested ones included.
func nullWalk(t *testing.T, body string) []string {
	t.Helper()
	var out []string
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch v := v.(type) {
		case map[string]any:
			for k, m := range v {
				p := k
				if path != "" {
					p = path + "." + k
				}
				out = append(out, p)
				walk(m, p)
			}
		case []any:
			for i, m := range v {
				walk(m, path+"["+strconv.Itoa(i)+"]")
			}
		}
	}
	walk(nullDecode(t, body), "")
	return out
}
