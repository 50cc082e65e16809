package strictjson

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// Error codes, as the ingest API reports them.
const (
	CodeInvalidJSON  = "invalid_json"
	CodeDuplicateKey = "duplicate_key"
	CodeTooDeep      = "too_deep"
	CodeInvalidField = "invalid_field"
)

// DefaultMaxDepth is the nesting limit the relay uses.
const DefaultMaxDepth = 32

// MaxValues caps the values (of any kind, nested ones included) of one document. A tree
// node costs far more memory than its bytes of JSON (`[0,0,0,...]` is two bytes a value),
// so without a cap a body within the size limit could cost a hundred times its size.
// No provider body comes near it: a full Cardlytics request is under a thousand.
const MaxValues = 10000

// ErrTooManyValues is what an Error for a document over MaxValues wraps (errors.Is): its
// Path is only where the count crossed the cap, so the whole document is at fault, not
// that member.
var ErrTooManyValues = errors.New("the document holds more than " + strconv.Itoa(MaxValues) + " JSON values")

// Error is a refusal of the pre-pass. Path names the offending member
// ("event_data.items[2].price"); it is empty for the document itself.
type Error struct {
	Code    string
	Path    string
	Message string
	// cause is a sentinel the refusal wraps (ErrTooManyValues), nil for most.
	cause error
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the sentinel the refusal wraps, if any.
func (e *Error) Unwrap() error { return e.cause }

// Parse parses data as exactly one JSON value, nested at most maxDepth deep
// (objects and arrays; 0 means DefaultMaxDepth).
func Parse(data []byte, maxDepth int) (Value, error) {
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	if !utf8.Valid(data) {
		return Value{}, &Error{Code: CodeInvalidJSON, Message: "body is not valid UTF-8"}
	}
	// One copy of the whole document as a string: every unescaped string and number in
	// the tree is a substring of it, instead of one allocation each (the tree only lives
	// as long as one request, so sharing the backing string costs nothing).
	p := parser{data: data, text: string(data), maxDepth: maxDepth}
	st := stacks.Get().(*stack)
	p.members, p.items = st.members[:0], st.items[:0]
	defer func() {
		// Drop references into this document, and don't keep a hostile body's huge stacks.
		clear(p.members[:cap(p.members)])
		clear(p.items[:cap(p.items)])
		if cap(p.members) <= maxPooledStack && cap(p.items) <= maxPooledStack {
			st.members, st.items = p.members[:0], p.items[:0]
			stacks.Put(st)
		}
	}()
	p.skipSpace()
	v, err := p.value()
	if err != nil {
		return Value{}, err
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return Value{}, p.syntax("unexpected data after the JSON value")
	}
	return v, nil
}

// stack is the parser's reusable scratch (see parser.members), pooled across documents.
type stack struct {
	members []Member
	items   []Value
}

// maxPooledStack caps the scratch kept in the pool (entries per stack): typical provider
// bodies need tens.
const maxPooledStack = 1024

var stacks = sync.Pool{New: func() any { return new(stack) }}

type pathElem struct {
	key   string
	index int // used when key == "" and isIndex
	isIdx bool
}

type parser struct {
	data     []byte
	text     string // string(data), copied once; see Parse
	pos      int
	maxDepth int
	values   int
	path     []pathElem
	// members and items are stacks shared by every object and array of the document: a
	// container collects its children on top, then copies them into one slice of exactly
	// the right size and pops them. This replaces append's doubling (several allocations
	// and copies per container) with one allocation per container.
	members []Member
	items   []Value
}

func (p *parser) pathString() string {
	var b strings.Builder
	for i, e := range p.path {
		if e.isIdx {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(e.index))
			b.WriteByte(']')
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(e.key)
	}
	return b.String()
}

func (p *parser) syntax(msg string) error {
	return &Error{Code: CodeInvalidJSON, Path: p.pathString(),
		Message: "invalid JSON at byte " + strconv.Itoa(p.pos) + ": " + msg}
}

func (p *parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value() (Value, error) {
	if p.pos >= len(p.data) {
		return Value{}, p.syntax("unexpected end of input")
	}
	if p.values++; p.values > MaxValues {
		return Value{}, &Error{Code: CodeInvalidJSON, Path: p.pathString(), Message: ErrTooManyValues.Error(), cause: ErrTooManyValues}
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		s, err := p.str()
		return Value{Kind: String, Str: s}, err
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		for _, lit := range [...]struct {
			text string
			v    Value
		}{{"true", Value{Kind: Bool, Bool: true}}, {"false", Value{Kind: Bool}}, {"null", Value{Kind: Null}}} {
			if strings.HasPrefix(string(p.data[p.pos:min(len(p.data), p.pos+5)]), lit.text) {
				p.pos += len(lit.text)
				return lit.v, nil
			}
		}
		return Value{}, p.syntax("unexpected character " + strconv.QuoteRune(rune(c)))
	}
}

func (p *parser) enter() error {
	if len(p.path) >= p.maxDepth {
		return &Error{Code: CodeTooDeep, Path: p.pathString(),
			Message: "JSON nesting is deeper than " + strconv.Itoa(p.maxDepth) + " levels"}
	}
	return nil
}

func (p *parser) object() (Value, error) {
	if err := p.enter(); err != nil {
		return Value{}, err
	}
	p.pos++ // {
	v := Value{Kind: Object}
	var folded map[string]struct{}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return v, nil
	}
	base := len(p.members) // this object's members are p.members[base:]
	defer func() { p.members = p.members[:base] }()
	for {
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return Value{}, p.syntax("expected a string key")
		}
		key, err := p.str()
		if err != nil {
			return Value{}, err
		}
		if dup := duplicate(p.members[base:], key, &folded); dup != "" {
			p.path = append(p.path, pathElem{key: key})
			msg := "duplicate key " + strconv.Quote(key)
			if dup != key {
				msg += " (same as " + strconv.Quote(dup) + " but for case)"
			}
			err := &Error{Code: CodeDuplicateKey, Path: p.pathString(), Message: msg}
			return Value{}, err
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return Value{}, p.syntax("expected ':' after a key")
		}
		p.pos++
		p.skipSpace()
		p.path = append(p.path, pathElem{key: key})
		member, err := p.value()
		if err != nil {
			return Value{}, err
		}
		p.path = p.path[:len(p.path)-1]
		p.members = append(p.members, Member{Key: key, Value: member})
		p.skipSpace()
		if p.pos >= len(p.data) {
			return Value{}, p.syntax("unexpected end of input in an object")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			v.Members = append([]Member(nil), p.members[base:]...) // exact size, one allocation
			return v, nil
		default:
			return Value{}, p.syntax("expected ',' or '}' in an object")
		}
	}
}

