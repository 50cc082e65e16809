package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/eventrelay/relay/delivery"
)

// The compact entry format (version 1): one stream field, FieldEnvelope, whose value is
//
//	byte     version, envelopeV1
//	byte     flags: flagRelativeRoute, flagIPv4, flagUUID
//	varint   received_at, unix ms (zig-zag, encoding/binary)
//	9×       id, route, body, ip, ua, country, customer, src: uvarint length, then bytes;
//	         with flagUUID the id is its 16 bytes, with flagRelativeRoute the route lacks
//	         its "<provider>/" prefix, with flagIPv4 the ip is its 4 bytes
//	trailer  only after an attempt: uvarint attempts, uvarint status, uvarint length and
//	         the error
//
// Length prefixes make it unambiguous whatever bytes the body holds. Each stream field
// costs Redis a parse, a Lua string and a listpack element per entry, so one field
// instead of nine, binary ids and addresses and a varint time bring a typical backend
// event with a ~150-byte body from 315 to 264 bytes of stream (BenchmarkStoredBytes). The
// flags only ever pick a shorter form that decodes to the very same string.

// FieldEnvelope is the one field of an entry, retry-moved entry or dead letter in the
// compact format.
const FieldEnvelope = "e"

const envelopeV1 = 1

// Flags of a version 1 envelope.
const (
	flagRelativeRoute = 1 << iota // route is stored without "<provider>/"
	flagIPv4                      // ip is 4 bytes
	flagUUID                      // id is a canonical lower-case UUID, stored as 16 bytes
	knownFlags        = flagRelativeRoute | flagIPv4 | flagUUID
)

// errEnvelope wraps every way an envelope can be broken.
var errEnvelope = fmt.Errorf("%w: bad envelope", ErrMalformedEntry)

// maxEnvelopeLen bounds the length of m's envelope without its trailer.
func maxEnvelopeLen(m *delivery.Message) int {
	return 2 + binary.MaxVarintLen64 + numFields*binary.MaxVarintLen64 + len(m.ID) + len(m.Route) +
		len(m.Body) + len(m.ClientIP) + len(m.UserAgent) + len(m.Country) + len(m.CustomerID) + len(m.Source)
}

// appendEnvelope appends m's envelope, without a trailer, to dst. It does not allocate
// when dst has room for maxEnvelopeLen(m) more bytes: this is the ingest hot path.
func appendEnvelope(dst []byte, m *delivery.Message) []byte {
	var flags byte
	route := m.Route
	if len(route) > len(m.Provider) && route[len(m.Provider)] == '/' && strings.HasPrefix(route, m.Provider) {
		flags, route = flags|flagRelativeRoute, route[len(m.Provider)+1:]
	}
	ip, ipErr := netip.ParseAddr(m.ClientIP)
	// Only IPv4: every form ParseAddr accepts of it is the canonical one, so it decodes
	// to the same string (IPv6 has many spellings).
	if ipErr == nil && ip.Is4() {
		flags |= flagIPv4
	}
	if isUUID(m.ID) {
		flags |= flagUUID
	}
	dst = append(dst, envelopeV1, flags)
	dst = binary.AppendVarint(dst, m.ReceivedAt.UnixMilli())
	if flags&flagUUID != 0 {
		dst = append(dst, 16)
		dst = appendUUID(dst, m.ID)
	} else {
		dst = appendString(dst, m.ID)
	}
	dst = appendString(dst, route)
	dst = appendString(dst, m.Body)
	if flags&flagIPv4 != 0 {
		b := ip.As4()
		dst = append(dst, 4, b[0], b[1], b[2], b[3])
	} else {
		dst = appendString(dst, m.ClientIP)
	}
	for _, s := range [...]string{m.UserAgent, m.Country, m.CustomerID, m.Source} {
		dst = appendString(dst, s)
	}
	return dst
}

// appendTrailer appends what an attempt left to an envelope.
func appendTrailer(dst []byte, attempts, status int, errText string) []byte {
	dst = binary.AppendUvarint(dst, uint64(max(attempts, 0)))
	dst = binary.AppendUvarint(dst, uint64(max(status, 0)))
	return appendString(dst, errText)
}

func appendString[T ~string | ~[]byte](dst []byte, s T) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// isUUID reports whether s is a UUID in canonical lower-case form (what ingest
// generates): 8-4-4-4-12 hex digits.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case c >= '0' && c <= '9' || c >= 'a' && c <= 'f':
		default:
			return false
		}
	}
	return true
}

