package providers

import (
	"net/url"
	"strconv"
	"time"

	"github.com/eventrelay/relay/delivery"
)

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
// against the breaker, and the event waits for the fix); 3xx → retryable (the Transport
// follows no redirect, so a redirect means base_url is wrong or moved: a configuration
// fault like 401, not the event's); any other status → Permanent.
// Provider files handle their special cases first and fall back to this.
func Classify(r *Reply, now time.Time) error {
	switch s := r.Status; {
	case s >= 200 && s < 300:
		return nil
	case s == 408 || s == 429 || s >= 500:
		err := error(&delivery.HTTPError{Status: s, Message: r.Snippet()})
		if d, ok := ParseRetryAfter(r.Header("Retry-After"), now); ok {
			return delivery.RetryAfter(d, err)
		}
		return err
	case s == 401:
		return &delivery.HTTPError{Status: s, Message: "upstream refused the relay's credential: check the provider's key in the config"}
	case s >= 300 && s < 400:
		return &delivery.HTTPError{Status: s, Message: redirectMessage(r)}
	default:
		return delivery.Permanent(&delivery.HTTPError{Status: s, Message: r.Snippet()})
	}
}

// redirectMessage explains a 3xx: which host it pointed to (never the path or query,
// which may carry tokens) and which setting is likely wrong.
func redirectMessage(r *Reply) string {
	to := "no Location"
	if loc := r.Header("Location"); loc != "" {
		to = "a relative Location"
		if u, err := url.Parse(loc); err == nil && u.Host != "" {
			to = excerpt([]byte(u.Host), r.redact)
		}
	}
	return "upstream redirected (" + strconv.Itoa(r.Status) + " to " + to +
		"): redirects are not followed; check the provider's base_url in the config"
}
