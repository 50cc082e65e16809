package providers

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/strictjson"
)

// Cardlytics: publisher client events, API v2 (docs/providers.md, "Cardlytics").

const (
	// cardlyticsMaxEvents caps clientEvents per request; the maximum is undocumented.
	cardlyticsMaxEvents = 50
	// cardlyticsMaxCustomerID caps the customer id, which travels as an HTTP header.
	cardlyticsMaxCustomerID = 128
	// cardlyticsMaxID caps the metadata's string ids (categoryId, curationId, imageSlots).
	cardlyticsMaxID = 255
	// cardlyticsMaxServeToken caps serveToken; the examples show 32 hex digits, but it is
	// opaque and may grow, so the cap is generous.
	cardlyticsMaxServeToken = 1024
	// cardlyticsMaxSection caps section names.
	cardlyticsMaxSection = 64
	// cardlyticsCustomerHeader is where a backend sends the customer; errors name it.
	cardlyticsCustomerHeader = "X-Relay-Customer-Id"
)

// Client event types that carry metadata about the ad.
const (
	cardlyticsAdImpression  = "AdImpression"
	cardlyticsAdInteraction = "AdInteraction"
)

var cardlyticsTypes = []string{cardlyticsAdImpression, cardlyticsAdInteraction, "SessionAction", "CustomerProfileAction"}

// cardlyticsEvents is the documented clientEvent table by clientEventType. The provider's
// own "other client activity" example sends RewardSummaryLinkClicked as a SessionAction
// (the reference lists it under CustomerProfileAction) and ExpandRedemption as a
// CustomerProfileAction (not in the reference list): the upstream's examples must pass,
// so both pairs are here. Configuration adds more (config.Cardlytics.ClientEvents).
var cardlyticsEvents = map[string][]string{
	cardlyticsAdInteraction: {
		"DisplayElementExpanded", "DisplayElementCollapsed", "UrlLinkClicked", "UrlLinkContinue",
		"ActivateOffer", "ParkOffer", "UnParkOffer", "ExpiredOffersLinkClicked",
	},
	cardlyticsAdImpression:  {"AdViewableImpression"},
	"SessionAction":         {"UnParkAllOffers", "LogEnrollment", "RewardSummaryLinkClicked"},
	"CustomerProfileAction": {"RewardSummaryLinkClicked", "LearnMoreLinkClicked", "FaqLinkClicked", "ExpandRedemption"},
}

var cardlyticsChannels = []string{"Email", "SMS", "MMS", "OLB", "MobileWeb", "MobileApp", "MobileWallet"}

// cardlytics describes Cardlytics publisher client events (v2), mutual TLS. base_url has
// no default: each publisher gets its own.
func cardlytics() *Provider {
	return &Provider{
		Name: Cardlytics, RateLimit: 20,
		NewSection: func() Section { return new(CardlyticsConfig) },
		Ops: func(sec Section) []*Op {
			return cardlyticsOps(sec.(*CardlyticsConfig))
		},
	}
}

func cardlyticsOps(cfg *CardlyticsConfig) []*Op {
	events := maps.Clone(cardlyticsEvents)
	for typ, extra := range cfg.ClientEvents {
		// A fresh slice: appending to the table's own would share its backing array.
		events[typ] = append(append([]string(nil), events[typ]...), extra...)
	}
	validate := func(ev *Event, id Identity) error { return validateCardlytics(ev, id, events) }
	return []*Op{{Route: "cardlytics/client-events", Identity: ClaimCustomer, Purpose: PurposeAds,
		names: cardlyticsNames, validate: validate}}
}

// cardlyticsNames returns the clientEvent of every clientEvents item, in order.
func cardlyticsNames(body *strictjson.Value) []string {
	list := body.Get("clientEvents")
	if list == nil {
		return nil
	}
	out := make([]string, 0, len(list.Items))
	for i := range list.Items {
		if v := list.Items[i].Get("clientEvent"); v != nil && v.Kind == strictjson.String {
			out = append(out, v.Str)
		}
	}
	return out
}

// validateCardlytics checks {"clientEvents":[...]}; events maps each clientEventType to the
// clientEvent names it accepts. clientEventId may be left out: the relay derives a
// deterministic one from its event id before forwarding.
func validateCardlytics(ev *Event, id Identity, events map[string][]string) error {
	if err := cardlyticsCustomer(id.CustomerID); err != nil {
		return err
	}
	ev.CustomerID = id.CustomerID
	f := newFields(&ev.Body, "", nil)
	f.known("clientEvents")
	list := f.array("clientEvents", true)
	if list == nil {
		return f.Err()
	}
	if n := len(list.Items); n == 0 || n > cardlyticsMaxEvents {
		f.failField(CodeInvalidField, "clientEvents", "must hold 1 to "+strconv.Itoa(cardlyticsMaxEvents)+" events")
		return f.Err()
	}
	seen := make(map[string]int, len(list.Items))
	for i := range list.Items {
		item := newFields(&list.Items[i], "clientEvents["+strconv.Itoa(i)+"]", nil)
		cardlyticsEvent(item, events)
		// Two messages with one id would be deduplicated into one upstream.
		if cid := item.get("clientEventId"); cid != nil && item.err == nil {
			key := strings.ToLower(cid.Str)
			if j, dup := seen[key]; dup {
				item.failField(CodeInvalidField, "clientEventId", "repeats clientEvents["+strconv.Itoa(j)+"].clientEventId")
			}
			seen[key] = i
		}
		f.child(item)
		if f.err != nil {
			break
		}
	}
	return f.Err()
}