// appendUUID appends the 16 bytes of s, a UUID isUUID accepted.
func appendUUID(dst []byte, s string) []byte {
	var hi byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '-' {
			continue
		}
		v := c - '0'
		if c >= 'a' {
			v = c - 'a' + 10
		}
		if n%2 == 0 {
			hi = v << 4
		} else {
			dst = append(dst, hi|v)
		}
		n++
	}
	return dst
}

// formatUUID is the canonical form of a UUID's 16 bytes.
func formatUUID(b string) string {
	const hex = "0123456789abcdef"
	var out [36]byte
	j := 0
	for i := 0; i < 16; i++ {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = hex[b[i]>>4], hex[b[i]&0xf]
		j += 2
	}
	return string(out[:])
}

// envelope is a decoded envelope.
type envelope struct {
	msg delivery.Message
	// ingest is the envelope without its trailer: what a retry or dead letter carries.
	ingest string
	// trailer: what the attempts so far left.
	attempts, status int
	errText          string
}

// decodeEnvelope decodes env, an envelope of an entry of provider's stream. Any error
// wraps ErrMalformedEntry.
func decodeEnvelope(provider, env string) (envelope, error) {
	r := byteReader{s: env}
	if v := r.byte(); v != envelopeV1 {
		return envelope{}, fmt.Errorf("%w: version %d", errEnvelope, v)
	}
	flags := r.byte()
	if flags&^knownFlags != 0 {
		return envelope{}, fmt.Errorf("%w: unknown flags %#x", errEnvelope, flags)
	}
	at, ok := r.varint()
	if !ok {
		r.fail()
	}
	var e envelope
	m := &e.msg
	m.Provider = provider
	m.ReceivedAt = time.UnixMilli(at)
	m.ID = r.string()
	if flags&flagUUID != 0 {
		if len(m.ID) != 16 {
			r.fail()
		} else {
			m.ID = formatUUID(m.ID)
		}
	}
	m.Route = r.string()
	if flags&flagRelativeRoute != 0 {
		m.Route = provider + "/" + m.Route
	}
	m.Body = []byte(r.string())
	m.ClientIP = r.string()
	if flags&flagIPv4 != 0 {
		if len(m.ClientIP) != 4 {
			r.fail()
		} else {
			m.ClientIP = netip.AddrFrom4([4]byte([]byte(m.ClientIP))).String()
		}
	}
	m.UserAgent, m.Country, m.CustomerID, m.Source = r.string(), r.string(), r.string(), r.string()
	e.ingest = env[:r.i]
	if r.err == nil && r.i < len(env) {
		a, _ := r.uvarint()
		s, _ := r.uvarint()
		e.attempts, e.status, e.errText = int(min(a, 1<<31)), int(min(s, 1<<31)), r.string()
		if r.i != len(env) {
			r.fail()
		}
	}
	if r.err != nil {
		return envelope{}, r.err
	}
	if m.ID == "" {
		return envelope{}, fmt.Errorf("%w: empty id", errEnvelope)
	}
	return e, nil
}

// envelopeAt reads only the received_at of an envelope.
func envelopeAt(env string) (int64, bool) {
	r := byteReader{s: env}
	if r.byte() != envelopeV1 {
		return 0, false
	}
	r.byte()
	at, ok := r.varint()
	return at, ok && r.err == nil
}

// byteReader reads an envelope; after the first error every read returns zero.
type byteReader struct {
	s   string
	i   int
	err error
}

var errShort = errors.New("truncated")

func (r *byteReader) fail() {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %w at byte %d", errEnvelope, errShort, r.i)
	}
	r.i = len(r.s)
}

func (r *byteReader) byte() byte {
	if r.i >= len(r.s) {
		r.fail()
		return 0
	}
	r.i++
	return r.s[r.i-1]
}

func (r *byteReader) uvarint() (uint64, bool) {
	var x uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if r.i >= len(r.s) {
			break
		}
		b := r.s[r.i]
		r.i++
		x |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return x, true
		}
	}
	r.fail()
	return 0, false
}

func (r *byteReader) varint() (int64, bool) {
	ux, ok := r.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x, ok
}

func (r *byteReader) string() string {
	n, ok := r.uvarint()
	if !ok || n > uint64(len(r.s)-r.i) {
		r.fail()
		return ""
	}
	r.i += int(n)
	return r.s[r.i-int(n) : r.i]
}

// EncodeEntry is m's envelope, the value of FieldEnvelope of its entry: for tools and
// tests that write entries without an Enqueuer (bench prefill, fixtures).
func EncodeEntry(m *delivery.Message) string {
	return string(appendEnvelope(make([]byte, 0, maxEnvelopeLen(m)), m))
}
