package queue

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eventrelay/relay/delivery"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	body := []byte(`{"a":"\u0000 \"quoted\" \\ é","b":[1,2]}` + "\x00\xff\x01binary")
	for name, m := range map[string]*delivery.Message{
		"typical": testMessage("ens", 1),
		"uuid and ipv4": {ID: "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f", Provider: "bannerflex", Route: "bannerflex/banner-events",
			Body: body, ReceivedAt: time.UnixMilli(1718000000123), ClientIP: "192.0.2.1", UserAgent: "Mozilla/5.0", Source: "site:shop"},
		"upper-case uuid stays text": {ID: "3F1C2A9E-8B7D-4C6E-9F10-2A3B4C5D6E7F", Provider: "ens", Route: "ens/click", Body: []byte(`{}`),
			ReceivedAt: time.UnixMilli(1)},
		"ipv6 and odd ip text": {ID: "x", Provider: "ens", Route: "ens/click", Body: []byte(`{}`), ClientIP: "2001:DB8::1",
			ReceivedAt: time.UnixMilli(5)},
		"ipv4-mapped ipv6": {ID: "x", Provider: "ens", Route: "ens/click", Body: []byte(`{}`), ClientIP: "::ffff:192.0.2.1"},
		"not an ip":        {ID: "x", Provider: "ens", Route: "ens/click", Body: []byte(`{}`), ClientIP: "unknown"},
		"route of another provider": {ID: "y", Provider: "ens", Route: "brevo/events", Body: []byte(`{}`),
			ReceivedAt: time.UnixMilli(-1000)},
		"route that only starts like the provider": {ID: "y", Provider: "ens", Route: "ensx/click", Body: []byte(`{}`)},
		"route that is the provider":               {ID: "y", Provider: "ens", Route: "ens", Body: []byte(`{}`)},
		"empty body, long values": {ID: strings.Repeat("k", 128), Provider: "cardlytics", Route: "cardlytics/x",
			UserAgent: strings.Repeat("u", 300), Country: "DE", CustomerID: "cust-1", Source: "client:backend"},
	} {
		var e entry
		e.set(m, "t:{"+m.Provider+"}:seen:", ClientID)
		got := DecodeEntry(m.Provider, "1-0", map[string]any{FieldEnvelope: string(e.env)})
		if got.Bad != nil || !equalMessage(got.Message, *m) {
			t.Errorf("%s: %+v (%v), want %+v", name, got.Message, got.Bad, *m)
		}
		if got.Attempts != 0 || got.Status != 0 || got.Error != "" || got.ingest != string(e.env) {
			t.Errorf("%s: attempts %d, status %d, error %q, ingest %q", name, got.Attempts, got.Status, got.Error, got.ingest)
		}
		// A retry member: the same envelope with a trailer.
		member := retryMember(got, 3, 503, "HTTP 503: down")
		r := DecodeEntry(m.Provider, "2-0", map[string]any{FieldEnvelope: member})
		if r.Bad != nil || !equalMessage(r.Message, *m) || r.Attempts != 3 || r.Status != 503 || r.Error != "HTTP 503: down" || r.ingest != got.ingest {
			t.Errorf("%s: retried %+v", name, r)
		}
		if at, ok := RetryMemberAt(member); !ok || at != m.ReceivedAt.UnixMilli() {
			t.Errorf("%s: RetryMemberAt %d %v", name, at, ok)
		}
	}
}

// A typical event's envelope: about 80 bytes shorter than its nine fields, and the form
// the flags promise.
func TestEnvelopeIsCompact(t *testing.T) {
	m := &delivery.Message{ID: "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f", Provider: "ens", Route: "ens/click", Body: []byte(`{}`),
		ReceivedAt: time.UnixMilli(1718000000123), ClientIP: "203.0.113.7", Source: "s"}
	env := appendEnvelope(nil, m)
	// version, flags, at (6), id (1+16), route "click" (1+5), body (1+2), ip (1+4), ua,
	// country, customer (1 each), src (1+1).
	if want := 2 + 6 + 17 + 6 + 3 + 5 + 3 + 2; len(env) != want {
		t.Errorf("envelope of %d bytes, want %d: %q", len(env), want, env)
	}
	if env[1] != flagRelativeRoute|flagIPv4|flagUUID {
		t.Errorf("flags %#x", env[1])
	}
}

func TestEnvelopeMalformed(t *testing.T) {
	var e entry
	e.set(testMessage("ens", 1), "", RelayID)
	good := string(e.env)
	withTrailer := string(appendTrailer([]byte(good), 2, 500, "boom"))
	cases := map[string]any{
		"empty":           "",
		"not a string":    42,
		"version 2":       "\x02" + good[1:],
		"unknown flag":    good[:1] + "\x80" + good[2:],
		"extra byte":      good + "\x00",
		"short trailer":   withTrailer[:len(withTrailer)-2],
		"trailing bytes":  withTrailer + "x",
		"long length":     "\x01\x00\x00\x7fx",
		"bad uuid length": "\x01\x04\x00\x01x",
		"empty id":        "\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
	}
	for i := 1; i < len(good); i++ {
		cases["cut at "+string(rune('0'+i%10))+strings.Repeat("'", i/10)] = good[:i]
	}
	for name, v := range cases {
		got := DecodeEntry("ens", "1-0", map[string]any{FieldEnvelope: v})
		if !errors.Is(got.Bad, ErrMalformedEntry) || got.Reason != DeadMalformed {
			t.Errorf("%s: %v %q, want ErrMalformedEntry, malformed", name, got.Bad, got.Reason)
		}
	}
}

// The ingest hot path: building an entry allocates nothing once its buffer is large
// enough, as with the nine fields before.
func TestEntrySetDoesNotAllocate(t *testing.T) {
	m := &delivery.Message{ID: "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f", Provider: "ens", Route: "ens/click",
		Body: []byte(`{"campaignId":1}`), ReceivedAt: time.Now(), ClientIP: "203.0.113.7", UserAgent: "ua", Source: "s"}
	var e entry
	e.set(m, "t:{ens}:seen:", ClientID)
	if n := testing.AllocsPerRun(100, func() { e.set(m, "t:{ens}:seen:", ClientID) }); n != 0 {
		t.Fatalf("entry.set: %v allocations", n)
	}
}

func TestRetryMemberAtLegacy(t *testing.T) {
	for member, want := range map[string]int64{
		`["id","e1","route","ens/click","body","{}","at","1718000000000","attempts","1","status","503","error","x"]`: 1718000000000,
		`["id","e1"]`: -1,
		`[`:           -1,
		"":            -1,
		"\x02":        -1,
	} {
		at, ok := RetryMemberAt(member)
		if want < 0 && ok || want >= 0 && (!ok || at != want) {
			t.Errorf("RetryMemberAt(%q) = %d, %v; want %d", member, at, ok, want)
		}
	}
}
