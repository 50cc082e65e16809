package ingest

import (
	"encoding/json"
	"maps"
	"testing"

	"github.com/eventrelay/relay/config"
)

func TestNameFilter(t *testing.T) {
	if f := newNameFilter(config.EventFilter{}); f != nil {
		t.Fatalf("a filter without patterns compiles to %+v, want nil (nothing to check)", f)
	}
	f := newNameFilter(config.EventFilter{
		Allow: []string{"purchase*", "click", "Ad*"},
		Deny:  []string{"purchase_test*", "click_debug", "AdViewableImpression"},
	})
	for _, c := range []struct{ name, want string }{
		{"purchase", ""},
		{"purchase_completed", ""},
		{"click", ""},
		{"purchase_test", reasonDeny},        // deny wins over the allow prefix
		{"purchase_test_42", reasonDeny},     // prefix
		{"AdViewableImpression", reasonDeny}, // exact deny inside an allowed prefix
		{"AdInteraction", ""},
		{"click_debug", reasonDeny},    // denied, and not allowed either: deny is the reason
		{"clicks", reasonNotAllowed},   // "click" is exact, not a prefix
		{"Purchase", reasonNotAllowed}, // case matters: names are compared as sent
		{"", reasonNotAllowed},
		{"signup", reasonNotAllowed},
	} {
		if got := f.reason(c.name); got != c.want {
			t.Errorf("reason(%q) = %q, want %q", c.name, got, c.want)
		}
	}

	denyOnly := newNameFilter(config.EventFilter{Deny: []string{"debug_*"}})
	for _, c := range []struct{ name, want string }{{"debug_x", reasonDeny}, {"debug_", reasonDeny}, {"debug", ""}, {"anything", ""}} {
		if got := denyOnly.reason(c.name); got != c.want {
			t.Errorf("deny only: reason(%q) = %q, want %q (an empty allow lets everything through)", c.name, got, c.want)
		}
	}
	all := newNameFilter(config.EventFilter{Allow: []string{"*"}, Deny: []string{"x"}})
	if all.reason("anything") != "" || all.reason("x") != reasonDeny {
		t.Error(`allow "*" must match every name, and deny still win`)
	}
}

func TestNameFilterWholeRequest(t *testing.T) {
	f := newNameFilter(config.EventFilter{Allow: []string{"A*"}, Deny: []string{"AB"}})
	for _, c := range []struct {
		names []string
		want  string
	}{
		{nil, ""}, // a route without names passes
		{[]string{"A1", "A2"}, ""},
		{[]string{"A1", "Z"}, reasonNotAllowed},
		{[]string{"Z", "AB"}, reasonDeny}, // deny outranks not_allowed whatever the order
		{[]string{"AB", "Z"}, reasonDeny},
	} {
		if got := f.reasonAll(c.names); got != c.want {
			t.Errorf("reasonAll(%q) = %q, want %q", c.names, got, c.want)
		}
	}
}

func TestParseConsent(t *testing.T) {
	for _, c := range []struct {
		in   string
		want consentSet
	}{
		{"", consentSet{}},
		{"   ", consentSet{}},
		{"ads=1", consentSet{"ads": true}},
		{"ads=1,analytics=0", consentSet{"ads": true, "analytics": false}},
		{" ads = 1 , marketing=0 ", consentSet{"ads": true, "marketing": false}},
		{"ad_personalisation-v2=1", consentSet{"ad_personalisation-v2": true}},
	} {
		got, err := parseConsent([]byte(c.in))
		if err != nil || !maps.Equal(got, c.want) {
			t.Errorf("parseConsent(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{
		"ads", "ads=", "=1", "ads=yes", "ads=true", "ads=2", "ads=10", "ads=1,", ",ads=1", "ads=1,,analytics=1",
		"Ads=1", "ads;analytics=1", "ads=1;analytics=0", "ads=1,ads=0", "ad s=1", "ads=1=1",
		"ads\x00=1",
	} {
		if got, err := parseConsent([]byte(in)); err == nil {
			t.Errorf("parseConsent(%q) = %v, want an error", in, got)
		}
	}
	many := []byte("p0=1")
	for i := 1; i <= maxConsentPurposes; i++ {
		many = append(many, ",p"...)
		many = append(many, byte('a'+i%26), byte('a'+i/26), '=', '1')
	}
	if _, err := parseConsent(many); err == nil {
		t.Errorf("%d purposes accepted, cap %d", maxConsentPurposes+1, maxConsentPurposes)
	}
}

func TestParseConsentClaim(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want consentSet
	}{
		{`"ads=1,analytics=0"`, consentSet{"ads": true, "analytics": false}},
		{`{"ads":true,"marketing":false}`, consentSet{"ads": true, "marketing": false}},
		{`{}`, consentSet{}},
	} {
		got, err := parseConsentClaim(json.RawMessage(c.raw))
		if err != nil || !maps.Equal(got, c.want) {
			t.Errorf("parseConsentClaim(%s) = %v, %v; want %v", c.raw, got, err, c.want)
		}
	}
	for _, raw := range []string{`"ads=yes"`, `{"ads":1}`, `{"Ads":true}`, `["ads"]`, `true`, `12`} {
		if got, err := parseConsentClaim(json.RawMessage(raw)); err == nil {
			t.Errorf("parseConsentClaim(%s) = %v, want an error", raw, got)
		}
	}
}

func TestConsentGranted(t *testing.T) {
	for _, c := range []struct {
		stated, token consentSet
		want          bool
	}{
		{nil, nil, false}, // nothing stated: not granted
		{consentSet{"ads": true}, nil, true},
		{nil, consentSet{"ads": true}, true},
		{consentSet{"analytics": true}, nil, false}, // another purpose
		{consentSet{"ads": false}, nil, false},
		{consentSet{"ads": true}, consentSet{"ads": false}, false}, // the token refuses: a page cannot grant it back
		{consentSet{"ads": false}, consentSet{"ads": true}, false}, // withdrawn in the browser after the token was minted
		{consentSet{"ads": true}, consentSet{"ads": true}, true},
		{consentSet{}, consentSet{"ads": true, "x": false}, true},
	} {
		cs := consentState{stated: c.stated, token: c.token}
		if got := cs.granted("ads"); got != c.want {
			t.Errorf("stated %v, token %v: granted(ads) = %v, want %v", c.stated, c.token, got, c.want)
		}
	}
}
