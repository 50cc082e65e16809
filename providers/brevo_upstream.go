package providers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/eventrelay/relay/delivery"
)

// Brevo outbound (docs/providers.md, "Brevo"):
//   - brevo/events: POST {base_url}/v3/events with header api-key, 204 (any 2xx) success;
//     with batch: true, POST {base_url}/v3/events/batch with {"events":[...]}, up to 100;
//   - brevo/track-event: POST {tracker_url}/api/v2/trackEvent with header ma-key, 204
//     success, never batched.
//
// 400, 402 (no credits) and 403 are permanent; 401 is the relay's key (a config fault);
// 408 and 5xx are retryable; 429 waits x-sib-ratelimit-reset seconds (Brevo sends no
// Retry-After).

const (
	brevoEventsRoute = "brevo/events"
	brevoTrackRoute  = "brevo/track-event"
	// brevoBatchKey groups v3 events into one /v3/events/batch request.
	brevoBatchKey = "v3"
	// brevoMaxBatch caps the weight of a batch, and so its events (docs/providers.md: keep
	// batches at 100 events or fewer).
	brevoMaxBatch = 100
	// brevoWeightBytes is the body size one unit of weight stands for. Brevo's guide caps a
	// batch request at 200 events and 512 KB, and answers an oversized one with a 400 for
	// every event, which would dead-letter valid events. An event weighs 1 per started
	// 5,000 bytes, so a full batch stays under 500,000 bytes of bodies; typical events
	// weigh 1, and 100 of them share a request.
	brevoWeightBytes = 5000
	// brevoResetHeader is how many seconds a rate-limited client must wait.
	brevoResetHeader = "x-sib-ratelimit-reset"
)

// brevoTransientMarkers are the words that make a per-event failure of a 207 retryable.
// The documented reply carries no per-event status, only a message, and Brevo describes
// these failures as validation failures: Permanent unless the message says the fault was
// Brevo's own and passing. (An upstream's text, not a Go error: there is nothing to
// errors.Is against.)
var brevoTransientMarkers = []string{
	"internal", "timeout", "timed out", "temporar", "unavailable", "try again", "rate limit", "too many",
}

// brevoAdapter delivers Brevo v3 events (batched when configured) and legacy trackEvents.
type brevoAdapter struct {
	eventsURL, batchURL, trackURL string
	apiKey, maKey                 string
	batch                         bool
	t                             *Transport
}

var _ delivery.Adapter = (*brevoAdapter)(nil)

// newBrevoAdapter builds the Brevo adapter from its config section.
func newBrevoAdapter(cfg *BrevoConfig) delivery.Adapter {
	return &brevoAdapter{
		eventsURL: cfg.BaseURL + "/v3/events",
		batchURL:  cfg.BaseURL + "/v3/events/batch",
		trackURL:  cfg.TrackerURL + "/api/v2/trackEvent",
		apiKey:    cfg.APIKey,
		maKey:     cfg.MAKey,
		batch:     cfg.Batch,
		t:         deliveryTransport(cfg.Delivery, cfg.APIKey, cfg.MAKey),
	}
}

// Provider returns "brevo".
func (a *brevoAdapter) Provider() string { return Brevo }

// BatchKey returns "v3" for v3 events when batching is configured, "" otherwise (the
// legacy tracker has no batch API). The weight grows with the body size (see
// brevoWeightBytes).
func (a *brevoAdapter) BatchKey(m *delivery.Message) (string, int) {
	if a.batch && m.Route == brevoEventsRoute {
		return brevoBatchKey, brevoWeight(m)
	}
	return "", 1
}

func brevoWeight(m *delivery.Message) int { return 1 + len(m.Body)/brevoWeightBytes }

// Brevo's two APIs are the relay's two lanes (relay/forward.Lanes): other hosts, other
// keys (api_key, ma_key), other limits. Each has its own circuit breaker and Retry-After
// pause, so a bad ma_key or a tracker outage does not stop v3 delivery, nor the reverse.
const (
	brevoLaneV3      = "v3"
	brevoLaneTracker = "tracker"
)

// Lanes names Brevo's lanes: the v3 API, then the legacy tracker.
func (a *brevoAdapter) Lanes() []string { return []string{brevoLaneV3, brevoLaneTracker} }

// Lane returns "tracker" for trackEvent, "v3" for everything else.
func (a *brevoAdapter) Lane(m *delivery.Message) string {
	if m.Route == brevoTrackRoute {
		return brevoLaneTracker
	}
	return brevoLaneV3
}

// MaxBatchWeight returns 100 with batching, 1 without.
func (a *brevoAdapter) MaxBatchWeight() int {
	if a.batch {
		return brevoMaxBatch
	}
	return 1
}

