package queue

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/eventrelay/relay/delivery"
)

// Field names of a stream entry (see the package doc for the format).
const (
	FieldID       = "id"       // event id, also in the Seen key
	FieldRoute    = "route"    // ingest route without /v1/, e.g. "ens/click"
	FieldBody     = "body"     // validated provider body, JSON, without secrets
	FieldAt       = "at"       // received_at, unix milliseconds, decimal
	FieldIP       = "ip"       // client IP as the relay saw it (trusted proxies honoured)
	FieldUA       = "ua"       // client User-Agent
	FieldCountry  = "country"  // country from the edge's geo header, or empty
	FieldCustomer = "customer" // Cardlytics customer id, or empty
	FieldSource   = "src"      // who sent it: the site or client name
)

// Fields the forwarders add: to entries going back into the stream after a failed
// attempt, and to dead letters (relay/forward's package doc describes them).
const (
	FieldAttempts = "attempts"  // upstream attempts made so far (absent: 0)
	FieldError    = "error"     // last attempt's error, secrets redacted
	FieldStatus   = "status"    // last HTTP status, 0 when there was no reply
	FieldReason   = "reason"    // dead letters: permanent, max_attempts, max_age, trimmed, malformed
	FieldDeadAt   = "dead_at"   // dead letters: unix ms
	FieldStreamID = "stream_id" // dead letters: the entry's id in the events stream
)

// numFields is how many field/value pairs every entry has.
const numFields = 9

// entryFields are the names of an entry's fields in their order: entry.vals[i] is the
// value of entryFields[i]. The enqueue script is generated from this list.
var entryFields = [numFields]string{
	FieldID, FieldRoute, FieldBody, FieldAt, FieldIP, FieldUA, FieldCountry, FieldCustomer, FieldSource,
}

// ErrMalformedEntry means a stream entry lacks a required field or has a bad value. An
// entry with no fields at all is one that was trimmed (XADD MAXLEN, XTRIM) while still
// pending: its data is lost. Dead-letter it and alert; do not retry it.
var ErrMalformedEntry = errors.New("queue: malformed stream entry")

// DecodeMessage rebuilds a Message from the fields of an entry of provider's stream
// (redis.XMessage.Values). id, route, body and at are required; the others default to
// empty. A missing required field, including the empty field list of a trimmed entry,
// is an error wrapping ErrMalformedEntry.
func DecodeMessage(provider string, values map[string]any) (delivery.Message, error) {
	if len(values) == 0 {
		return delivery.Message{}, fmt.Errorf("%w: no fields (entry trimmed while pending?)", ErrMalformedEntry)
	}
	var (
		m    = delivery.Message{Provider: provider}
		body string
		at   string
		err  error
	)
	get := func(name string, dst *string, required bool) {
		v, ok := values[name]
		if !ok {
			if required && err == nil {
				err = fmt.Errorf("%w: missing field %q", ErrMalformedEntry, name)
			}
			return
		}
		s, ok := v.(string)
		if !ok && err == nil {
			err = fmt.Errorf("%w: field %q is %T, not a string", ErrMalformedEntry, name, v)
		}
		*dst = s
	}
	get(FieldID, &m.ID, true)
	get(FieldRoute, &m.Route, true)
	get(FieldBody, &body, true)
	get(FieldAt, &at, true)
	get(FieldIP, &m.ClientIP, false)
	get(FieldUA, &m.UserAgent, false)
	get(FieldCountry, &m.Country, false)
	get(FieldCustomer, &m.CustomerID, false)
	get(FieldSource, &m.Source, false)
	if err != nil {
		return delivery.Message{}, err
	}
	if m.ID == "" {
		return delivery.Message{}, fmt.Errorf("%w: empty %q", ErrMalformedEntry, FieldID)
	}
	ms, perr := strconv.ParseInt(at, 10, 64)
	if perr != nil {
		return delivery.Message{}, fmt.Errorf("%w: field %q is %q, not unix milliseconds", ErrMalformedEntry, FieldAt, at)
	}
	m.ReceivedAt = time.UnixMilli(ms)
	m.Body = []byte(body)
	return m, nil
}

// argBytes is a field value handed to go-redis by pointer: boxing a pointer into an `any`
// does not allocate, boxing a []byte does, and this is the ingest hot path.
type argBytes []byte

// MarshalBinary lets go-redis write the value (it accepts encoding.BinaryMarshaler).
func (b *argBytes) MarshalBinary() ([]byte, error) { return *b, nil }

// entry is a Message copied into one buffer of its own, as XADD field values. The copy
// is what makes Enqueue safe for callers whose bytes are recycled (fasthttp): the writer
// only ever reads the entry, never the caller's Message.
type entry struct {
	buf  []byte
	vals [numFields]argBytes
	seen argBytes // the event's Seen key, also in buf
}

// set copies m into e, and its Seen key (seenPrefix, Keys.Seen without the id, then
// m.ID), reusing e's buffer when it is large enough. Values are in the order of
// entryFields.
func (e *entry) set(m *delivery.Message, seenPrefix string) {
	n := len(m.ID) + len(m.Route) + len(m.Body) + 20 + len(m.ClientIP) + len(m.UserAgent) +
		len(m.Country) + len(m.CustomerID) + len(m.Source) + len(seenPrefix) + len(m.ID)
	if cap(e.buf) < n {
		e.buf = make([]byte, 0, n)
	}
	// The capacity is exact, so no append below reallocates and every value stays a view
	// of the one buffer.
	e.buf = e.buf[:0]
	add(e, 0, m.ID)
	add(e, 1, m.Route)
	add(e, 2, m.Body)
	start := len(e.buf)
	e.buf = strconv.AppendInt(e.buf, m.ReceivedAt.UnixMilli(), 10)
	e.vals[3] = argBytes(e.buf[start:len(e.buf):len(e.buf)])
	add(e, 4, m.ClientIP)
	add(e, 5, m.UserAgent)
	add(e, 6, m.Country)
	add(e, 7, m.CustomerID)
	add(e, 8, m.Source)
	start = len(e.buf)
	e.buf = append(e.buf, seenPrefix...)
	e.buf = append(e.buf, m.ID...)
	e.seen = argBytes(e.buf[start:len(e.buf):len(e.buf)])
}

// add copies v to the end of e's buffer as value i.
func add[T ~string | ~[]byte](e *entry, i int, v T) {
	start := len(e.buf)
	e.buf = append(e.buf, v...)
	e.vals[i] = argBytes(e.buf[start:len(e.buf):len(e.buf)])
}

// appendValues appends the entry's values, in the order of entryFields, as pointers into
// e (boxed without allocating). The field names are not sent: the enqueue script has them.
func (e *entry) appendValues(args []any) []any {
	for i := range e.vals {
		args = append(args, &e.vals[i])
	}
	return args
}