// cardlyticsCustomer checks the customer id, which is not in the body: it comes from the
// identity token (claim customer_id) or, for backends, from header X-Relay-Customer-Id. It
// becomes an HTTP header upstream, so its alphabet is closed: no CR, LF or NUL can pass.
func cardlyticsCustomer(c string) error {
	switch {
	case c == "":
		return &FieldError{Code: CodeMissingField, Field: cardlyticsCustomerHeader,
			Message: cardlyticsCustomerHeader + " is required (or claim customer_id of the identity token)"}
	case len(c) > cardlyticsMaxCustomerID || !allBytes(c, isCustomerIDByte):
		return &FieldError{Code: CodeInvalidField, Field: cardlyticsCustomerHeader,
			Message: cardlyticsCustomerHeader + " must be 1 to " + strconv.Itoa(cardlyticsMaxCustomerID) +
				" letters, digits or . _ : @ -"}
	}
	return nil
}

func isCustomerIDByte(c byte) bool {
	return isASCIILetter(c) || isASCIIDigit(c) || strings.IndexByte("._:@-", c) >= 0
}

// cardlyticsEvent checks one ClientEventMessage.
func cardlyticsEvent(f *fields, events map[string][]string) {
	f.known("clientEventId", "clientEventType", "clientEvent", "clientEventTimestamp", "clientEventMetadata")
	if cid, ok := f.str("clientEventId", false, 0); ok {
		f.check(isUUID(cid), "clientEventId", "must be a GUID such as 2e08d638-04e2-4561-b56a-ca32cfff6203")
	}
	typ, _ := f.enum("clientEventType", true, cardlyticsTypes...)
	if name, ok := f.str("clientEvent", true, 0); ok {
		f.check(slices.Contains(events[typ], name), "clientEvent",
			"must be one of "+strings.Join(events[typ], ", ")+" for clientEventType "+typ)
	}
	f.timestamp("clientEventTimestamp", true)
	if f.err != nil {
		return
	}
	switch typ {
	case cardlyticsAdImpression, cardlyticsAdInteraction:
		meta := f.object("clientEventMetadata", true)
		if meta != nil {
			cardlyticsMetadata(meta)
			f.child(meta)
		}
	default:
		// The documentation sends null here (the one field where it does).
		if f.nullable("clientEventMetadata") != nil {
			f.failField(CodeInvalidField, "clientEventMetadata", "must be null or absent for clientEventType "+typ)
		}
	}
}

// cardlyticsMetadata checks a ClientEventMetadata object.
func cardlyticsMetadata(f *fields) {
	f.known("serveToken", "section", "channel", "imageSlots", "categoryId", "curationId", "displayPosition")
	f.ident("serveToken", false, cardlyticsMaxServeToken)
	// The documented sections end with "...Category" (one per offer category, an open
	// set), so any name of ASCII letters is accepted rather than a closed list.
	if s, ok := f.str("section", true, cardlyticsMaxSection); ok {
		f.check(allBytes(s, isASCIILetter), "section", "must contain only letters, e.g. LatestOffers")
	}
	f.enum("channel", true, cardlyticsChannels...)
	if slots := f.array("imageSlots", false); slots != nil {
		for i := range slots.Items {
			slot := &slots.Items[i]
			p := f.path("imageSlots") + "[" + strconv.Itoa(i) + "]"
			switch {
			case slot.Kind != strictjson.String:
				f.fail(CodeInvalidField, p, p+" must be a string")
			case slot.Str == "" || len([]rune(slot.Str)) > cardlyticsMaxID || hasControl(slot.Str):
				f.fail(CodeInvalidField, p, p+" must be 1 to "+strconv.Itoa(cardlyticsMaxID)+" characters without control characters")
			}
		}
	}
	f.ident("categoryId", false, cardlyticsMaxID)
	f.ident("curationId", false, cardlyticsMaxID)
	if pos, ok := f.integer("displayPosition", false); ok {
		f.check(pos >= 0, "displayPosition", "must be zero or more (it is zero-based)")
	}
}