// Deliver sends batch: v3 events through /v3/events/batch when batching is configured,
// anything else one event per request.
func (a *brevoAdapter) Deliver(ctx context.Context, batch []*delivery.Message) []error {
	if a.batch && len(batch) > 0 && a.batchable(batch) {
		return a.deliverBatch(ctx, batch)
	}
	return deliverEach(batch, func(m *delivery.Message) error { return a.deliverOne(ctx, m) })
}

// batchable reports whether batch fits one /v3/events/batch request: v3 events only, and
// within MaxBatchWeight unless it is a single (heavy) event.
func (a *brevoAdapter) batchable(batch []*delivery.Message) bool {
	w := 0
	for _, m := range batch {
		if m.Route != brevoEventsRoute {
			return false
		}
		w += brevoWeight(m)
	}
	return len(batch) == 1 || w <= brevoMaxBatch
}

// deliverOne sends one event to /v3/events or to the legacy tracker.
func (a *brevoAdapter) deliverOne(ctx context.Context, m *delivery.Message) error {
	var url, header, key, setting string
	switch m.Route {
	case brevoEventsRoute:
		url, header, key, setting = a.eventsURL, "api-key", a.apiKey, "api_key"
	case brevoTrackRoute:
		url, header, key, setting = a.trackURL, "ma-key", a.maKey, "ma_key"
	default:
		return unknownRoute(m)
	}
	if _, err := parseBody(m); err != nil {
		return err
	}
	if key == "" {
		return noBrevoKey(m, setting)
	}
	return roundTrip(ctx, a.t, &Request{URL: url, Header: []Header{brevoAccept, {Name: header, Value: key}}, Body: m.Body}, a.classify)
}

// brevoAccept is sent on every Brevo request, v3 and tracker alike, as both APIs'
// documents show it.
var brevoAccept = Header{Name: "accept", Value: "application/json"}

// noBrevoKey is the error of an event whose route lost its key (queued before a config
// change): a config fault like a 401, so the event waits for the fix instead of being
// sent without credentials.
func noBrevoKey(m *delivery.Message, setting string) error {
	return fmt.Errorf("event %s: %w: providers.brevo.%s is not set", m.ID, errNoKey, setting)
}

// deliverBatch sends v3 events in one /v3/events/batch request. Corrupt bodies are left
// out (Permanent); the reply's event indexes refer to the events actually sent.
func (a *brevoAdapter) deliverBatch(ctx context.Context, batch []*delivery.Message) []error {
	out := make([]error, len(batch))
	sent := make([]int, 0, len(batch)) // positions in batch of the events in the request
	body := append(make([]byte, 0, 64*len(batch)), `{"events":[`...)
	for i, m := range batch {
		if _, err := parseBody(m); err != nil {
			out[i] = err
			continue
		}
		if len(sent) > 0 {
			body = append(body, ',')
		}
		body = append(body, m.Body...)
		sent = append(sent, i)
	}
	body = append(body, "]}"...)
	if len(sent) == 0 {
		return out
	}
	var errs []error
	if a.apiKey == "" {
		errs = results(len(sent), noBrevoKey(batch[sent[0]], "api_key"))
	} else if reply, err := a.t.Do(ctx, &Request{
		URL:    a.batchURL,
		Header: []Header{brevoAccept, {Name: "api-key", Value: a.apiKey}},
		Body:   body,
	}); err != nil {
		errs = results(len(sent), err)
	} else {
		errs = a.readBatch(reply, len(sent), time.Now())
	}
	for j, i := range sent {
		out[i] = errs[j]
	}
	return out
}

// readBatch reads the reply to a batch of n events into one result per event.
func (a *brevoAdapter) readBatch(r *Reply, n int, now time.Time) []error {
	switch s := r.Status; {
	case s == 207:
		return a.readPartial(r, n)
	case s >= 200 && s < 300: // 202: every event queued
		return make([]error, n)
	case s == 400:
		// Every event failed validation. The reply may say why per event; either way
		// none of them will ever pass.
		fails, ok := a.parseBatchFailures(r.Body, n)
		out := make([]error, n)
		for i := range out {
			msg := r.Snippet()
			if ok && fails[i] != nil {
				msg = fails[i].msg
			}
			out[i] = delivery.Permanent(&delivery.HTTPError{Status: s, Message: msg})
		}
		return out
	default:
		return results(n, a.classify(r, now))
	}
}

