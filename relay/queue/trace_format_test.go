package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// formatCases are records that exercise every field of the packed format: UUID and other
// ids, times out of order, retries due before and after their attempt, repeated and new
// strings, arrivals with canonical and other stream ids.
func formatCases() []struct {
	id string
	r  TraceRecord
} {
	rcv := func(sid string, at int64, route, src string) *TraceReceived {
		return &TraceReceived{StreamID: sid, At: at, Route: route, Source: src}
	}
	return []struct {
		id string
		r  TraceRecord
	}{
		{"0b6c5c1e-8f8a-4d3e-9a57-2f0f6b1c9d10", TraceRecord{At: 1796262896949, Attempt: 1, Outcome: TraceDelivered, DurationMS: 12,
			Received: rcv("1796262890000-0", 1796262890000, "ens/click", "site:shop")}},
		{"0b6c5c1e-8f8a-4d3e-9a57-2f0f6b1c9d11", TraceRecord{At: 1796262896950, Attempt: 1, Outcome: TraceDelivered, DurationMS: 3,
			Received: rcv("1796262890001-7", 1796262890001, "ens/click", "site:shop")}},
		{"0B6C5C1E-8F8A-4D3E-9A57-2F0F6B1C9D12", TraceRecord{At: 1796262896900, Attempt: 2, Outcome: TraceRetry, Status: 503, DurationMS: 5000,
			Class: "5xx", DueAt: 1796262899900, Error: "HTTP 503: upstream busy"}},
		{"order-77:3", TraceRecord{At: 1796262896901, Attempt: 3, Outcome: TraceRetry, Status: 429, Class: "429",
			DueAt: 1796262896000, Error: "HTTP 503: upstream busy"}},
		{"x", TraceRecord{At: 1796262896990, Attempt: 4, Outcome: TraceDead, Status: 400, Class: "permanent", Reason: "permanent",
			Error: "HTTP 400: bad campaign", Received: rcv("not-a-canonical-id", 1796262000000, "bannerflex/banner-events", "client:backend")}},
		{"0b6c5c1e-8f8a-4d3e-9a57-2f0f6b1c9d13", TraceRecord{At: 1796262896991, Attempt: 0, Outcome: TraceDeferred, Class: "deferred",
			Received: rcv("1796262890002-01", 1796262890002, "ens/click", "site:shop")}},
		{"0b6c5c1e-8f8a-4d3e-9a57-2f0f6b1c9d14", TraceRecord{At: 1796262896992, Attempt: 1, Outcome: TraceDelivered,
			Received: rcv("1796262897000-0", 1796262897000, "linkrunner/capture-event", "client:backend")}},
	}
}

// Every record reads back as written, found by its id, from one packed entry.
func TestTraceFormatRoundTrip(t *testing.T) {
	w := &TraceWriter{Keep: 100}
	cases := formatCases()
	for _, c := range cases {
		w.Add(c.id, &c.r)
	}
	if w.buf[0] != traceV2 {
		t.Fatalf("version byte %d, want %d", w.buf[0], traceV2)
	}
	for _, c := range cases {
		var got []TraceRecord
		if err := decodeTrace(w.buf, c.id, func(r *TraceRecord) { got = append(got, *r) }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !reflect.DeepEqual(got[0], c.r) {
			t.Errorf("%s read back as %+v (received %+v), want %+v (received %+v)", c.id, got, receivedOf(got), c.r, c.r.Received)
		}
		if !mayHold(w.buf, c.id) {
			t.Errorf("mayHold(%s) is false for an entry that holds it", c.id)
		}
	}
	n := 0
	if err := decodeTrace(w.buf, "", func(*TraceRecord) { n++ }); err != nil || n != len(cases) {
		t.Fatalf("decoding all: %d records, %v; want %d", n, err, len(cases))
	}
	if mayHold(w.buf, "0b6c5c1e-8f8a-4d3e-9a57-2f0f6b1c9d99") {
		t.Error("mayHold is true for an id the entry does not hold")
	}
	// A new entry starts a new string table and time base.
	w.Reset()
	w.Add(cases[1].id, &cases[1].r)
	var got []TraceRecord
	if err := decodeTrace(w.buf, cases[1].id, func(r *TraceRecord) { got = append(got, *r) }); err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], cases[1].r) {
		t.Fatalf("after Reset: %+v, %v", got, err)
	}
}

