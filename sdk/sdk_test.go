package sdk_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"regexp"
	"testing"

	"github.com/eventrelay/relay/sdk"
)

func TestBuildIsStableAndDecodes(t *testing.T) {
	a, err := sdk.Build()
	if err != nil {
		t.Fatal(err)
	}
	b, err := sdk.Served()
	if err != nil {
		t.Fatal(err)
	}
	if a.ETag != b.ETag || a.GzipETag != b.GzipETag || !bytes.Equal(a.JS, b.JS) {
		t.Errorf("two builds differ: ETags %s/%s and %s/%s", a.ETag, a.GzipETag, b.ETag, b.GzipETag)
	}
	if len(a.JS) == 0 || len(a.JS) >= len(sdk.Source()) {
		t.Errorf("minified %d bytes from %d", len(a.JS), len(sdk.Source()))
	}
	zr, err := gzip.NewReader(bytes.NewReader(a.Gzip))
	if err != nil {
		t.Fatal(err)
	}
	if js, err := io.ReadAll(zr); err != nil || !bytes.Equal(js, a.JS) {
		t.Errorf("Gzip does not decode to JS (%v)", err)
	}
}

// TestDeclarationsMatchScript: every entry point of window.relay and every option with a
// default in relay.js is declared in relay.d.ts, and nothing else is.
func TestDeclarationsMatchScript(t *testing.T) {
	src, dts := string(sdk.Source()), string(sdk.Declarations())
	api := regexp.MustCompile(`(?m)^    (\w+): safe\(function`).FindAllStringSubmatch(src, -1)
	declared := regexp.MustCompile(`(?m)^  function (\w+)\(`).FindAllStringSubmatch(dts, -1)
	if len(api) < 4 || len(api) != len(declared) {
		t.Fatalf("relay.js exports %v, relay.d.ts declares %v", api, declared)
	}
	for i := range api {
		if api[i][1] != declared[i][1] {
			t.Errorf("entry point %d: relay.js %s, relay.d.ts %s", i, api[i][1], declared[i][1])
		}
	}
	defaults := regexp.MustCompile(`defaults = \{([^}]*)\}`).FindStringSubmatch(src)
	if defaults == nil {
		t.Fatal("no defaults in relay.js")
	}
	for _, m := range regexp.MustCompile(`(\w+):`).FindAllStringSubmatch(defaults[1], -1) {
		if !regexp.MustCompile(`(?m)^    ` + m[1] + `\?: number;`).MatchString(dts) {
			t.Errorf("option %s has a default in relay.js but is not declared as an optional number", m[1])
		}
	}
}
