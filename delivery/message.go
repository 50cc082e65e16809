package delivery

import "time"

// Message is one validated event on its way to a provider. It has no field for a provider
// secret on purpose: secrets are attached by the adapter when it sends, never stored.
type Message struct {
	// ID is the relay's event id (client Idempotency-Key or generated).
	ID string
	// Provider selects the stream ("ens"); it is the key's hash tag, not an entry field.
	Provider string
	// Route is the ingest route without /v1/ ("ens/click").
	Route string
	// Body is the validated provider body (JSON).
	Body []byte
	// ReceivedAt is when ingest accepted the request; stored with millisecond precision.
	ReceivedAt time.Time
	// ClientIP, UserAgent and Country are enrichment; any may be empty.
	ClientIP, UserAgent, Country string
	// CustomerID is the Cardlytics customer id, or empty.
	CustomerID string
	// Source names the caller: "site:<name>" (a browser) or "client:<name>" (a backend).
	Source string
}
