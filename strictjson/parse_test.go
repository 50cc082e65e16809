package strictjson

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParseAcceptsAndRoundTrips(t *testing.T) {
	cases := map[string]string{
		`{"a":1,"b":[true,false,null],"c":{"d":"e"}}`:       `{"a":1,"b":[true,false,null],"c":{"d":"e"}}`,
		" \n{ \"a\" : -0.5e+10 , \"b\" : [ ] , \"c\":{}}\t": `{"a":-0.5e+10,"b":[],"c":{}}`,
		`"\u00e9\ud83d\ude00\n\"\\\/"`:                      "\"é😀\\n\\\"\\\\/\"",
		`[1,2,3]`:                                           `[1,2,3]`,
		`"a\u0000b"`:                                        `"a\u0000b"`,
		`"\u2028"`:                                          `"\u2028"`,
	}
	for in, want := range cases {
		v, err := Parse([]byte(in), 0)
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if got := string(v.AppendJSON(nil)); got != want {
			t.Errorf("Parse(%q) re-encodes as %s, want %s", in, got, want)
		}
		// What we write, encoding/json reads back as the same value.
		var a, b any
		if err := json.Unmarshal([]byte(in), &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(want), &b); err != nil {
			t.Fatal(err)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	cases := []struct {
		name, in, code, path string
	}{
		{"duplicate", `{"email":"a","email":"b"}`, CodeDuplicateKey, "email"},
		{"case variant", `{"email":"a","EMAIL":"b"}`, CodeDuplicateKey, "EMAIL"},
		{"escaped duplicate", `{"email":"a","\u0065mail":"b"}`, CodeDuplicateKey, "email"},
		{"nested duplicate", `{"a":{"b":1,"B":2}}`, CodeDuplicateKey, "a.B"},
		{"duplicate in array item", `{"a":[{},{"x":1,"x":2}]}`, CodeDuplicateKey, "a[1].x"},
		{"too deep", `{"a":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + "}", CodeTooDeep, "a" + strings.Repeat("[0]", 31)},
		{"invalid utf8", "{\"a\":\"\xff\"}", CodeInvalidJSON, ""},
		{"lone surrogate", `{"a":"\ud800"}`, CodeInvalidJSON, "a"},
		{"reversed surrogates", `{"a":"\udc00\ud800"}`, CodeInvalidJSON, "a"},
		{"huge number", `{"a":1e309}`, CodeInvalidField, "a"},
		{"trailing data", `{} {}`, CodeInvalidJSON, ""},
		{"trailing comma", `{"a":1,}`, CodeInvalidJSON, ""},
		{"leading zero", `{"a":01}`, CodeInvalidJSON, ""},
		{"raw control char", "{\"a\":\"\n\"}", CodeInvalidJSON, "a"},
		{"single quotes", `{'a':1}`, CodeInvalidJSON, ""},
		{"empty", ``, CodeInvalidJSON, ""},
		{"bad literal", `{"a":tru}`, CodeInvalidJSON, "a"},
		{"bad escape", `{"a":"\x"}`, CodeInvalidJSON, "a"},
		{"unterminated", `{"a":"b`, CodeInvalidJSON, "a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.in), 0)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%q) = %v, want *Error", c.in, err)
			}
			if e.Code != c.code || e.Path != c.path {
				t.Fatalf("Parse(%q): code %q path %q (%s), want %q %q", c.in, e.Code, e.Path, e.Message, c.code, c.path)
			}
		})
	}
}

func TestDepthLimitIsExact(t *testing.T) {
	ok := strings.Repeat(`{"a":`, 32) + "1" + strings.Repeat("}", 32)
	if _, err := Parse([]byte(ok), 32); err != nil {
		t.Fatalf("depth 32 refused: %v", err)
	}
	deep := strings.Repeat(`{"a":`, 33) + "1" + strings.Repeat("}", 33)
	if _, err := Parse([]byte(deep), 32); err == nil {
		t.Fatal("depth 33 accepted")
	}
}

func TestManyKeysDuplicateFoundInLargeObject(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i := range 1000 {
		b.WriteString(`"k` + strconv.Itoa(i) + `":1,`)
	}
	b.WriteString(`"K5":2}`) // case variant of k5, found through the map path
	_, err := Parse([]byte(b.String()), 0)
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeDuplicateKey || e.Path != "K5" {
		t.Fatalf("got %v, want duplicate_key at K5", err)
	}
}

func TestAppendStringEscapes(t *testing.T) {
	s := "a\"b\\c\x00\x1f\r\n\t\u2028\u2029é"
	out := AppendString(nil, s)
	var back string
	if err := json.Unmarshal(out, &back); err != nil || back != s {
		t.Fatalf("AppendString(%q) = %s, reads back %q (%v)", s, out, back, err)
	}
	for _, c := range out {
		if c < 0x20 {
			t.Fatalf("raw control byte %#x in %s", c, out)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	body := []byte(`{"clientEvents":[{"clientEventId":"2e08d638-04e2-4561-b56a-ca32cfff6203","clientEventType":"AdImpression","clientEvent":"AdViewableImpression","clientEventTimestamp":"2023-03-11T08:00:00Z","clientEventMetadata":{"serveToken":"91e471aed3c04b81bee792f23ad4859d","section":"LatestOffers","channel":"OLB","imageSlots":["logo"],"categoryId":"1","displayPosition":2}}]}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := Parse(body, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func TestValueCountIsCapped(t *testing.T) {
	ok := "[" + strings.Repeat("0,", MaxValues-2) + "0]" // the array itself is a value too
	if _, err := Parse([]byte(ok), 0); err != nil {
		t.Fatalf("%d values refused: %v", MaxValues, err)
	}
	over := "[" + strings.Repeat("0,", MaxValues-1) + "0]"
	_, err := Parse([]byte(over), 0)
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeInvalidJSON || !errors.Is(err, ErrTooManyValues) {
		t.Fatalf("%d values: %v, want invalid_json wrapping ErrTooManyValues", MaxValues+1, err)
	}
	// Other refusals are about their member, not the document's size.
	if _, err := Parse([]byte(`[1,]`), 0); err == nil || errors.Is(err, ErrTooManyValues) {
		t.Errorf("a syntax error: %v, want one that is not ErrTooManyValues", err)
	}
}

// BenchmarkParseHostileZeros is the worst case the value cap bounds: a 64 KiB body of
// small values.
func BenchmarkParseHostileZeros(b *testing.B) {
	body := []byte("[" + strings.Repeat("0,", 32*1024-1) + "0]")
	b.ReportAllocs()
	for b.Loop() {
		_, _ = Parse(body, 0)
	}
}
