package delivery

import "context"

// Adapter is one provider's outbound side: it turns stored events into upstream requests
// (attaching the secret at send time) and reads the replies. It holds no queue logic: the
// forwarder reads, rate-limits, asks the breaker, calls Deliver and records outcomes.
type Adapter interface {
	// Provider returns the provider name ("ens").
	Provider() string
	// BatchKey groups events that may share one upstream request, and gives the event's
	// weight against MaxBatchWeight (Cardlytics: its number of clientEvents). Key "" means
	// the event is always sent alone.
	BatchKey(m *Message) (key string, weight int)
	// MaxBatchWeight is the most weight one request may carry; 1 without a batch API.
	MaxBatchWeight() int
	// Deliver makes one upstream request for batch (all events share one BatchKey, their
	// weights sum to at most MaxBatchWeight) and returns one result per event, in order:
	// nil when delivered, otherwise an error saying what happens next (see outcome.go).
	Deliver(ctx context.Context, batch []*Message) []error
}
