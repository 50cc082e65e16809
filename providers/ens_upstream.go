package providers

import (
	"context"
	"strings"

	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/strictjson"
)

// ENS Ads outbound: POST {base_url}/api/v1/campaigns/impression or /click with
// Authorization: Bearer <api_key> (docs/providers.md, "ENS Ads"). 200 (any 2xx) is success;
// 400 and 404 (campaign no longer active) are permanent; 401 is the relay's key (a config
// fault); 408, 429 and 5xx are retryable: the default reading of Classify.

// ensAdapter delivers ENS impressions and clicks, one per request.
type ensAdapter struct {
	unbatched
	base string
	auth string // "Bearer <api_key>"
	t    *Transport
}

var _ delivery.Adapter = (*ensAdapter)(nil)

// newENSAdapter builds the ENS adapter from its config section.
func newENSAdapter(cfg *ENSConfig) delivery.Adapter {
	return &ensAdapter{
		base: cfg.BaseURL,
		auth: "Bearer " + cfg.APIKey,
		t:    deliveryTransport(cfg.Delivery, cfg.APIKey),
	}
}

// Provider returns "ens".
func (a *ensAdapter) Provider() string { return ENS }

// Deliver sends the one event of batch.
func (a *ensAdapter) Deliver(ctx context.Context, batch []*delivery.Message) []error {
	return deliverEach(batch, func(m *delivery.Message) error { return a.deliver(ctx, m) })
}

func (a *ensAdapter) deliver(ctx context.Context, m *delivery.Message) error {
	var path string
	switch m.Route {
	case "ens/impression":
		path = "/api/v1/campaigns/impression"
	case "ens/click":
		path = "/api/v1/campaigns/click"
	default:
		return unknownRoute(m)
	}
	v, err := parseBody(m)
	if err != nil {
		return err
	}
	body := m.Body
	// location and device improve advertisers' reports; the client's own values win, and
	// the relay fills them only from what it observed itself (the edge's geo header, the
	// request's User-Agent). location only for a site's event: a backend's request
	// carries the backend's country, not the user's.
	changed := false
	if c, ok := ensCountry(m.Country); ok && strings.HasPrefix(m.Source, "site:") && absent(&v, "location") {
		v.Set("location", strictjson.StringValue(c))
		changed = true
	}
	if d := deviceOf(m.UserAgent); d != "" && absent(&v, "device") {
		v.Set("device", strictjson.StringValue(d))
		changed = true
	}
	if changed {
		body = v.AppendJSON(nil)
	}
	return roundTrip(ctx, a.t, &Request{
		URL:    a.base + path,
		Header: []Header{{Name: "Authorization", Value: a.auth}},
		Body:   body,
	}, Classify)
}

// ensCountry returns the ISO 3166-1 alpha-2 code in a geo header value, upper-cased.
// User-assigned codes (AA, QM–QZ, XA–XZ, ZZ) are refused: edges use them for "unknown"
// (Cloudflare sends XX), and reporting them would mislead advertisers. Other values
// (Cloudflare's T1 for Tor, empty) are not codes at all.
func ensCountry(s string) (string, bool) {
	c := strings.ToUpper(s)
	if !isCountryCode(c) {
		return "", false
	}
	switch {
	case c == "AA", c == "ZZ", c[0] == 'Q' && c[1] >= 'M', c[0] == 'X':
		return "", false
	}
	return c, true
}

// deviceOf classifies a User-Agent as ENS's device values; "" when ua is empty or not a
// browser's (every browser sends "Mozilla/"; a backend's curl or SDK says nothing about
// the user's device, so device stays absent). The rules are the small, documented token tests browsers
// have used for years (MDN, "Browser detection using the user agent"), in this order:
//   - tablet: "iPad", "Tablet", or "Android" without "Mobile" (Android phones add Mobile);
//   - mobile: "Mobi" (Mobile, IEMobile, Mobile Safari...) or "iPhone";
//   - desktop: everything else.
//
// iPadOS 13+ Safari presents itself as desktop Safari and is reported as desktop.
func deviceOf(ua string) string {
	switch {
	case !strings.Contains(ua, "Mozilla/"):
		return ""
	case strings.Contains(ua, "iPad"), strings.Contains(ua, "Tablet"),
		strings.Contains(ua, "Android") && !strings.Contains(ua, "Mobile"):
		return "tablet"
	case strings.Contains(ua, "Mobi"), strings.Contains(ua, "iPhone"):
		return "mobile"
	default:
		return "desktop"
	}
}
