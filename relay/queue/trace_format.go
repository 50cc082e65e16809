package queue

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
)

// A packed trace entry is a version byte, then records back to back. Integers are
// uvarints; a signed difference is a zigzag varint (binary.AppendVarint).
//
// Version 2, written now, is dense because every byte costs Redis twice, in memory and in
// its append-only file (the trace's share of Redis CPU per delivery is that AOF write).
// Per record:
//
//	id         uvarint 0 then 16 bytes (a canonical lower-case UUID, the relay's own ids),
//	           or the id's length (≥ 1) then its bytes
//	attempt, outcome code (traceOutcomes index), status
//	at         varint: at minus the previous record's at in this entry (the first: minus 0)
//	duration   uvarint ms
//	class      string ref
//	due at     uvarint: 0 for none, else zigzag(due − at) + 1
//	reason, error   string refs
//	arrival    0, or 1 then: varint received-at minus at; the stream id as uvarint seq+1
//	           and varint ms minus received-at (or 0 and a string ref when it is not
//	           "<ms>-<seq>"); route and source as string refs
//
// A string ref is uvarint 0 then a literal (uvarint length, bytes) that joins the entry's
// table, or n ≥ 1 for the table's n-th string; the table starts with "", so an empty
// string is one byte and a route, source, class or error repeated in an entry is one or
// two bytes after its first use.
//
// Version 1, written before, is still read: the same fields in the same order, every
// integer a plain uvarint, every string a literal, the stream id a string.
const (
	traceV1      = 1
	traceV2      = 2
	traceVersion = traceV2
)

// traceOutcomes are the outcomes' codes in a packed record (their index).
var traceOutcomes = [...]string{TraceDelivered, TraceRetry, TraceDeferred, TraceDead}

// errTraceFormat reports a packed entry cut short or of an unknown version.
var errTraceFormat = errors.New("queue: malformed trace entry")

// traceEncoder holds what one entry's records share: the previous record's time and the
// string table. reset starts a new entry.
type traceEncoder struct {
	prevAt int64
	refs   map[string]uint64 // string → its ref in this entry's table
}

func (e *traceEncoder) reset() {
	e.prevAt = 0
	if e.refs == nil {
		e.refs = make(map[string]uint64, 64)
	}
	clear(e.refs)
	e.refs[""] = 1
}

// str appends s as a string ref.
func (e *traceEncoder) str(b []byte, s string) []byte {
	if ref, ok := e.refs[s]; ok {
		return binary.AppendUvarint(b, ref)
	}
	e.refs[s] = uint64(len(e.refs) + 1)
	return appendTraceString(append(b, 0), s)
}

// record appends event id's record r.
func (e *traceEncoder) record(b []byte, id string, r *TraceRecord) []byte {
	b = appendTraceID(b, id)
	b = binary.AppendUvarint(b, uint64(max(r.Attempt, 0)))
	b = binary.AppendUvarint(b, uint64(outcomeCode(r.Outcome)))
	b = binary.AppendUvarint(b, uint64(max(r.Status, 0)))
	b = binary.AppendVarint(b, r.At-e.prevAt)
	e.prevAt = r.At
	b = binary.AppendUvarint(b, uint64(max(r.DurationMS, 0)))
	b = e.str(b, r.Class)
	if r.DueAt == 0 {
		b = append(b, 0)
	} else {
		b = binary.AppendUvarint(b, zigzag(r.DueAt-r.At)+1)
	}
	b = e.str(b, r.Reason)
	b = e.str(b, r.Error)
	if r.Received == nil {
		return append(b, 0)
	}
	rc := r.Received
	b = append(b, 1)
	b = binary.AppendVarint(b, rc.At-r.At)
	if ms, seq, ok := parseStreamID(rc.StreamID); ok {
		b = binary.AppendUvarint(b, seq+1)
		b = binary.AppendVarint(b, ms-rc.At)
	} else {
		b = e.str(append(b, 0), rc.StreamID)
	}
	b = e.str(b, rc.Route)
	return e.str(b, rc.Source)
}

func appendTraceString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// appendTraceID appends an event id: 0 and 16 bytes for a canonical UUID, else a literal
// (ids are never empty, so a length of 0 is free to mark the UUID).
func appendTraceID(b []byte, id string) []byte {
	if u, ok := packUUID(id); ok {
		return append(append(b, 0), u[:]...)
	}
	return appendTraceString(b, id)
}

// packUUID is the 16 bytes of a canonical lower-case UUID (8-4-4-4-12 hex digits); only
// that spelling, so that unpacking gives the id back byte for byte.
func packUUID(id string) (u [16]byte, ok bool) {
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return u, false
	}
	var digits [32]byte
	n := 0
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			continue
		case c >= '0' && c <= '9' || c >= 'a' && c <= 'f':
			digits[n] = c
			n++
		default:
			return u, false
		}
	}
	_, err := hex.Decode(u[:], digits[:])
	return u, err == nil
}

