package providers

import (
	"github.com/eventrelay/relay/strictjson"
)

// Provider names, as used in routes, config sections and Redis keys.
const (
	Linkrunner = "linkrunner"
	ENS        = "ens"
	Brevo      = "brevo"
	BannerFlex = "bannerflex"
	Cardlytics = "cardlytics"
)

// Claim names the identity an Op needs, by its identity-token claim.
type Claim string

// The identity claims of an X-Relay-Identity token.
const (
	ClaimNone     Claim = ""
	ClaimUser     Claim = "sub"         // Linkrunner user_id
	ClaimEmail    Claim = "email"       // Brevo email / identifiers.email_id
	ClaimCustomer Claim = "customer_id" // Cardlytics source customer id
)

// Identity is who an event is about, as the relay determined it.
type Identity struct {
	// UserID, Email and CustomerID are the identity values; empty when unknown.
	UserID, Email, CustomerID string
	// Signed means the values come from a verified identity token: they replace whatever
	// the body says. Otherwise the body is trusted (backends, trust_client_identity sites)
	// and only CustomerID (which has no body field) is taken from here.
	Signed bool
}

// Event is a validated inbound event.
type Event struct {
	// Body is the validated body, possibly with identities applied.
	Body strictjson.Value
	// Changed reports that Body differs from the bytes received, so it must be re-encoded.
	Changed bool
	// CustomerID is the Cardlytics customer, stored beside the body.
	CustomerID string
	// Revenue is the path of the field that carries revenue in an event of a route that is
	// not a money route ("event_data.amount" of Linkrunner capture-event), "" when there is
	// none. Revenue is money: ingest lets only backends and sites with revenue: true send it.
	Revenue string
}

// Purposes of the routes, the names of X-Relay-Consent (docs/api.md, "Consent").
const (
	PurposeAds         = "ads"
	PurposeAttribution = "attribution"
	PurposeMarketing   = "marketing"
)

// Op is one ingest operation: a route and how to validate its body.
type Op struct {
	// Route is the ingest path after /v1/, e.g. "ens/click".
	Route string
	// Provider is the provider name, e.g. "ens" (set by Ops).
	Provider string
	// Identity is the claim this op needs, ClaimNone for anonymous events.
	Identity Claim
	// Money marks business-critical events that sites may only send when they list the
	// route explicitly.
	Money bool
	// Purpose is what the events are used for, the consent a site with consent: required
	// needs from the user (Purpose* constants; a site may override it per route).
	Purpose string
	// names returns the event names of a validated body, nil for routes whose events have
	// no name (site event filters do not apply to them).
	names func(body *strictjson.Value) []string
	// validate checks ev.Body (and may change it, setting ev.Changed) given the identity.
	validate func(ev *Event, id Identity) error
}

// Validate validates body for this op, applying id. body is modified in place when a
// signed identity replaces body fields.
func (op *Op) Validate(body strictjson.Value, id Identity) (Event, error) {
	ev := Event{Body: body}
	if err := op.validate(&ev, id); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// EventNames returns the event names of body, which Validate accepted: one name for most
// routes, one per clientEvents item for Cardlytics, nil for routes without names (ENS,
// Linkrunner capture-payment).
func (op *Op) EventNames(body *strictjson.Value) []string {
	if op.names == nil {
		return nil
	}
	return op.names(body)
}

// HasNames reports whether the route's events have names (EventNames), which site event
// filters apply to.
func (op *Op) HasNames() bool { return op.names != nil }

// nameField returns a names function reading the string member key of the body.
func nameField(key string) func(body *strictjson.Value) []string {
	return func(body *strictjson.Value) []string {
		if v := body.Get(key); v != nil && v.Kind == strictjson.String {
			return []string{v.Str}
		}
		return nil
	}
}
