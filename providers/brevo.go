package providers

import (
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/strictjson"
)

// Brevo: v3 events and the legacy trackEvent tracker (docs/providers.md, "Brevo").

const (
	// brevoMaxName caps event names (documented for v3; the legacy event follows it).
	brevoMaxName = 255
	// brevoMaxID caps string identifiers, which Brevo does not document.
	brevoMaxID = 255
	// brevoMaxEventProperties is the documented "50 KB" of event_properties, read as
	// 50,000 bytes of compact JSON: the stricter reading is accepted under either one.
	brevoMaxEventProperties = 50_000
)

// brevoStringIdentifiers are the v3 identifiers that are plain strings (contact_id is an
// integer, email_id an address).
var brevoStringIdentifiers = []string{"ext_id", "phone_id", "whatsapp_id", "landline_number_id"}

// brevoIdentityAttributes are the contact attributes through which a property could attach
// another identity to the contact (Brevo upper-cases attribute names).
var brevoIdentityAttributes = []string{"EMAIL", "SMS", "WHATSAPP", "LANDLINE_NUMBER", "EXT_ID"}

// brevo describes Brevo: v3 events at base_url, the legacy tracker at tracker_url.
func brevo() *Provider {
	return &Provider{
		Name: Brevo, BaseURL: "https://api.brevo.com", RateLimit: 10,
		NewSection: func() Section { return new(BrevoConfig) },
		Ops: func(Section) []*Op {
			return []*Op{
				{Route: "brevo/events", Identity: ClaimEmail, Purpose: PurposeMarketing,
					names: nameField("event_name"), validate: validateBrevoEvent},
				{Route: "brevo/track-event", Identity: ClaimEmail, Purpose: PurposeMarketing,
					names: nameField("event"), validate: validateBrevoTrackEvent},
			}
		},
	}
}

// BrevoConfig is the providers.brevo section: v3 events at base_url
// (https://api.brevo.com), legacy trackEvent at tracker_url. Default rate_limit 10.
type BrevoConfig struct {
	config.Delivery `yaml:",inline"`
	// APIKey (header api-key) enables /v1/brevo/events.
	APIKey string `yaml:"api_key"`
	// MAKey (header ma-key) enables /v1/brevo/track-event.
	MAKey string `yaml:"ma_key"`
	// TrackerURL is the legacy tracker. Default "https://in-automate.brevo.com".
	TrackerURL string `yaml:"tracker_url"`
	// Batch sends v3 events through /v3/events/batch, up to 100 per request.
	Batch bool `yaml:"batch"`
}

// SetDefaults sets tracker_url.
func (c *BrevoConfig) SetDefaults() {
	config.OrDefault(&c.TrackerURL, "https://in-automate.brevo.com")
	c.TrackerURL = strings.TrimRight(c.TrackerURL, "/")
}

// Validate checks the keys and tracker_url.
func (c *BrevoConfig) Validate(v *config.Validator, path string) {
	if c.APIKey == "" && c.MAKey == "" {
		v.Add(path, "needs api_key (v3 events) or ma_key (legacy trackEvent), or both")
	}
	if c.APIKey != "" {
		v.Secret(path+".api_key", c.APIKey, 1)
	}
	if c.MAKey != "" {
		v.Secret(path+".ma_key", c.MAKey, 1)
	}
	v.UpstreamURL(path+".tracker_url", c.TrackerURL)
}

// RouteProblem says which key a route needs when it is not set.
func (c *BrevoConfig) RouteProblem(route string) string {
	switch {
	case route == "brevo/events" && c.APIKey == "":
		return "needs providers.brevo.api_key"
	case route == "brevo/track-event" && c.MAKey == "":
		return "needs providers.brevo.ma_key"
	}
	return ""
}

// NewAdapter builds the Brevo adapter.
func (c *BrevoConfig) NewAdapter(*zap.Logger) (delivery.Adapter, error) {
	return newBrevoAdapter(c), nil
}

// validateBrevoEvent checks a v3 POST /v3/events body.
func validateBrevoEvent(ev *Event, id Identity) error {
	f := newFields(&ev.Body, "", nil)
	f.known("event_name", "identifiers", "event_date", "contact_properties", "event_properties", "object")
	brevoSignedIdentifiers(f, ev, id)
	if name, ok := f.str("event_name", true, brevoMaxName); ok {
		f.check(allBytes(name, isBrevoNameByte), "event_name", "must contain only letters, digits, '-' and '_'")
	}
	brevoIdentifiers(f)
	f.timestamp("event_date", false)
	brevoProperties(f, "contact_properties", id.Signed, true)
	if props := f.object("event_properties", false); props != nil {
		f.check(len(props.v.AppendJSON(nil)) <= brevoMaxEventProperties, "event_properties",
			"must be at most "+strconv.Itoa(brevoMaxEventProperties)+" bytes of JSON")
	}
	// object describes a business object (an order, a cart): Brevo defines no closed
	// shape for it, so any object is accepted.
	f.object("object", false)
	return f.Err()
}

