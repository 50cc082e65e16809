package providers

import (
	"bytes"
	"context"
	"time"

	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/strictjson"
)

// BannerFlex outbound: POST {base_url}/api/public/banner-events, no authentication
// (docs/providers.md, "BannerFlex"). 200 {"ok":true} (any 2xx) is success, unless the body
// says "ok": false (classifyBannerFlex); 400 and 404 (banner or metric unknown) are
// permanent; 408, 429 and 5xx are retryable: the default reading of Classify.

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
	return roundTrip(ctx, a.t, &Request{URL: a.url, Body: m.Body}, classifyBannerFlex)
}

// bannerflexNotOKMsg starts the error of a 2xx reply whose body says "ok": false.
const bannerflexNotOKMsg = `upstream answered 2xx with "ok": false: the event was not recorded`

// classifyBannerFlex reads a reply by its body as well as its status. BannerFlex documents
// {"ok": true} as the reply of a recorded event, so a 2xx whose JSON body says "ok": false
// is not a delivery. Its page documents no such reply, and so no reading of it that would
// tell a refused event from a passing fault: it is retryable (honouring Retry-After), which
// loses nothing (max_attempts ends in the dead-letter stream, with the excerpt) and, since
// the upstream says it recorded nothing, sends no duplicate. A 2xx body that is empty, not
// JSON or without a boolean ok counts as delivered, as before: retrying a recorded event
// would count it twice. Anything else is Classify's.
func classifyBannerFlex(r *Reply, now time.Time) error {
	if r.Status < 200 || r.Status >= 300 || !bannerflexNotOK(r.Body) {
		return Classify(r, now)
	}
	err := error(&delivery.HTTPError{Status: r.Status, Message: bannerflexNotOKMsg + ": " + r.Snippet()})
	if d, ok := ParseRetryAfter(r.Header("Retry-After"), now); ok {
		return delivery.RetryAfter(d, err)
	}
	return err
}

// bannerflexNotOK reports whether body is a JSON object whose member ok is false.
func bannerflexNotOK(body []byte) bool {
	if !bytes.Contains(body, []byte("false")) { // the {"ok":true} of every success: no parse
		return false
	}
	v, err := strictjson.Parse(body, 0)
	if err != nil || v.Kind != strictjson.Object {
		return false
	}
	ok := v.Get("ok")
	return ok != nil && ok.Kind == strictjson.Bool && !ok.Bool
}
