package queue

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/eventrelay/relay/delivery"
)

// Field names of an entry in the nine-field format of earlier relays, still read (see
// the package doc); a dead letter of an entry that could not be decoded keeps them.
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

// Fields of dead letters (see dead.go), and of nine-field entries moved back from a retry
// member of earlier relays.
const (
	FieldAttempts = "attempts"  // upstream attempts made so far (absent: 0)
	FieldError    = "error"     // last attempt's error, secrets redacted
	FieldStatus   = "status"    // last HTTP status, 0 when there was no reply
	FieldReason   = "reason"    // dead letters: DeadPermanent, DeadMaxAttempts, ...
	FieldDeadAt   = "dead_at"   // dead letters: unix ms
	FieldStreamID = "stream_id" // dead letters: the entry's id in the events stream
)

// numFields is how many field/value pairs a nine-field entry has.
const numFields = 9

// entryFields are the names of a nine-field entry's fields in the order earlier relays
// wrote them, which is also the order of the values in an envelope.
var entryFields = [numFields]string{
	FieldID, FieldRoute, FieldBody, FieldAt, FieldIP, FieldUA, FieldCountry, FieldCustomer, FieldSource,
}

// ErrMalformedEntry means a stream entry lacks a required field or has a bad value. An
// entry with no fields at all is one that was trimmed (XADD MAXLEN, XTRIM) while still
// pending: its data is lost. Dead-letter it and alert; do not retry it.
var ErrMalformedEntry = errors.New("queue: malformed stream entry")

// DecodeMessage rebuilds a Message from the fields of a nine-field entry of provider's
// stream (redis.XMessage.Values); DecodeEntry reads both formats. id, route, body and at are required; the others default to
// empty. A missing required field, including the empty field list of a trimmed entry,
// is an error wrapping ErrMalformedEntry.
func DecodeMessage(provider string, values map[string]any) (delivery.Message, error) {
	if len(values) == 0 {
		return delivery.Message{}, fmt.Errorf("%w: no fields (entry trimmed while pending?)", ErrMalformedEntry)
	}
	for _, name := range entryFields[:requiredFields] {
		if _, ok := values[name]; !ok {
			return delivery.Message{}, fmt.Errorf("%w: missing field %q", ErrMalformedEntry, name)
		}
	}
	m, err := readMessage(provider, values)
	if err != nil {
		return delivery.Message{}, err
	}
	if m.ID == "" {
		return delivery.Message{}, fmt.Errorf("%w: empty %q", ErrMalformedEntry, FieldID)
	}
	return m, nil
}

// requiredFields is how many of entryFields, from the first, every event has.
const requiredFields = 4

// readMessage reads what there is of a Message from stored fields, absent ones empty:
// dead letters may hold only part of an event (or none, when it was trimmed). A value
// that is not a string, or an at that is not unix milliseconds, is an error wrapping
// ErrMalformedEntry; the Message then still holds the fields that could be read.
func readMessage(provider string, values map[string]any) (delivery.Message, error) {
	m := delivery.Message{Provider: provider}
	var (
		body, at string
		err      error
	)
	for i, dst := range [numFields]*string{&m.ID, &m.Route, &body, &at, &m.ClientIP, &m.UserAgent,
		&m.Country, &m.CustomerID, &m.Source} {
		v, ok := values[entryFields[i]]
		if !ok {
			continue
		}
		s, ok := v.(string)
		if !ok && err == nil {
			err = fmt.Errorf("%w: field %q is %T, not a string", ErrMalformedEntry, entryFields[i], v)
		}
		*dst = s
	}
	if _, ok := values[FieldBody]; ok {
		m.Body = []byte(body)
	}
	if _, ok := values[FieldAt]; ok {
		ms, perr := strconv.ParseInt(at, 10, 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("%w: field %q is %q, not unix milliseconds", ErrMalformedEntry, FieldAt, at)
		}
		if perr == nil {
			m.ReceivedAt = time.UnixMilli(ms)
		}
	}
	return m, err
}

// Entry is an entry of a provider's events stream as a forwarder holds it: the event,
// what earlier attempts left on it, and its stored fields, which a retry or dead letter
// carries on unchanged.
type Entry struct {
	// StreamID is the entry's id in the events stream.
	StreamID string
	// Message is the event; zero when Bad is set.
	Message delivery.Message
	// Attempts is how many upstream attempts were made so far.
	Attempts int
	// Status and Error are the last attempt's HTTP status (0: no reply) and error (""
	// before the first attempt).
	Status int
	Error  string
	// Bad is why the entry cannot be delivered at all (it wraps ErrMalformedEntry), and
	// Reason the dead-letter reason for that: DeadTrimmed or DeadMalformed.
	Bad    error
	Reason string
	// ingest is the event as an envelope without trailer, for retry members and dead
	// letters; "" when Bad.
	ingest string
	// stored are the entry's fields as read: a Bad entry's dead letter carries what
	// there is of them.
	stored map[string]any
}

