package providers

import (
	"fmt"

	"go.uber.org/zap"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/delivery"
)

// NewAdapters builds the adapter of every enabled provider, keyed by provider name. An
// explicit switch: adding a provider means adding a case here.
func NewAdapters(p config.Providers, log *zap.Logger) (map[string]delivery.Adapter, error) {
	out := map[string]delivery.Adapter{}
	if p.Linkrunner != nil {
		out[Linkrunner] = newLinkrunnerAdapter(p.Linkrunner)
	}
	if p.ENS != nil {
		out[ENS] = newENSAdapter(p.ENS)
	}
	if p.Brevo != nil {
		out[Brevo] = newBrevoAdapter(p.Brevo)
	}
	if p.BannerFlex != nil {
		out[BannerFlex] = newBannerFlexAdapter(p.BannerFlex)
	}
	if p.Cardlytics != nil {
		a, err := newCardlyticsAdapter(p.Cardlytics, log.Named("cardlytics"))
		if err != nil {
			return nil, fmt.Errorf("providers.cardlytics: %w", err)
		}
		out[Cardlytics] = a
	}
	return out, nil
}

// results returns n copies of err: one request's fate is every event's in it.
func results(n int, err error) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}
