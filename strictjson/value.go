package strictjson

import (
	"strconv"
	"unicode/utf8"
)

// Kind is the JSON type of a Value.
type Kind uint8

// The JSON types.
const (
	Null Kind = iota
	Bool
	Number
	String
	Array
	Object
)

var kindNames = [...]string{"null", "boolean", "number", "string", "array", "object"}

// String names the kind as error messages use it ("a number", "an object" read better but
// messages say "must be a number").
func (k Kind) String() string { return kindNames[k] }

// Value is one parsed JSON value.
type Value struct {
	Kind Kind
	// Str is the unescaped text of a String, or the literal text of a Number.
	Str string
	// Bool is the value of a Bool.
	Bool bool
	// Items are the elements of an Array.
	Items []Value
	// Members are the members of an Object, in document order, with exact keys.
	Members []Member
}

// Member is one key/value pair of an object.
type Member struct {
	Key   string
	Value Value
}

// StringValue returns a String value.
func StringValue(s string) Value { return Value{Kind: String, Str: s} }

// ObjectValue returns an Object with the given members.
func ObjectValue(members ...Member) Value { return Value{Kind: Object, Members: members} }

// Get returns the member with exactly this key, or nil. It is nil-safe and returns nil
// for non-objects.
func (v *Value) Get(key string) *Value {
	if v == nil || v.Kind != Object {
		return nil
	}
	for i := range v.Members {
		if v.Members[i].Key == key {
			return &v.Members[i].Value
		}
	}
	return nil
}

// Set replaces the member with this key or appends it.
func (v *Value) Set(key string, val Value) {
	if m := v.Get(key); m != nil {
		*m = val
		return
	}
	v.Members = append(v.Members, Member{Key: key, Value: val})
}

// Delete removes the member with this key, if any.
func (v *Value) Delete(key string) {
	for i := range v.Members {
		if v.Members[i].Key == key {
			v.Members = append(v.Members[:i], v.Members[i+1:]...)
			return
		}
	}
}

// Float returns a Number's value. Parse has already refused literals outside float64.
func (v *Value) Float() float64 {
	f, _ := strconv.ParseFloat(v.Str, 64)
	return f
}

// Int returns a Number's value when it is an integer literal (no fraction or exponent)
// that fits in int64.
func (v *Value) Int() (int64, bool) {
	if v.Kind != Number {
		return 0, false
	}
	n, err := strconv.ParseInt(v.Str, 10, 64)
	return n, err == nil
}

// AppendJSON appends the compact JSON encoding of v to dst.
func (v *Value) AppendJSON(dst []byte) []byte {
	switch v.Kind {
	case Null:
		return append(dst, "null"...)
	case Bool:
		if v.Bool {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case Number:
		return append(dst, v.Str...)
	case String:
		return AppendString(dst, v.Str)
	case Array:
		dst = append(dst, '[')
		for i := range v.Items {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = v.Items[i].AppendJSON(dst)
		}
		return append(dst, ']')
	default:
		dst = append(dst, '{')
		for i := range v.Members {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, v.Members[i].Key)
			dst = append(dst, ':')
			dst = v.Members[i].Value.AppendJSON(dst)
		}
		return append(dst, '}')
	}
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string literal. Control characters, quotes, backslashes
// and the line separators U+2028/U+2029 are escaped; s must be valid UTF-8.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == '\u2028' || r == '\u2029' {
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\u202`...)
				dst = append(dst, hexDigits[r&0xF])
				i += size
				start = i
				continue
			}
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