// parseStreamID parses a stream entry id "<ms>-<seq>" in its canonical spelling only
// (splitStreamID, for ordering, is lenient).
func parseStreamID(sid string) (ms int64, seq uint64, ok bool) {
	a, b, found := strings.Cut(sid, "-")
	if !found {
		return 0, 0, false
	}
	m, err1 := strconv.ParseInt(a, 10, 64)
	q, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil || m < 0 || strconv.FormatInt(m, 10) != a || strconv.FormatUint(q, 10) != b {
		return 0, 0, false // not canonical: kept as a string, so it reads back unchanged
	}
	return m, q, true
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

func outcomeCode(o string) int {
	for i, s := range traceOutcomes {
		if s == o {
			return i
		}
	}
	return len(traceOutcomes) // unknown: read back as ""
}

// traceReader decodes a packed entry of either version.
type traceReader struct {
	b       []byte
	err     error
	version byte
	prevAt  int64
	table   [][]byte
}

func newTraceReader(packed []byte) (*traceReader, error) {
	if len(packed) == 0 || packed[0] != traceV1 && packed[0] != traceV2 {
		return nil, errTraceFormat
	}
	return &traceReader{b: packed[1:], version: packed[0], table: [][]byte{nil}}, nil
}

func (d *traceReader) fail() {
	d.err, d.b = errTraceFormat, nil
}

func (d *traceReader) uint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *traceReader) int() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *traceReader) bytes() []byte {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}

// str reads a string: a literal in version 1, a string ref in version 2.
func (d *traceReader) str() []byte {
	if d.version == traceV1 {
		return d.bytes()
	}
	ref := d.uint()
	if ref == 0 {
		s := d.bytes()
		d.table = append(d.table, s)
		return s
	}
	if ref > uint64(len(d.table)) {
		d.fail()
		return nil
	}
	return d.table[ref-1]
}

// id reads an event id in its packed form (version 2: the UUID marker and bytes, or the
// literal), for comparison with traceIDKey.
func (d *traceReader) id() []byte {
	if d.version == traceV1 || len(d.b) == 0 || d.b[0] != 0 {
		return d.bytes()
	}
	if len(d.b) < 17 {
		d.fail()
		return nil
	}
	s := d.b[:17]
	d.b = d.b[17:]
	return s
}

// traceIDKey is id as version's records hold it.
func traceIDKey(version byte, id string) []byte {
	if version == traceV1 {
		return []byte(id)
	}
	if u, ok := packUUID(id); ok {
		return append([]byte{0}, u[:]...)
	}
	return []byte(id)
}

// next decodes the next record, filling r only when its packed id is want (or want is
// nil: every record).
func (d *traceReader) next(want []byte, r *TraceRecord) (match bool) {
	rid := d.id()
	match = want == nil || bytes.Equal(rid, want)
	attempt, code, status := d.uint(), d.uint(), d.uint()
	var at int64
	if d.version == traceV1 {
		at = int64(d.uint())
	} else {
		at = d.prevAt + d.int()
		d.prevAt = at
	}
	dur := d.uint()
	class := d.str()
	var due int64
	if d.version == traceV1 {
		due = int64(d.uint())
	} else if z := d.uint(); z > 0 {
		due = at + unzigzag(z-1)
	}
	reason, msg := d.str(), d.str()
	var rcv *TraceReceived
	if d.uint() == 1 {
		var sid string
		var rat int64
		if d.version == traceV1 {
			sid = string(d.bytes())
			rat = int64(d.uint())
		} else {
			rat = at + d.int()
			if seq := d.uint(); seq > 0 {
				sid = strconv.FormatInt(rat+d.int(), 10) + "-" + strconv.FormatUint(seq-1, 10)
			} else {
				sid = string(d.str())
			}
		}
		route, src := d.str(), d.str()
		if match {
			rcv = &TraceReceived{StreamID: sid, At: rat, Route: string(route), Source: string(src)}
		}
	}
	if !match || d.err != nil {
		return false
	}
	*r = TraceRecord{At: at, Attempt: int(attempt), Status: int(status), DurationMS: int64(dur),
		Class: string(class), DueAt: due, Reason: string(reason), Error: string(msg), Received: rcv}
	if code < uint64(len(traceOutcomes)) {
		r.Outcome = traceOutcomes[code]
	}
	return true
}

// decodeTrace calls fn for each record of a packed entry whose id is id ("" for all), in
// the order written.
func decodeTrace(packed []byte, id string, fn func(r *TraceRecord)) error {
	d, err := newTraceReader(packed)
	if err != nil {
		return err
	}
	var want []byte
	if id != "" {
		want = traceIDKey(d.version, id)
	}
	var r TraceRecord
	for len(d.b) > 0 && d.err == nil {
		if d.next(want, &r) {
			fn(&r)
		}
	}
	return d.err
}

// mayHold reports whether a packed entry may hold a record of id, without decoding it:
// whether it contains the id's packed bytes.
func mayHold(packed []byte, id string) bool {
	if len(packed) == 0 {
		return false
	}
	key := traceIDKey(packed[0], id)
	if len(key) == 17 && key[0] == 0 {
		key = key[1:] // the marker byte is 0, also found elsewhere
	}
	return bytes.Contains(packed, key)
}
