package providers

import (
	"net/http"
	"testing"
	"time"

	"github.com/eventrelay/relay/delivery"
)

// FuzzParseRetryAfter feeds arbitrary Retry-After (and x-sib-ratelimit-reset) values, at
// arbitrary clocks, to ParseRetryAfter and to Classify. Neither may panic; a value that is
// read gives a delay within 1 s..1 h (an upstream must neither make the relay hammer it
// nor park its events for days), one that is not gives 0; and Classify's delay for a 429
// or 503 is exactly ParseRetryAfter's. Run:
// go test -run '^$' -fuzz '^FuzzParseRetryAfter$' -fuzztime 30s ./providers/
func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC)
	for _, v := range []string{
		"", "0", "1", "2", "1.5", "-5", "3600", "3601", "999999", "1e300", "-1e300", "1e-300", "Inf", "-Inf", "NaN",
		"+Inf", "0x10", "1_000", " 5", "5 ", "９", "1e309", "-0", "9223372036854775807", "18446744073709551616",
		now.Add(90 * time.Second).Format(http.TimeFormat), now.Add(-time.Hour).Format(http.TimeFormat),
		"Mon, 01 Jan 0001 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", "Tue, 03 Mar 2026 12:00:30 PST",
		"Tue, 03 Mar 2026 12:00:30 +0900", "2026-03-03T12:00:30Z",
	} {
		f.Add(v, now.UnixNano())
	}
	f.Add("Tue, 03 Mar 2026 12:00:30 GMT", int64(-1<<63))
	f.Add("Tue, 03 Mar 2026 12:00:30 GMT", int64(1<<63-1))
	f.Fuzz(func(t *testing.T, v string, nowNanos int64) {
		at := time.Unix(0, nowNanos).UTC()
		d, ok := ParseRetryAfter(v, at)
		switch {
		case ok && (d < time.Second || d > time.Hour):
			t.Fatalf("ParseRetryAfter(%q, %v) = %v, outside 1s..1h", v, at, d)
		case !ok && d != 0:
			t.Fatalf("ParseRetryAfter(%q, %v) = %v, false; want 0 when not read", v, at, d)
		case v == "" && ok:
			t.Fatalf("ParseRetryAfter(\"\") read a delay %v", d)
		}
		for _, status := range []int{429, 503} {
			err := Classify(outReply(status, "slow down", "Retry-After", v), at)
			got, set := delivery.RetryDelay(err)
			if err == nil || delivery.IsPermanent(err) || delivery.StatusOf(err) != status || set != ok || got != d {
				t.Fatalf("Classify(%d, Retry-After %q) = %v (delay %v, %v); want retryable %d with delay %v, %v",
					status, v, err, got, set, status, d, ok)
			}
		}
	})
}
