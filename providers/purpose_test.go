package providers

import (
	"slices"
	"testing"

	"github.com/eventrelay/relay/strictjson"
)

// TestPurposesAndEventNames: every route has its documented consent purpose, and
// EventNames reads the field each provider names its events with (docs/api.md, "Event
// filters and consent").
func TestPurposesAndEventNames(t *testing.T) {
	purpose := map[string]string{
		"linkrunner/capture-event": PurposeAttribution, "linkrunner/capture-payment": PurposeAttribution,
		"ens/impression": PurposeAds, "ens/click": PurposeAds,
		"brevo/events": PurposeMarketing, "brevo/track-event": PurposeMarketing,
		"bannerflex/banner-events": PurposeAds, "cardlytics/client-events": PurposeAds,
	}
	ops := map[string]*Op{}
	for _, p := range All() {
		for _, op := range p.Ops(p.NewSection()) {
			ops[op.Route] = op
			if want, ok := purpose[op.Route]; !ok || op.Purpose != want {
				t.Errorf("%s: purpose %q, want %q (add new routes to this table and docs/api.md)", op.Route, op.Purpose, want)
			}
		}
	}
	for _, c := range []struct {
		route, body string
		want        []string
	}{
		{"linkrunner/capture-event", `{"event_name":"purchase_completed","user_id":"u"}`, []string{"purchase_completed"}},
		{"linkrunner/capture-payment", `{"user_id":"u","amount":1}`, nil},
		{"ens/click", `{"campaignId":1,"placement":"p"}`, nil},
		{"brevo/events", `{"event_name":"cart_updated","identifiers":{"ext_id":"x"}}`, []string{"cart_updated"}},
		{"brevo/track-event", `{"email":"a@example.com","event":"cart_updated"}`, []string{"cart_updated"}},
		{"bannerflex/banner-events", `{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","event":"click"}`, []string{"click"}},
		{"cardlytics/client-events", `{"clientEvents":[{"clientEvent":"AdViewableImpression"},{"clientEvent":"UrlLinkClicked"}]}`,
			[]string{"AdViewableImpression", "UrlLinkClicked"}},
	} {
		v, err := strictjson.Parse([]byte(c.body), strictjson.DefaultMaxDepth)
		if err != nil {
			t.Fatal(err)
		}
		op := ops[c.route]
		if got := op.EventNames(&v); !slices.Equal(got, c.want) || op.HasNames() != (c.want != nil) {
			t.Errorf("%s: EventNames = %q, HasNames %v; want %q", c.route, got, op.HasNames(), c.want)
		}
	}
}