func isBrevoNameByte(c byte) bool {
	return isASCIILetter(c) || isASCIIDigit(c) || c == '-' || c == '_'
}

// brevoSignedIdentifiers replaces identifiers entirely when the identity is signed: merging
// would let a browser attach other identities (a phone, another ext_id) to the contact.
func brevoSignedIdentifiers(f *fields, ev *Event, id Identity) {
	if !id.Signed || f.err != nil {
		return
	}
	var ids []strictjson.Member
	if id.Email != "" {
		ids = append(ids, strictjson.Member{Key: "email_id", Value: strictjson.StringValue(id.Email)})
	}
	if id.UserID != "" {
		ids = append(ids, strictjson.Member{Key: "ext_id", Value: strictjson.StringValue(id.UserID)})
	}
	if len(ids) == 0 {
		f.failField(CodeMissingField, "identifiers", "is required and must come from the identity token (claims email or sub)")
		return
	}
	if setMember(&ev.Body, "identifiers", strictjson.ObjectValue(ids...)) {
		ev.Changed = true
	}
}

// brevoIdentifiers checks the identifiers object: known keys only, at least one present.
func brevoIdentifiers(f *fields) {
	ids := f.object("identifiers", true)
	if ids == nil {
		return
	}
	ids.known(append([]string{"contact_id", "email_id"}, brevoStringIdentifiers...)...)
	n := 0
	if cid, ok := ids.integer("contact_id", false); ok {
		ids.check(cid > 0, "contact_id", "must be a positive integer")
		n++
	}
	if email, ok := ids.str("email_id", false, 0); ok {
		ids.check(isEmail(email), "email_id", "must be an e-mail address")
		n++
	}
	for _, name := range brevoStringIdentifiers {
		if _, ok := ids.ident(name, false, brevoMaxID); ok {
			n++
		}
	}
	if n == 0 && ids.err == nil {
		ids.fail(CodeMissingField, "identifiers",
			"identifiers must contain at least one of contact_id, email_id, "+strings.Join(brevoStringIdentifiers, ", "))
	}
	f.child(ids)
}

// brevoProperties checks an optional object of contact attributes. Keys in reserved are
// refused in any case (Brevo attribute names ignore case). scalar: values must be strings,
// numbers or booleans (v3 contact_properties; docs/providers.md says int, but Brevo number
// attributes hold decimals too). With a signed identity, attributes that carry an identity
// are refused: they would attach another identity to the token's contact.
func brevoProperties(f *fields, name string, signed, scalar bool, reserved ...string) {
	props := f.object(name, false)
	if props == nil {
		return
	}
	for i := 0; i < len(props.v.Members) && props.err == nil; i++ {
		m := &props.v.Members[i]
		switch k := m.Value.Kind; {
		case matchFold(m.Key, reserved):
			props.failField(CodeInvalidField, m.Key, "is reserved by Brevo: use the top-level field")
		case scalar && k == strictjson.Null:
			props.failField(CodeInvalidField, m.Key, msgNull)
		case scalar && k != strictjson.String && k != strictjson.Number && k != strictjson.Bool:
			props.failField(CodeInvalidField, m.Key, "must be a string, number or boolean")
		case signed && matchFold(m.Key, brevoIdentityAttributes):
			props.failField(CodeInvalidField, m.Key, "cannot be set with a signed identity: it is an identity attribute")
		}
	}
	f.child(props)
}

// matchFold reports whether key equals one of names, ignoring case.
func matchFold(key string, names []string) bool {
	for _, n := range names {
		if strings.EqualFold(key, n) {
			return true
		}
	}
	return false
}

// validateBrevoTrackEvent checks a legacy POST /api/v2/trackEvent body.
func validateBrevoTrackEvent(ev *Event, id Identity) error {
	f := newFields(&ev.Body, "", nil)
	f.known("email", "event", "properties", "eventdata")
	if id.Signed && f.err == nil {
		if id.Email == "" {
			f.failField(CodeMissingField, "email", "is required and must come from the identity token (claim email)")
		} else if setMember(&ev.Body, "email", strictjson.StringValue(id.Email)) {
			ev.Changed = true
		}
	}
	if email, ok := f.str("email", true, 0); ok {
		f.check(isEmail(email), "email", "must be an e-mail address")
	}
	f.ident("event", true, brevoMaxName)
	// The legacy page types no property values, so any JSON value is accepted.
	brevoProperties(f, "properties", id.Signed, false, "email", "event")
	if data := f.object("eventdata", false); data != nil {
		data.known("id", "data")
		data.ident("id", false, brevoMaxID)
		data.object("data", false)
		f.child(data)
	}
	return f.Err()
}