func receivedOf(rs []TraceRecord) []*TraceReceived {
	var out []*TraceReceived
	for _, r := range rs {
		out = append(out, r.Received)
	}
	return out
}

// Entries written in version 1 (before the dense format) are still read.
func TestTraceFormatReadsVersion1(t *testing.T) {
	buf := []byte{traceV1}
	cases := formatCases()
	for _, c := range cases {
		buf = appendRecordV1(buf, c.id, &c.r)
	}
	for _, c := range cases {
		var got []TraceRecord
		if err := decodeTrace(buf, c.id, func(r *TraceRecord) { got = append(got, *r) }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !reflect.DeepEqual(got[0], c.r) {
			t.Errorf("v1 %s read back as %+v, want %+v", c.id, got, c.r)
		}
		if !mayHold(buf, c.id) {
			t.Errorf("mayHold(%s) is false for a v1 entry that holds it", c.id)
		}
	}
}

// appendRecordV1 is the version 1 encoder, as it was written (a fixture for the reader).
func appendRecordV1(b []byte, id string, r *TraceRecord) []byte {
	b = appendTraceString(b, id)
	b = binary.AppendUvarint(b, uint64(max(r.Attempt, 0)))
	b = binary.AppendUvarint(b, uint64(outcomeCode(r.Outcome)))
	b = binary.AppendUvarint(b, uint64(max(r.Status, 0)))
	b = binary.AppendUvarint(b, uint64(max(r.At, 0)))
	b = binary.AppendUvarint(b, uint64(max(r.DurationMS, 0)))
	b = appendTraceString(b, r.Class)
	b = binary.AppendUvarint(b, uint64(max(r.DueAt, 0)))
	b = appendTraceString(b, r.Reason)
	b = appendTraceString(b, r.Error)
	if r.Received == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = appendTraceString(b, r.Received.StreamID)
	b = binary.AppendUvarint(b, uint64(max(r.Received.At, 0)))
	b = appendTraceString(b, r.Received.Route)
	return appendTraceString(b, r.Received.Source)
}

// The point of version 2: a typical record (the relay's UUID id, delivered on its first
// attempt, with its arrival) takes under 40 bytes, against about 100 in version 1.
func TestTraceFormatIsDense(t *testing.T) {
	w := &TraceWriter{Keep: 1000}
	v1 := []byte{traceV1}
	const n = 200
	for i := range n {
		id := fmt.Sprintf("%08x-8f8a-4d3e-9a57-2f0f6b1c9d10", 0x0b6c5c1e+i)
		at := int64(1796262896949 + 3*i)
		r := &TraceRecord{At: at, Attempt: 1, Outcome: TraceDelivered, DurationMS: 4,
			Received: &TraceReceived{StreamID: fmt.Sprintf("%d-%d", at-2500, i%3), At: at - 2500, Route: "ens/impression", Source: "site:bench"}}
		w.Add(id, r)
		v1 = appendRecordV1(v1, id, r)
	}
	per, perV1 := float64(len(w.buf))/n, float64(len(v1))/n
	t.Logf("bytes per record: version 2 %.1f, version 1 %.1f", per, perV1)
	if per >= 40 || per > perV1/2 {
		t.Errorf("version 2 takes %.1f bytes per record (version 1: %.1f), want under 40 and half", per, perV1)
	}
}

// A cut, unknown or corrupt entry is an error, never a panic or a wrong record.
func TestTraceFormatRejectsMalformed(t *testing.T) {
	w := &TraceWriter{Keep: 100}
	for _, c := range formatCases() {
		w.Add(c.id, &c.r)
	}
	for cut := 1; cut < len(w.buf); cut++ {
		err := decodeTrace(w.buf[:cut], "", func(*TraceRecord) {})
		if err != nil && !errors.Is(err, errTraceFormat) {
			t.Fatalf("cut at %d: %v", cut, err)
		}
	}
	if err := decodeTrace(append([]byte{9}, w.buf[1:]...), "", func(*TraceRecord) {}); !errors.Is(err, errTraceFormat) {
		t.Errorf("unknown version: %v", err)
	}
	// A string ref past the table: the first record's class ref is at a known place only
	// by decoding, so corrupt every byte in turn and require no panic.
	for i := 1; i < len(w.buf); i++ {
		b := append([]byte(nil), w.buf...)
		b[i] = 0x7f
		_ = decodeTrace(b, "", func(*TraceRecord) {})
	}
}