// linearDupLimit is the member count up to which duplicates are found by scanning; larger
// objects use a map so a hostile body cannot make the check quadratic.
const linearDupLimit = 16

// duplicate returns the earlier key equal to key under Unicode case folding, or "".
func duplicate(members []Member, key string, folded *map[string]struct{}) string {
	if len(members) < linearDupLimit {
		for i := range members {
			if strings.EqualFold(members[i].Key, key) {
				return members[i].Key
			}
		}
		return ""
	}
	if *folded == nil {
		*folded = make(map[string]struct{}, 2*len(members))
		for i := range members {
			(*folded)[foldKey(members[i].Key)] = struct{}{}
		}
	}
	fk := foldKey(key)
	if _, ok := (*folded)[fk]; ok {
		for i := range members {
			if strings.EqualFold(members[i].Key, key) {
				return members[i].Key
			}
		}
		return key
	}
	(*folded)[fk] = struct{}{}
	return ""
}

// foldKey maps case variants to one string (a superset of strings.EqualFold's classes is
// fine: a hit is confirmed with EqualFold).
func foldKey(s string) string { return strings.ToLower(strings.ToUpper(s)) }

func (p *parser) array() (Value, error) {
	if err := p.enter(); err != nil {
		return Value{}, err
	}
	p.pos++ // [
	v := Value{Kind: Array}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return v, nil
	}
	base := len(p.items) // this array's items are p.items[base:]
	defer func() { p.items = p.items[:base] }()
	for i := 0; ; i++ {
		p.skipSpace()
		p.path = append(p.path, pathElem{index: i, isIdx: true})
		item, err := p.value()
		if err != nil {
			return Value{}, err
		}
		p.path = p.path[:len(p.path)-1]
		p.items = append(p.items, item)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return Value{}, p.syntax("unexpected end of input in an array")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			v.Items = append([]Value(nil), p.items[base:]...) // exact size, one allocation
			return v, nil
		default:
			return Value{}, p.syntax("expected ',' or ']' in an array")
		}
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (p *parser) number() (Value, error) {
	start := p.pos
	d := p.data
	if d[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(d) && d[p.pos] == '0':
		p.pos++
	case p.pos < len(d) && isDigit(d[p.pos]):
		for p.pos < len(d) && isDigit(d[p.pos]) {
			p.pos++
		}
	default:
		return Value{}, p.syntax("invalid number")
	}
	if p.pos < len(d) && d[p.pos] == '.' {
		p.pos++
		if p.pos >= len(d) || !isDigit(d[p.pos]) {
			return Value{}, p.syntax("invalid number")
		}
		for p.pos < len(d) && isDigit(d[p.pos]) {
			p.pos++
		}
	}
	if p.pos < len(d) && (d[p.pos] == 'e' || d[p.pos] == 'E') {
		p.pos++
		if p.pos < len(d) && (d[p.pos] == '+' || d[p.pos] == '-') {
			p.pos++
		}
		if p.pos >= len(d) || !isDigit(d[p.pos]) {
			return Value{}, p.syntax("invalid number")
		}
		for p.pos < len(d) && isDigit(d[p.pos]) {
			p.pos++
		}
	}
	lit := p.text[start:p.pos] // a substring of the one copy: no allocation
	if _, err := strconv.ParseFloat(lit, 64); err != nil {
		return Value{}, &Error{Code: CodeInvalidField, Path: p.pathString(),
			Message: p.fieldName() + " is out of range for a number"}
	}
	return Value{Kind: Number, Str: lit}, nil
}

