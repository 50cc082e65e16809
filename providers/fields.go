package providers

import (
	"strconv"
	"strings"

	"github.com/eventrelay/relay/strictjson"
)

// Validation error codes, as the ingest API reports them.
const (
	CodeMissingField = "missing_field"
	CodeInvalidField = "invalid_field"
	CodeUnknownField = "unknown_field"
)

// FieldError is a refused inbound body. Field is the path of the offending member, e.g.
// "clientEvents[0].clientEventMetadata.section".
type FieldError struct {
	Code    string
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Message }

// fields walks one JSON object and records the first problem. Calls after a problem do
// nothing, so a validator reads as a straight list of rules.
type fields struct {
	v      *strictjson.Value
	prefix string // path of this object, "" for the body
	err    *FieldError
}

// newFields checks that v is an object; path names it in errors ("" for the body itself).
func newFields(v *strictjson.Value, path string, err *FieldError) *fields {
	f := &fields{v: v, prefix: path}
	if err != nil {
		f.err = err
		return f
	}
	if v == nil || v.Kind != strictjson.Object {
		name := path
		if name == "" {
			name = "body"
		}
		f.fail(CodeInvalidField, path, name+" must be a JSON object")
	}
	return f
}

func (f *fields) path(name string) string {
	if f.prefix == "" {
		return name
	}
	return f.prefix + "." + name
}

func (f *fields) fail(code, field, msg string) {
	if f.err == nil {
		f.err = &FieldError{Code: code, Field: field, Message: msg}
	}
}

// failField records a problem with member name of this object.
func (f *fields) failField(code, name, msg string) { f.fail(code, f.path(name), f.path(name)+" "+msg) }

// Err returns the first problem, or nil.
func (f *fields) Err() error {
	if f.err == nil {
		return nil
	}
	return f.err
}

// known refuses members not in names. Keys are compared exactly.
func (f *fields) known(names ...string) {
	if f.err != nil {
		return
	}
next:
	for _, m := range f.v.Members {
		for _, n := range names {
			if m.Key == n {
				continue next
			}
		}
		f.fail(CodeUnknownField, f.path(m.Key), f.path(m.Key)+" is not a known field")
		return
	}
}

// msgNull is the complaint about an explicit null in a field. No provider documents null
// for any field the relay checks (an upstream refuses it, or worse, stores it), so a
// field either has a value or is left out. The one documented exception, Cardlytics'
// clientEventMetadata of non-ad events, is read with nullable.
const msgNull = "must not be null: leave the field out when it has no value"

// get returns optional member name, or nil when it is absent. An explicit null is refused
// (invalid_field, msgNull).
func (f *fields) get(name string) *strictjson.Value { return f.lookup(name, false) }

// lookup returns member name, or nil when it is absent or f already failed. An explicit
// null is refused: as missing when required, as invalid otherwise.
func (f *fields) lookup(name string, required bool) *strictjson.Value {
	if f.err != nil {
		return nil
	}
	m := f.v.Get(name)
	switch {
	case m == nil && required:
		f.failField(CodeMissingField, name, "is required")
	case m == nil:
	case m.Kind != strictjson.Null:
		return m
	case required:
		f.failField(CodeMissingField, name, "is required")
	default:
		f.failField(CodeInvalidField, name, msgNull)
	}
	return nil
}

// nullable returns member name, treating an explicit null as absent: only for the fields
// whose documentation allows null.
func (f *fields) nullable(name string) *strictjson.Value {
	if f.err != nil {
		return nil
	}
	if m := f.v.Get(name); m != nil && m.Kind != strictjson.Null {
		return m
	}
	return nil
}

func (f *fields) kind(name string, want strictjson.Kind, required bool) *strictjson.Value {
	m := f.lookup(name, required)
	if m == nil {
		return nil
	}
	if m.Kind != want {
		f.failField(CodeInvalidField, name, "must be a "+want.String())
		return nil
	}
	return m
}

