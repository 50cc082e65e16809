package providers

import (
	"strings"

	"go.uber.org/zap"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/delivery"
)

// BannerFlex: banner events (docs/providers.md, "BannerFlex").

var bannerflexEvents = []string{"impression", "click", "custom"}

const (
	// bannerflexCampaignPrefix starts every campaign id ("bnrflx-xxxxxxxx").
	bannerflexCampaignPrefix = "bnrflx-"
	// bannerflexMaxCampaignSuffix caps what follows the prefix. The docs show 8 characters;
	// 64 leaves room for other lengths without accepting arbitrary text.
	bannerflexMaxCampaignSuffix = 64
	// bannerflexCTAMetric is the literal metricId that records a CTA click.
	bannerflexCTAMetric = "bnrflx-cta"
)

// bannerflex describes BannerFlex: https://www.bannerflex.app, no authentication.
func bannerflex() *Provider {
	return &Provider{
		Name: BannerFlex, BaseURL: "https://www.bannerflex.app", RateLimit: 50,
		NewSection: func() Section { return new(BannerFlexConfig) },
		Ops: func(Section) []*Op {
			return []*Op{{Route: "bannerflex/banner-events", Purpose: PurposeAds, names: nameField("event"),
				validate: validateBannerFlex}}
		},
	}
}

// BannerFlexConfig is the providers.bannerflex section: the common settings only.
// Default rate_limit 50.
type BannerFlexConfig struct {
	config.Delivery `yaml:",inline"`
}

// NewAdapter builds the BannerFlex adapter.
func (c *BannerFlexConfig) NewAdapter(*zap.Logger) (delivery.Adapter, error) {
	return newBannerFlexAdapter(c), nil
}

func validateBannerFlex(ev *Event, _ Identity) error {
	f := newFields(&ev.Body, "", nil)
	f.known("bannerId", "event", "campaignId", "metricId")
	if id, ok := f.str("bannerId", true, 0); ok {
		f.check(isUUID(id), "bannerId", "must be a UUID such as 3f2504e0-4f89-41d3-9a0c-0305e82c3301")
	}
	event, _ := f.enum("event", true, bannerflexEvents...)
	if c, ok := f.str("campaignId", false, 0); ok {
		f.check(isBannerFlexCampaign(c), "campaignId",
			"must be "+bannerflexCampaignPrefix+" followed by 1 to 64 letters, digits or '-'")
	}
	switch {
	case event == "custom":
		if m, ok := f.str("metricId", true, 0); ok {
			f.check(isUUID(m) || m == bannerflexCTAMetric, "metricId", "must be a UUID or "+bannerflexCTAMetric)
		}
	case f.get("metricId") != nil:
		// The upstream ignores metricId for other events; refusing it surfaces the
		// client's mistake instead of silently counting the wrong metric.
		f.failField(CodeInvalidField, "metricId", "is only allowed when event is custom")
	}
	return f.Err()
}

func isBannerFlexCampaign(s string) bool {
	rest, ok := strings.CutPrefix(s, bannerflexCampaignPrefix)
	return ok && len(rest) <= bannerflexMaxCampaignSuffix && allBytes(rest, func(c byte) bool {
		return isASCIILetter(c) || isASCIIDigit(c) || c == '-'
	})
}
