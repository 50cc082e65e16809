package providers

import (
	"go.uber.org/zap"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/delivery"
)

// ENS Ads: impression and click share one body (docs/providers.md, "ENS Ads").

var ensDevices = []string{"mobile", "desktop", "tablet"}

// ens describes ENS Ads: https://ads.enslive.live, Authorization: Bearer.
func ens() *Provider {
	return &Provider{
		Name: ENS, BaseURL: "https://ads.enslive.live", RateLimit: 50,
		NewSection: func() Section { return new(ENSConfig) },
		Ops: func(Section) []*Op {
			return []*Op{
				// ENS events have no name: event filters do not apply to them.
				{Route: "ens/impression", Purpose: PurposeAds, validate: validateENS},
				{Route: "ens/click", Purpose: PurposeAds, validate: validateENS},
			}
		},
	}
}

// ENSConfig is the providers.ens section. Default rate_limit 50.
type ENSConfig struct {
	config.Delivery `yaml:",inline"`
	// APIKey is sent as Authorization: Bearer. Required.
	APIKey string `yaml:"api_key"`
}

// Validate checks api_key.
func (c *ENSConfig) Validate(v *config.Validator, path string) {
	v.Secret(path+".api_key", c.APIKey, 1)
}

// NewAdapter builds the ENS adapter.
func (c *ENSConfig) NewAdapter(*zap.Logger) (delivery.Adapter, error) { return newENSAdapter(c), nil }

func validateENS(ev *Event, _ Identity) error {
	f := newFields(&ev.Body, "", nil)
	f.known("campaignId", "placement", "location", "device")
	if id, ok := f.integer("campaignId", true); ok {
		f.check(id > 0, "campaignId", "must be a positive integer")
	}
	f.ident("placement", true, 128) // a slot name: control characters never belong in one
	if loc, ok := f.str("location", false, 0); ok {
		f.check(isCountryCode(loc), "location", "must be an ISO 3166-1 alpha-2 country code such as US")
	}
	f.enum("device", false, ensDevices...)
	return f.Err()
}