// str returns string member name. required: absence is an error. maxLen > 0 caps its length
// in characters; an empty string counts as missing when required.
func (f *fields) str(name string, required bool, maxLen int) (string, bool) {
	m := f.kind(name, strictjson.String, required)
	if m == nil {
		return "", false
	}
	if required && strings.TrimSpace(m.Str) == "" {
		f.failField(CodeMissingField, name, "must not be empty")
		return "", false
	}
	if maxLen > 0 && len([]rune(m.Str)) > maxLen {
		f.failField(CodeInvalidField, name, "must be at most "+strconv.Itoa(maxLen)+" characters")
		return "", false
	}
	return m.Str, true
}

// enum returns string member name, which must be one of allowed.
func (f *fields) enum(name string, required bool, allowed ...string) (string, bool) {
	s, ok := f.str(name, required, 0)
	if !ok {
		return "", false
	}
	for _, a := range allowed {
		if s == a {
			return s, true
		}
	}
	f.failField(CodeInvalidField, name, "must be one of "+strings.Join(allowed, ", "))
	return "", false
}

// integer returns integer member name (no fraction, no exponent, fits int64).
func (f *fields) integer(name string, required bool) (int64, bool) {
	m := f.kind(name, strictjson.Number, required)
	if m == nil {
		return 0, false
	}
	n, ok := m.Int()
	if !ok {
		f.failField(CodeInvalidField, name, "must be an integer")
		return 0, false
	}
	return n, true
}

// number returns number member name.
func (f *fields) number(name string, required bool) (float64, bool) {
	m := f.kind(name, strictjson.Number, required)
	if m == nil {
		return 0, false
	}
	return m.Float(), true
}

// object returns a walker over object member name, or nil when absent (and not required).
func (f *fields) object(name string, required bool) *fields {
	m := f.kind(name, strictjson.Object, required)
	if m == nil {
		return nil
	}
	return &fields{v: m, prefix: f.path(name)}
}

// array returns array member name.
func (f *fields) array(name string, required bool) *strictjson.Value {
	return f.kind(name, strictjson.Array, required)
}

// child merges the first problem of a nested walker into f.
func (f *fields) child(c *fields) {
	if c != nil && c.err != nil {
		f.fail(c.err.Code, c.err.Field, c.err.Message)
	}
}

// check records a problem with member name when ok is false.
func (f *fields) check(ok bool, name, msg string) {
	if !ok && f.err == nil {
		f.failField(CodeInvalidField, name, msg)
	}
}

// ident is str for identifiers and names rather than free text: control characters are
// refused, and so is an empty string even when the member is optional (an empty id would
// still be sent, and e.g. an empty Linkrunner payment_id would dedupe unrelated payments).
func (f *fields) ident(name string, required bool, maxLen int) (string, bool) {
	s, ok := f.str(name, required, maxLen)
	if !ok {
		return "", false
	}
	switch {
	case strings.TrimSpace(s) == "":
		f.failField(CodeInvalidField, name, "must not be empty")
		return "", false
	case hasControl(s):
		f.failField(CodeInvalidField, name, "must not contain control characters")
		return "", false
	}
	return s, true
}

// timestamp returns string member name, which must be an RFC 3339 timestamp.
func (f *fields) timestamp(name string, required bool) (string, bool) {
	s, ok := f.str(name, required, 0)
	if !ok {
		return "", false
	}
	if !isTimestamp(s) {
		f.failField(CodeInvalidField, name, "must be an RFC 3339 timestamp such as 2023-03-11T08:00:00Z")
		return "", false
	}
	return s, true
}

// setMember sets member key of object v to val and reports whether the tree changed, so
// that a body whose identity already matched is forwarded as received.
func setMember(v *strictjson.Value, key string, val strictjson.Value) bool {
	if old := v.Get(key); old != nil && string(old.AppendJSON(nil)) == string(val.AppendJSON(nil)) {
		return false
	}
	v.Set(key, val)
	return true
}
