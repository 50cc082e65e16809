package strictjson

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzParse checks the pre-pass against encoding/json: whatever Parse accepts is valid
// JSON, re-encodes to JSON that Parse accepts again with the same encoding, and holds no
// invalid UTF-8; whatever encoding/json refuses, Parse refuses too.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"a":1}`, `[]`, `"x"`, `{"a":{"b":[1,2,{"c":null}]}}`, `{"a":"\ud83d\ude00"}`,
		`{"a":1,"A":2}`, `{"a":1e309}`, "{\"a\":\"\xff\"}", `[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Parse(data, 0)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("Parse accepted what encoding/json refuses: %q", data)
		}
		out := v.AppendJSON(nil)
		if !utf8.Valid(out) {
			t.Fatalf("re-encoding is not UTF-8: %q", out)
		}
		v2, err := Parse(out, 0)
		if err != nil {
			t.Fatalf("re-encoding %q does not parse: %v", out, err)
		}
		if out2 := v2.AppendJSON(nil); string(out2) != string(out) {
			t.Fatalf("re-encoding is not stable: %q vs %q", out, out2)
		}
	})
}
