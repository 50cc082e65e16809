package providers

import (
	"context"

	"github.com/eventrelay/relay/delivery"
)

// BannerFlex outbound: POST {base_url}/api/public/banner-events, no authentication
// (docs/providers.md, "BannerFlex"). 200 {"ok":true} (any 2xx) is success; 400 and 404 (banner
// or metric unknown) are permanent; 408, 429 and 5xx are retryable: the default reading of
// Classify.

// bannerflexAdapter delivers BannerFlex banner events, one per request.
type bannerflexAdapter struct {
	unbatched
	url string
	t   *Transport
}

var _ delivery.Adapter = (*bannerflexAdapter)(nil)

// newBannerFlexAdapter builds the BannerFlex adapter from its config section.
func newBannerFlexAdapter(cfg *BannerFlexConfig) delivery.Adapter {
	return &bannerflexAdapter{
		url: cfg.BaseURL + "/api/public/banner-events",
		t:   deliveryTransport(cfg.Delivery),
	}
}

// Provider returns "bannerflex".
func (a *bannerflexAdapter) Provider() string { return BannerFlex }

// Deliver sends the one event of batch.
func (a *bannerflexAdapter) Deliver(ctx context.Context, batch []*delivery.Message) []error {
	return deliverEach(batch, func(m *delivery.Message) error { return a.deliver(ctx, m) })
}

func (a *bannerflexAdapter) deliver(ctx context.Context, m *delivery.Message) error {
	if m.Route != "bannerflex/banner-events" {
		return unknownRoute(m)
	}
	if _, err := parseBody(m); err != nil {
		return err
	}
	return roundTrip(ctx, a.t, &Request{URL: a.url, Body: m.Body}, Classify)
}
