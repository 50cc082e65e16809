package providers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/strictjson"
)

// Plumbing shared by the outbound adapters (the *_upstream.go files): the checks every
// stored event goes through, and one attempt read by a provider's classifier. Like a
// net/http RoundTripper, none of it retries, sleeps or touches the queue.

var (
	// errBatchShape means the forwarder handed over a batch the adapter cannot send in one
	// request (several events to a provider without a batch API, mixed routes, too many
	// events). It is a relay bug, not the events' fault, so it is not Permanent: the events
	// wait and are retried, and end in the dead-letter stream if the bug persists.
	errBatchShape = errors.New("batch cannot be sent in one upstream request")
	// errCorruptBody means the stored body is not the JSON object ingest validated.
	errCorruptBody = errors.New("stored body is not a JSON object")
	// errUnknownRoute means the event's route is not one this adapter serves.
	errUnknownRoute = errors.New("route is not served by this adapter")
	// errNoKey means the credential a route needs is not configured.
	errNoKey = errors.New("no credential configured for this route")
)

// unbatched is embedded by the adapters of providers without a batch API: every event
// goes alone.
type unbatched struct{}

// BatchKey returns "": the event is always sent alone.
func (unbatched) BatchKey(*delivery.Message) (string, int) { return "", 1 }

// MaxBatchWeight returns 1: one event per request.
func (unbatched) MaxBatchWeight() int { return 1 }

// deliveryTransport is the Transport of a provider from its delivery settings, redacting
// its secrets.
func deliveryTransport(d config.Delivery, secrets ...string) *Transport {
	return NewTransport(TransportOptions{Timeout: d.Timeout, MaxConns: d.Workers, Secrets: secrets})
}

// deliverEach is Deliver for adapters that send one event per request: batch must hold
// exactly one event (the forwarder guarantees it for BatchKey ""; anything else is
// refused without a request).
func deliverEach(batch []*delivery.Message, send func(m *delivery.Message) error) []error {
	if len(batch) != 1 {
		return results(len(batch), fmt.Errorf("%w: %d events for a one-event request", errBatchShape, len(batch)))
	}
	return []error{send(batch[0])}
}

// parseBody parses the stored body of m, which must be a JSON object. A body that does
// not parse was damaged after ingest validated it: retrying cannot repair it, so the
// error is Permanent.
func parseBody(m *delivery.Message) (strictjson.Value, error) {
	v, err := strictjson.Parse(m.Body, 0)
	if err != nil {
		return strictjson.Value{}, delivery.Permanent(fmt.Errorf("event %s: %w: %w", m.ID, errCorruptBody, err))
	}
	if v.Kind != strictjson.Object {
		return strictjson.Value{}, delivery.Permanent(fmt.Errorf("event %s: %w: it is a %s", m.ID, errCorruptBody, v.Kind))
	}
	return v, nil
}

// absent reports whether member key of v is missing or null. Ingest refuses an explicit
// null, but events queued before it did may still hold one: the adapters fill such
// members too.
func absent(v *strictjson.Value, key string) bool {
	m := v.Get(key)
	return m == nil || m.Kind == strictjson.Null
}

// unknownRoute is the Permanent error of an event whose route the adapter does not serve.
func unknownRoute(m *delivery.Message) error {
	return delivery.Permanent(fmt.Errorf("event %s: %w: %q", m.ID, errUnknownRoute, m.Route))
}

// roundTrip makes one attempt and reads it: an attempt that got no reply (connect error,
// timeout, reset) returns the Transport's error, which is retryable with StatusOf 0; a
// reply of any status goes to classify.
func roundTrip(ctx context.Context, t *Transport, req *Request, classify func(*Reply, time.Time) error) error {
	reply, err := t.Do(ctx, req)
	if err != nil {
		return err
	}
	return classify(reply, time.Now())
}