// DecodeEntry decodes the entry streamID of provider's events stream from its fields
// (redis.XMessage.Values), in the compact format (FieldEnvelope) or in the nine-field
// format of earlier relays. It never fails: an entry that cannot be delivered has Bad
// set, with Reason DeadTrimmed when it has no fields left (deleted while pending), else
// DeadMalformed.
func DecodeEntry(provider, streamID string, values map[string]any) *Entry {
	e := &Entry{StreamID: streamID, stored: values}
	if len(values) == 0 {
		e.Bad, e.Reason = ErrMalformedEntry, DeadTrimmed
		return e
	}
	if v, ok := values[FieldEnvelope]; ok {
		s, _ := v.(string)
		env, err := decodeEnvelope(provider, s)
		if err != nil {
			e.Bad, e.Reason = err, DeadMalformed
			return e
		}
		e.Message, e.ingest = env.msg, env.ingest
		e.Attempts, e.Status, e.Error = env.attempts, env.status, env.errText
		return e
	}
	m, err := DecodeMessage(provider, values)
	if err != nil {
		e.Bad, e.Reason = err, DeadMalformed
		return e
	}
	e.Message = m
	e.ingest = EncodeEntry(&m)
	e.Attempts = intField(values, FieldAttempts)
	e.Status = intField(values, FieldStatus)
	e.Error, _ = values[FieldError].(string)
	return e
}

// LostEntry is the entry streamID found deleted before delivery (its data is gone): it
// can only be dead-lettered, as DeadTrimmed, with KindLost.
func LostEntry(streamID string) *Entry {
	return &Entry{StreamID: streamID, Bad: ErrMalformedEntry, Reason: DeadTrimmed}
}

// intField is a decimal field's value, 0 when absent or not a number.
func intField(values map[string]any, name string) int {
	s, _ := values[name].(string)
	n, _ := strconv.Atoi(s)
	return n
}

// ingestPairs are what e's dead letter carries of the event, as field/value pairs: its
// envelope, or for an entry that could not be decoded, its stored fields as they are
// (an envelope, or what there is of the nine fields of earlier relays).
func (e *Entry) ingestPairs(extra ...string) []string {
	out := make([]string, 0, 2*numFields+len(extra))
	if e.ingest != "" {
		return append(append(out, FieldEnvelope, e.ingest), extra...)
	}
	if v, ok := e.stored[FieldEnvelope].(string); ok {
		return append(append(out, FieldEnvelope, v), extra...)
	}
	for _, f := range entryFields {
		if v, ok := e.stored[f].(string); ok {
			out = append(out, f, v)
		}
	}
	return append(out, extra...)
}

// argBytes is a field value handed to go-redis by pointer: boxing a pointer into an `any`
// does not allocate, boxing a []byte does, and this is the ingest hot path.
type argBytes []byte

// MarshalBinary lets go-redis write the value (it accepts encoding.BinaryMarshaler).
func (b *argBytes) MarshalBinary() ([]byte, error) { return *b, nil }

// entry is a Message copied into one buffer of its own, as its envelope. The copy is
// what makes Enqueue safe for callers whose bytes are recycled (fasthttp): the writer
// only ever reads the entry, never the caller's Message.
type entry struct {
	buf  []byte
	env  argBytes // the envelope (the XADD's one value), a view of buf
	seen argBytes // the event's Seen key, also in buf; empty for a relay-generated id
}

// set copies m into e as its envelope and, for an id its caller chose (src ClientID),
// its Seen key (seenPrefix, Keys.Seen without caller and id, then both), reusing e's
// buffer when it is large enough.
func (e *entry) set(m *delivery.Message, seenPrefix string, src IDSource) {
	n := maxEnvelopeLen(m)
	if src == ClientID {
		n += len(seenPrefix) + 3*len(m.Source) + 1 + len(m.ID)
	}
	if cap(e.buf) < n {
		e.buf = make([]byte, 0, n)
	}
	// The capacity is enough, so no append below reallocates and both values stay views
	// of the one buffer.
	e.buf = appendEnvelope(e.buf[:0], m)
	e.env = argBytes(e.buf[:len(e.buf):len(e.buf)])
	e.seen = nil
	if src != ClientID {
		return
	}
	start := len(e.buf)
	e.buf = append(e.buf, seenPrefix...)
	e.buf = appendSeenCaller(e.buf, m.Source)
	e.buf = append(e.buf, m.ID...)
	e.seen = argBytes(e.buf[start:len(e.buf):len(e.buf)])
}

// appendValues appends the entry's value, its envelope, as a pointer into e (boxed
// without allocating). The field name is not sent: the enqueue script has it.
func (e *entry) appendValues(args []any) []any {
	return append(args, &e.env)
}
