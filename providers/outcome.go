package providers

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

// Retry-After and x-sib-ratelimit-reset are clamped to this range: a hostile or broken
// upstream must neither make the relay hammer it nor park events for days.
const (
	minRetryAfter = time.Second
	maxRetryAfter = time.Hour
)

// ParseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date. The result is
// clamped to 1 s–1 h; ok is false when v is empty or unreadable.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs != secs { // NaN
			return 0, false
		}
		// Bounded on both sides before converting: Go leaves the conversion of an
		// out-of-range float (-1e300, -Inf) to an integer implementation-defined.
		d = time.Duration(max(min(secs, maxRetryAfter.Seconds()), 0) * float64(time.Second))
	} else if t, err := time.Parse(time.RFC1123, v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	return min(max(d, minRetryAfter), maxRetryAfter), true
}

// Classify is the default reading of an upstream reply:
// 2xx → nil; 408, 429, 5xx → retryable (honouring Retry-After); 401 → retryable (the
// relay's own credential is wrong or expired: a fault of the whole provider, so it counts
// against the breaker, and the event waits for the fix); any other 4xx → Permanent.
// Provider files handle their special cases first and fall back to this.
func Classify(r *Reply, now time.Time) error {
	switch s := r.Status; {
	case s >= 200 && s < 300:
		return nil
	case s == 408 || s == 429 || s >= 500:
		err := error(&HTTPError{Status: s, Message: r.Snippet()})
		if d, ok := ParseRetryAfter(r.Header("Retry-After"), now); ok {
			return RetryAfter(d, err)
		}
		return err
	case s == 401:
		return &HTTPError{Status: s, Message: "upstream refused the relay's credential: check the provider's key in the config"}
	default:
		return Permanent(&HTTPError{Status: s, Message: r.Snippet()})
	}
}
