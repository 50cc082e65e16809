package providers

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/eventrelay/relay/delivery"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"soon", 0, false},
		{"NaN", 0, false},
		{"2", 2 * time.Second, true},
		{"1.5", 1500 * time.Millisecond, true},
		{"3600", time.Hour, true},
		// Clamped to 1 s–1 h: a hostile or broken upstream must neither make the relay
		// hammer it nor park events for days.
		{"0", time.Second, true},
		{"0.2", time.Second, true},
		{"-5", time.Second, true},
		{"999999", time.Hour, true},
		{"1e300", time.Hour, true},
		{"Inf", time.Hour, true},
		{"-Inf", time.Second, true},
		// HTTP dates, relative to now.
		{date(90 * time.Second), 90 * time.Second, true},
		{date(-time.Minute), time.Second, true},
		{date(48 * time.Hour), time.Hour, true},
		{"Tue, 03 Mar 2026 12:00:30 GMT", 30 * time.Second, true},
		{"2026-03-03T12:00:30Z", 0, false}, // not an HTTP date
	} {
		got, ok := ParseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// outReply builds a Reply as the Transport would.
func outReply(status int, body string, header ...string) *Reply {
	r := &Reply{Status: status, Body: []byte(body), redact: strings.NewReplacer("s3cr3t-key-0123", "[redacted]")}
	for i := 0; i+1 < len(header); i += 2 {
		r.header = append(r.header, Header{Name: header[i], Value: header[i+1]})
	}
	return r
}

func TestClassify(t *testing.T) {
	now := time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC)
	const (
		ok   = "delivered"
		perm = "permanent"
		retr = "retryable"
	)
	for _, tc := range []struct {
		r     *Reply
		want  string
		delay time.Duration // > 0: want delivery.RetryDelay
	}{
		{outReply(200, `{"ok":true}`), ok, 0},
		{outReply(201, ``), ok, 0},
		{outReply(202, ``), ok, 0},
		{outReply(204, ``), ok, 0},
		{outReply(299, ``), ok, 0},
		// 3xx is not success: the Transport follows no redirect. It means base_url moved
		// or is wrong, a configuration fault like 401: retryable until fixed.
		{outReply(301, ``, "Location", "http://elsewhere/"), retr, 0},
		{outReply(302, ``), retr, 0},
		{outReply(304, ``), retr, 0},
		{outReply(307, ``, "Location", "/v2/"), retr, 0},
		{outReply(308, ``), retr, 0},
		{outReply(400, `{"message":"campaignId is required"}`), perm, 0},
		{outReply(402, ``), perm, 0},
		{outReply(403, ``), perm, 0},
		{outReply(404, ``), perm, 0},
		{outReply(409, ``), perm, 0},
		{outReply(422, ``), perm, 0},
		// 401: the relay's own credential; retryable so the event waits for the fix.
		{outReply(401, `{"message":"unauthorized"}`), retr, 0},
		{outReply(408, ``), retr, 0},
		{outReply(429, ``), retr, 0},
		{outReply(429, ``, "retry-after", "7"), retr, 7 * time.Second},
		{outReply(503, ``, "Retry-After", now.Add(time.Minute).Format(http.TimeFormat)), retr, time.Minute},
		{outReply(503, ``, "Retry-After", "garbage"), retr, 0},
		{outReply(500, ``), retr, 0},
		{outReply(502, ``), retr, 0},
		{outReply(504, ``), retr, 0},
		{outReply(599, ``), retr, 0},
	} {
		name := fmt.Sprintf("%d %v", tc.r.Status, tc.r.header)
		err := Classify(tc.r, now)
		got := ok
		switch {
		case delivery.IsPermanent(err):
			got = perm
		case err != nil:
			got = retr
		}
		if got != tc.want {
			t.Errorf("%s: %s (%v), want %s", name, got, err, tc.want)
			continue
		}
		if err != nil && delivery.StatusOf(err) != tc.r.Status {
			t.Errorf("%s: StatusOf = %d", name, delivery.StatusOf(err))
		}
		if d, has := delivery.RetryDelay(err); has != (tc.delay > 0) || d != tc.delay {
			t.Errorf("%s: RetryDelay = %v, %v; want %v", name, d, has, tc.delay)
		}
	}
	// A redirect names the host it points to (never its path or query) and the setting.
	if err := Classify(outReply(301, ``, "Location", "https://moved.example:8443/api/v1?token=tk-secret-1"), now); err == nil ||
		!strings.Contains(err.Error(), "upstream redirected (301 to moved.example:8443)") ||
		!strings.Contains(err.Error(), "base_url") || strings.Contains(err.Error(), "tk-secret") || strings.Contains(err.Error(), "/api") {
		t.Errorf("301 error %q: want the host only and base_url named", err)
	}
	if err := Classify(outReply(400, `{"message":"bad"}`), now); !strings.Contains(err.Error(), "HTTP 400: ") ||
		!strings.Contains(err.Error(), "bad") {
		t.Errorf("400 error %q lacks the status or the reply excerpt", err)
	}
	if err := Classify(outReply(401, `key s3cr3t-key-0123 unknown`), now); strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("401 error %q holds the reply", err)
	}
}

func TestOutcomeWrapping(t *testing.T) {
	if delivery.Permanent(nil) != nil || delivery.RetryAfter(time.Second, nil) != nil {
		t.Error("wrapping nil must stay nil")
	}
	base := &delivery.HTTPError{Status: 503}
	err := fmt.Errorf("attempt: %w", delivery.RetryAfter(2*time.Second, base))
	if d, ok := delivery.RetryDelay(err); !ok || d != 2*time.Second || delivery.StatusOf(err) != 503 || delivery.IsPermanent(err) {
		t.Errorf("wrapped RetryAfter: %v, %v, %d, %v", d, ok, delivery.StatusOf(err), delivery.IsPermanent(err))
	}
	err = fmt.Errorf("event e1: %w", delivery.Permanent(&delivery.HTTPError{Status: 400, Message: "bad"}))
	var h *delivery.HTTPError
	if !delivery.IsPermanent(err) || delivery.StatusOf(err) != 400 || !errors.As(err, &h) || h.Message != "bad" {
		t.Errorf("wrapped Permanent: %v", err)
	}
	if delivery.StatusOf(errors.New("connect: refused")) != 0 || delivery.StatusOf(nil) != 0 || delivery.IsPermanent(nil) {
		t.Error("no reply: StatusOf must be 0, nil not permanent")
	}
	if s := (&delivery.HTTPError{Status: 502}).Error(); s != "HTTP 502" {
		t.Errorf("HTTPError without message: %q", s)
	}
}

func TestSnippet(t *testing.T) {
	const secret = "s3cr3t-key-0123"
	for _, tc := range []struct{ name, body string }{
		{"echoed", `{"error":"invalid api key ` + secret + `"}`},
		// A secret straddling the cut must not leak its start.
		{"straddling the cut", strings.Repeat("x", snippetBytes-5) + secret},
		{"long", strings.Repeat("é", 1000) + secret},
		{"control characters", "line1\nline2\r\x00\x1b[31m" + secret + "\xff\xfe"},
	} {
		s := outReply(500, tc.body).Snippet()
		if strings.Contains(s, secret[:5]) || len(s) > snippetBytes || !utf8.ValidString(s) ||
			strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 }) {
			t.Errorf("%s: snippet %q", tc.name, s)
		}
	}
	if s := outReply(400, "  short \n").Snippet(); s != "short" {
		t.Errorf("snippet %q, want the trimmed body", s)
	}
}