// CardlyticsConfig is the providers.cardlytics section. base_url has no default. Default
// rate_limit 20.
type CardlyticsConfig struct {
	config.Delivery `yaml:",inline"`
	// Auth is "bearer" (clientId/secret, Authorization header) or "session"
	// (X-CDLX-Session-Token). Default "bearer".
	Auth string `yaml:"auth"`
	// ClientID and Secret are sent to startSession in bearer mode. Required for bearer.
	ClientID string `yaml:"client_id"`
	Secret   string `yaml:"secret"`
	// SessionTokenField names the member of the startSession reply that carries the
	// token, the only one read. Default "sessionToken" in session mode (documented) and
	// "token" in bearer mode (undocumented: the docs only say the reply "will provide a
	// bearer token"); set it when the upstream answers with another name, which the error
	// of a reply without the token lists (names only).
	SessionTokenField string `yaml:"session_token_field"`
	// InstitutionID is sent as X-CDLX-Institution-Id in session mode, when set.
	InstitutionID string `yaml:"institution_id"`
	// TLSCertFile and TLSKeyFile are the client certificate for mutual TLS. Required.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// TLSCAFile is an optional CA bundle to verify the server (tests, private CAs).
	TLSCAFile string `yaml:"tls_ca_file"`
	// ClientEvents adds accepted clientEvent names per clientEventType to the documented ones.
	ClientEvents map[string][]string `yaml:"client_events"`
}

// SetDefaults sets auth, then session_token_field (its default depends on auth).
func (c *CardlyticsConfig) SetDefaults() {
	config.OrDefault(&c.Auth, cardlyticsAuthBearer)
	config.OrDefault(&c.SessionTokenField, c.tokenField())
}

// tokenField is session_token_field with its default applied: in session mode the
// documented "sessionToken" (StartSessionResponse in the provider's OpenAPI,
// platform.cardlytics.com/publisher-integrations/reference/
// starts-a-session-by-obtaining-a-session-token); in bearer mode "token", a guess: the
// docs (platform.cardlytics.com/publisher-integrations/docs/start-session) only say the
// reply "will provide a bearer token" valid 15 minutes, without naming the member.
func (c *CardlyticsConfig) tokenField() string {
	switch {
	case c.SessionTokenField != "":
		return c.SessionTokenField
	case c.Auth == cardlyticsAuthSession:
		return "sessionToken"
	default:
		return "token"
	}
}

// Validate checks the credentials, session_token_field, the TLS files and client_events.
func (c *CardlyticsConfig) Validate(v *config.Validator, p string) {
	switch c.Auth {
	case "bearer":
		v.Secret(p+".client_id", c.ClientID, 1)
		v.Secret(p+".secret", c.Secret, 1)
	case "session":
	default:
		v.Add(p+".auth", "%q must be bearer or session", c.Auth)
	}
	if c.InstitutionID != "" {
		v.Secret(p+".institution_id", c.InstitutionID, 1)
	}
	if strings.TrimSpace(c.tokenField()) == "" {
		v.Add(p+".session_token_field", "must name the startSession reply member that carries the token")
	}
	c.validateTLS(v, p)

	types := slices.Sorted(maps.Keys(c.ClientEvents)) // map order is random; reports must not be
	for _, t := range types {
		path := p + ".client_events." + t
		if !slices.Contains(cardlyticsEventTypes(), t) {
			v.Add(path, "%q is not a clientEventType (one of %s)", t, strings.Join(cardlyticsEventTypes(), ", "))
		}
		for i, name := range c.ClientEvents[t] {
			if strings.TrimSpace(name) == "" {
				v.Add(fmt.Sprintf("%s[%d]", path, i), "must be a non-empty event name")
			}
		}
	}
}

// cardlyticsEventTypes are the clientEventTypes of cardlyticsEvents, in the
// documentation's order (TestCardlyticsEventTypesMatchTable keeps the two in step).
func cardlyticsEventTypes() []string {
	return []string{cardlyticsAdImpression, cardlyticsAdInteraction, "SessionAction", "CustomerProfileAction"}
}

func (c *CardlyticsConfig) validateTLS(v *config.Validator, p string) {
	cert, key := c.TLSCertFile, c.TLSKeyFile
	switch {
	case cert == "" && key == "":
		// Mutual TLS is how Cardlytics authenticates the publisher; only a local fake
		// over plain http may go without it.
		if u, err := url.Parse(c.BaseURL); c.BaseURL != "" && (err != nil || u.Scheme != "http" || !config.IsLoopback(u.Hostname())) {
			v.Add(p+".tls_cert_file", "and tls_key_file are required (mutual TLS)")
		}
	case cert == "":
		v.Add(p+".tls_cert_file", "is required with tls_key_file")
	case key == "":
		v.Add(p+".tls_key_file", "is required with tls_cert_file")
	default:
		certOK := v.ReadableFile(p+".tls_cert_file", cert)
		keyOK := v.ReadableFile(p+".tls_key_file", key)
		if certOK && keyOK {
			if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
				// crypto/tls errors describe the PEM blocks, never the key material.
				v.Add(p+".tls_cert_file", "and tls_key_file are not a certificate and matching key: %v", err)
			}
		}
	}
	if ca := c.TLSCAFile; ca != "" && v.ReadableFile(p+".tls_ca_file", ca) {
		if pem, err := os.ReadFile(ca); err != nil || !x509.NewCertPool().AppendCertsFromPEM(pem) {
			v.Add(p+".tls_ca_file", "%q holds no PEM certificate", ca)
		}
	}
}

// NewAdapter builds the Cardlytics adapter: it loads the TLS files.
func (c *CardlyticsConfig) NewAdapter(log *zap.Logger) (delivery.Adapter, error) {
	return newCardlyticsAdapter(c, log)
}