// readPartial reads a 207: the events listed as failed get their own error (Permanent
// unless the failure is transient), the others were accepted.
func (a *brevoAdapter) readPartial(r *Reply, n int) []error {
	fails, ok := a.parseBatchFailures(r.Body, n)
	if !ok {
		// Brevo accepted some events and refused others, and the reply does not say which
		// (cut off, changed shape, inconsistent). Retrying all of them resends the accepted
		// ones, which duplicates them in Brevo; declaring all delivered would silently lose
		// the refused ones, and dead-lettering all would lose the accepted-but-unknown
		// ones. Duplicates are better than loss (Guarantee 3).
		return results(n, &delivery.HTTPError{Status: r.Status,
			Message: "partial success, but the reply does not say which events failed; retrying all: " + r.Snippet()})
	}
	out := make([]error, n)
	for i, f := range fails {
		if f == nil {
			continue
		}
		err := error(&delivery.HTTPError{Status: r.Status, Message: "event refused: " + f.msg})
		if !f.transient {
			err = delivery.Permanent(err)
		}
		out[i] = err
	}
	return out
}

// brevoFailure is one event's failure in a batch reply.
type brevoFailure struct {
	msg       string // redacted excerpt of Brevo's message
	transient bool
}

// brevoBatchReply is Brevo's batchEventsResponse, the body of a 207 or 400 to
// POST /v3/events/batch: {"status":..., "total_events":N, "successful_events":N,
// "failed_events":N, "errors":[{"eventIndex":[0-based indexes], "message":"..."}]}.
// Source: developers.brevo.com/reference/create-batch-events (schema batchEventsResponse,
// BatchEventsResponseErrorsItems) and the changelog of 2026-03-03 ("207 with a breakdown
// of successful and failed events, including per-event error messages").
type brevoBatchReply struct {
	FailedEvents *int               `json:"failed_events"`
	Errors       *[]brevoBatchError `json:"errors"`
}

type brevoBatchError struct {
	// EventIndex is documented as an array of indexes; a bare number is accepted too.
	EventIndex json.RawMessage `json:"eventIndex"`
	Message    string          `json:"message"`
}

// parseBatchFailures returns, per event of a batch of n, its failure or nil when the
// reply does not list it. ok is false when the reply cannot be trusted to name every
// failed event: not JSON, no errors list, no failure listed at all, an index outside the
// batch, or fewer events listed than failed_events counts.
func (a *brevoAdapter) parseBatchFailures(body []byte, n int) ([]*brevoFailure, bool) {
	var rep brevoBatchReply
	if err := json.Unmarshal(body, &rep); err != nil || rep.Errors == nil {
		return nil, false
	}
	fails := make([]*brevoFailure, n)
	listed := 0
	for _, e := range *rep.Errors {
		idx, ok := brevoIndexes(e.EventIndex)
		if !ok {
			return nil, false
		}
		f := &brevoFailure{msg: excerpt([]byte(e.Message), a.t.redact), transient: brevoTransient(e.Message)}
		for _, i := range idx {
			if i < 0 || i >= n {
				return nil, false
			}
			switch old := fails[i]; {
			case old == nil:
				fails[i] = f
				listed++
			case old.transient && !f.transient:
				// One permanent reason is enough: a retry would be refused again.
				fails[i] = f
			}
		}
	}
	if listed == 0 || rep.FailedEvents != nil && *rep.FailedEvents > listed {
		return nil, false
	}
	return fails, true
}

// brevoIndexes reads eventIndex: an array of integers, or one integer.
func brevoIndexes(raw json.RawMessage) ([]int, bool) {
	var many []int
	if err := json.Unmarshal(raw, &many); err == nil && many != nil {
		return many, true
	}
	var one int
	if err := json.Unmarshal(raw, &one); err == nil && len(raw) > 0 && raw[0] != 'n' {
		return []int{one}, true
	}
	return nil, false
}

// brevoTransient reports whether Brevo's message for a failed event describes a passing
// fault on Brevo's side rather than an invalid event.
func brevoTransient(msg string) bool {
	msg = strings.ToLower(msg)
	for _, w := range brevoTransientMarkers {
		if strings.Contains(msg, w) {
			return true
		}
	}
	return false
}

// classify is Classify with Brevo's rate-limit header: a 429 waits x-sib-ratelimit-reset
// seconds (clamped like Retry-After), falling back to Retry-After should Brevo add it.
func (a *brevoAdapter) classify(r *Reply, now time.Time) error {
	if r.Status == 429 {
		if d, ok := ParseRetryAfter(r.Header(brevoResetHeader), now); ok {
			return delivery.RetryAfter(d, &delivery.HTTPError{Status: r.Status, Message: r.Snippet()})
		}
	}
	return Classify(r, now)
}
