package delivery

import (
	"errors"
	"strconv"
	"time"
)

// What an adapter's error says happens next to the event:
//   - nil: delivered;
//   - Permanent(err): never retried, dead-lettered at once (the upstream refused the event);
//   - RetryAfter(d, err): retried, no earlier than d from now, and the whole provider pauses
//     for d (the upstream asked for it, e.g. 429 with Retry-After);
//   - any other error: retried after the forwarder's backoff.
// Every error except Permanent also counts as a failure for the provider's circuit breaker:
// a 400 proves the upstream healthy, a 500, a timeout or a rejected credential does not.
// Wrap an *HTTPError inside to record the upstream status.

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as final for the event: it goes to the dead-letter stream.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err (or an error it wraps) was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type retryAfterError struct {
	after time.Duration
	err   error
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter marks err as retryable no earlier than d from now.
func RetryAfter(d time.Duration, err error) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{after: d, err: err}
}

// RetryDelay returns the delay of a RetryAfter error.
func RetryDelay(err error) (time.Duration, bool) {
	var r *retryAfterError
	if errors.As(err, &r) {
		return r.after, true
	}
	return 0, false
}

// HTTPError is an upstream reply that was not a success.
type HTTPError struct {
	// Status is the HTTP status code.
	Status int
	// Message is a short excerpt of the reply body with every secret redacted.
	Message string
}

func (e *HTTPError) Error() string {
	if e.Message == "" {
		return "HTTP " + strconv.Itoa(e.Status)
	}
	return "HTTP " + strconv.Itoa(e.Status) + ": " + e.Message
}

// StatusOf returns the HTTP status inside err, or 0 when the attempt got no reply.
func StatusOf(err error) int {
	var h *HTTPError
	if errors.As(err, &h) {
		return h.Status
	}
	return 0
}