func (p *parser) fieldName() string {
	if s := p.pathString(); s != "" {
		return s
	}
	return "value"
}

// str parses a string literal at p.pos (which is '"') and returns its unescaped value.
func (p *parser) str() (string, error) {
	p.pos++ // opening quote
	start := p.pos
	d := p.data
	// Fast path: no escapes.
	for p.pos < len(d) {
		c := d[p.pos]
		if c == '"' {
			s := p.text[start:p.pos] // a substring of the one copy: no allocation
			p.pos++
			return s, nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", p.syntax("control character in a string")
		}
		p.pos++
	}
	buf := append([]byte(nil), d[start:p.pos]...)
	for p.pos < len(d) {
		c := d[p.pos]
		switch {
		case c == '"':
			p.pos++
			return string(buf), nil
		case c < 0x20:
			return "", p.syntax("control character in a string")
		case c != '\\':
			buf = append(buf, c)
			p.pos++
			continue
		}
		p.pos++ // backslash
		if p.pos >= len(d) {
			break
		}
		e := d[p.pos]
		p.pos++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.syntax("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) {
				// A surrogate must pair with a following \uDC00-\uDFFF escape; a lone one
				// is not a character and would become U+FFFD in encoding/json.
				if p.pos+1 < len(d) && d[p.pos] == '\\' && d[p.pos+1] == 'u' {
					p.pos += 2
					r2, ok := p.hex4()
					if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
						buf = utf8.AppendRune(buf, dec)
						continue
					}
				}
				return "", &Error{Code: CodeInvalidJSON, Path: p.pathString(),
					Message: "invalid JSON: unpaired UTF-16 surrogate in a string"}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", p.syntax("invalid escape in a string")
		}
	}
	return "", p.syntax("unterminated string")
}

func (p *parser) hex4() (rune, bool) {
	if p.pos+4 > len(p.data) {
		return 0, false
	}
	var r rune
	for _, c := range p.data[p.pos : p.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	p.pos += 4
	return r, true
}
