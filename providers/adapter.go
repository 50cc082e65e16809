package providers

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/relay/queue"
)

// Adapter is one provider's outbound side: it turns stored events into upstream requests
// (attaching the secret at send time) and reads the replies. It holds no queue logic: the
// forwarder reads, rate-limits, asks the breaker, calls Deliver and records outcomes.
type Adapter interface {
	// Provider returns the provider name ("ens").
	Provider() string
	// BatchKey groups events that may share one upstream request, and gives the event's
	// weight against MaxBatchWeight (Cardlytics: its number of clientEvents). Key "" means
	// the event is always sent alone.
	BatchKey(m *queue.Message) (key string, weight int)
	// MaxBatchWeight is the most weight one request may carry; 1 without a batch API.
	MaxBatchWeight() int
	// Deliver makes one upstream request for batch (all events share one BatchKey, their
	// weights sum to at most MaxBatchWeight) and returns one result per event, in order:
	// nil when delivered, otherwise an error saying what happens next (see outcome.go).
	// Cardlytics may also start a session first, and retry once on 401.
	Deliver(ctx context.Context, batch []*queue.Message) []error
}

// NewAdapters builds the adapter of every enabled provider, keyed by provider name. An
// explicit switch: adding a provider means adding a case here.
func NewAdapters(p config.Providers, log *zap.Logger) (map[string]Adapter, error) {
	out := map[string]Adapter{}
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
