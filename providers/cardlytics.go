package providers

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/strictjson"
)

// Cardlytics: publisher client events, API v2 (PROVIDERS.md, "Cardlytics").

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

func cardlyticsOps(cfg *config.Cardlytics) []*Op {
	events := maps.Clone(cardlyticsEvents)
	if cfg != nil {
		for typ, extra := range cfg.ClientEvents {
			// A fresh slice: appending to the table's own would share its backing array.
			events[typ] = append(append([]string(nil), events[typ]...), extra...)
		}
	}
	validate := func(ev *Event, id Identity) error { return validateCardlytics(ev, id, events) }
	return []*Op{{Route: "cardlytics/client-events", Provider: Cardlytics, Identity: ClaimCustomer, validate: validate}}
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
		if f.get("clientEventMetadata") != nil {
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
