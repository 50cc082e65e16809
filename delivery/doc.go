// Package delivery is the contract between the relay's engine and its providers: the
// Message a provider delivers, the Adapter interface every provider implements, and the
// errors with which an adapter says what happens next to an event (Permanent, RetryAfter,
// retryable by default; HTTPError records the upstream status).
//
// It is a leaf: it imports no Redis client and no provider. relay/forward depends on it
// and never on package providers; providers depend on it and never on Redis. cmd/relay
// wires the two together.
package delivery
