package providers

import (
	"context"

	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/strictjson"
)

// Linkrunner outbound: POST {base_url}/api/v1/capture-event or /api/v1/capture-payment
// with header linkrunner-key (docs/providers.md, "Linkrunner"). 201 (any 2xx) is success; 400
// is permanent; 401 is the relay's key (a config fault); 408, 429 and 5xx are retryable:
// the default reading of Classify.

// linkrunnerKeyHeader carries the server key.
const linkrunnerKeyHeader = "linkrunner-key"

// linkrunnerAdapter delivers Linkrunner events, one per request.
type linkrunnerAdapter struct {
	unbatched
	base string
	key  string
	t    *Transport
}

var _ delivery.Adapter = (*linkrunnerAdapter)(nil)

// newLinkrunnerAdapter builds the Linkrunner adapter from its config section.
func newLinkrunnerAdapter(cfg *LinkrunnerConfig) delivery.Adapter {
	return &linkrunnerAdapter{
		base: cfg.BaseURL,
		key:  cfg.ServerKey,
		t:    deliveryTransport(cfg.Delivery, cfg.ServerKey),
	}
}

// Provider returns "linkrunner".
func (a *linkrunnerAdapter) Provider() string { return Linkrunner }

// Deliver sends the one event of batch.
func (a *linkrunnerAdapter) Deliver(ctx context.Context, batch []*delivery.Message) []error {
	return deliverEach(batch, func(m *delivery.Message) error { return a.deliver(ctx, m) })
}

func (a *linkrunnerAdapter) deliver(ctx context.Context, m *delivery.Message) error {
	var path string
	switch m.Route {
	case "linkrunner/capture-event":
		path = "/api/v1/capture-event"
	case "linkrunner/capture-payment":
		path = "/api/v1/capture-payment"
	default:
		return unknownRoute(m)
	}
	v, err := parseBody(m)
	if err != nil {
		return err
	}
	body := m.Body
	// Linkrunner dedupes payments on (type, payment_id). Without a payment_id a retry after
	// a lost reply would count the money twice; the relay's event id is stable across
	// retries and unique per accepted payment, so it stands in (Guarantee 4).
	if m.Route == "linkrunner/capture-payment" && m.ID != "" && absent(&v, "payment_id") {
		v.Set("payment_id", strictjson.StringValue(m.ID))
		body = v.AppendJSON(nil)
	}
	return roundTrip(ctx, a.t, &Request{
		URL:    a.base + path,
		Header: []Header{{Name: linkrunnerKeyHeader, Value: a.key}},
		Body:   body,
	}, Classify)
}
