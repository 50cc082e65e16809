package providers

import (
	"go.uber.org/zap"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/strictjson"
)

// Linkrunner: capture-event and capture-payment (docs/providers.md, "Linkrunner").

// linkrunnerMaxLen caps event names and ids. Linkrunner documents no limit; 255 matches the
// other providers' name limits and anything longer is a bug or abuse, not an event.
const linkrunnerMaxLen = 255

var linkrunnerPaymentTypes = []string{
	"FIRST_PAYMENT", "SECOND_PAYMENT", "WALLET_TOPUP", "FUNDS_WITHDRAWAL",
	"SUBSCRIPTION_CREATED", "SUBSCRIPTION_RENEWED", "ONE_TIME", "RECURRING", "DEFAULT",
}

var linkrunnerPaymentStatuses = []string{
	"PAYMENT_INITIATED", "PAYMENT_COMPLETED", "PAYMENT_FAILED", "PAYMENT_CANCELLED",
}

// linkrunner describes Linkrunner: https://api.linkrunner.io, header linkrunner-key.
func linkrunner() *Provider {
	return &Provider{
		Name: Linkrunner, BaseURL: "https://api.linkrunner.io", RateLimit: 30,
		NewSection: func() Section { return new(LinkrunnerConfig) },
		Ops: func(Section) []*Op {
			return []*Op{
				{Route: "linkrunner/capture-event", Identity: ClaimUser, Purpose: PurposeAttribution,
					names: nameField("event_name"), validate: validateLinkrunnerEvent},
				// A payment has no event name: event filters do not apply to it.
				{Route: "linkrunner/capture-payment", Identity: ClaimUser, Money: true, Purpose: PurposeAttribution,
					validate: validateLinkrunnerPayment},
			}
		},
	}
}

// LinkrunnerConfig is the providers.linkrunner section. Default rate_limit 30.
type LinkrunnerConfig struct {
	config.Delivery `yaml:",inline"`
	// ServerKey is sent as linkrunner-key. Required.
	ServerKey string `yaml:"server_key"`
}

// Validate checks server_key.
func (c *LinkrunnerConfig) Validate(v *config.Validator, path string) {
	v.Secret(path+".server_key", c.ServerKey, 1)
}

// NewAdapter builds the Linkrunner adapter.
func (c *LinkrunnerConfig) NewAdapter(*zap.Logger) (delivery.Adapter, error) {
	return newLinkrunnerAdapter(c), nil
}

func validateLinkrunnerEvent(ev *Event, id Identity) error {
	f := newFields(&ev.Body, "", nil)
	f.known("event_name", "event_data", "user_id")
	linkrunnerUser(f, ev, id)
	f.ident("event_name", true, linkrunnerMaxLen)
	linkrunnerEventData(f)
	// event_data.amount is what revenue sharing reads: money, like capture-payment.
	if data := f.get("event_data"); data != nil && data.Get("amount") != nil {
		ev.Revenue = "event_data.amount"
	}
	return f.Err()
}

// validateLinkrunnerPayment leaves type and status out when absent: the upstream applies
// its own defaults (DEFAULT, PAYMENT_COMPLETED), and the relay forwards bodies unchanged.
func validateLinkrunnerPayment(ev *Event, id Identity) error {
	f := newFields(&ev.Body, "", nil)
	f.known("user_id", "payment_id", "amount", "type", "status", "event_data")
	linkrunnerUser(f, ev, id)
	f.ident("payment_id", false, linkrunnerMaxLen)
	// Not documented, but a negative payment is a forged or broken revenue report:
	// withdrawals and refunds have their own types with positive amounts.
	if amount, ok := f.number("amount", true); ok {
		f.check(amount >= 0, "amount", "must not be negative")
	}
	f.enum("type", false, linkrunnerPaymentTypes...)
	f.enum("status", false, linkrunnerPaymentStatuses...)
	linkrunnerEventData(f)
	return f.Err()
}

// linkrunnerUser applies the identity to user_id and checks it. A signed identity replaces
// whatever the body says; without one the body is trusted (backends, trusted sites).
func linkrunnerUser(f *fields, ev *Event, id Identity) {
	if id.Signed && f.err == nil {
		if id.UserID == "" {
			f.failField(CodeMissingField, "user_id", "is required and must come from the identity token (claim sub)")
			return
		}
		if setMember(&ev.Body, "user_id", strictjson.StringValue(id.UserID)) {
			ev.Changed = true
		}
	}
	f.ident("user_id", true, linkrunnerMaxLen)
}

// linkrunnerEventData checks the optional event_data object. Its members are free-form,
// except amount, which ad networks' revenue sharing reads as a number: a string "12.5" is
// silently ignored upstream, so it is refused here, and so is null. The rule is documented
// for capture-event; capture-payment's event_data follows it too, for the same reason.
func linkrunnerEventData(f *fields) {
	data := f.object("event_data", false)
	if data == nil {
		return
	}
	switch amount := data.v.Get("amount"); {
	case amount == nil || amount.Kind == strictjson.Number:
	case amount.Kind == strictjson.Null:
		data.failField(CodeInvalidField, "amount", msgNull)
	default:
		data.failField(CodeInvalidField, "amount", "must be a JSON number, not a "+amount.Kind.String())
	}
	f.child(data)
}
