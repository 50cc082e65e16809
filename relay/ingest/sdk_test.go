package ingest_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventrelay/relay/relay/ingest"
	"github.com/eventrelay/relay/sdk"
)

// sdkBudget is the size budget of the browser SDK as served gzip-encoded (issue 14).
const sdkBudget = 4096

// rawClient neither asks for nor decodes gzip by itself, so a test sees the bytes served.
var rawClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableCompression: true}}

func getSDK(t *testing.T, r *testRelay, method string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	hr, err := http.NewRequest(method, r.url+ingest.SDKPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		hr.Header.Set(k, v)
	}
	res, err := rawClient.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", method, ingest.SDKPath, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

// TestSDKServedWithinBudget fetches /v1/relay.js as a browser does (gzip accepted) and
// checks the headers and that the bytes on the wire fit the 4 KB budget; the identity
// encoding is the same script.
func TestSDKServedWithinBudget(t *testing.T) {
	r := startRelay(t)
	gz, zbody := getSDK(t, r, http.MethodGet, map[string]string{"Accept-Encoding": "gzip, deflate, br"})
	plain, body := getSDK(t, r, http.MethodGet, nil)
	for _, c := range []struct {
		name string
		res  *http.Response
		body []byte
		enc  string
	}{{"gzip", gz, zbody, "gzip"}, {"identity", plain, body, ""}} {
		h := c.res.Header
		if c.res.StatusCode != 200 {
			t.Fatalf("%s: status %d", c.name, c.res.StatusCode)
		}
		for k, want := range map[string]string{
			"Content-Type":                 "text/javascript; charset=utf-8",
			"Content-Encoding":             c.enc,
			"Cache-Control":                "public, max-age=3600",
			"Vary":                         "Accept-Encoding",
			"X-Content-Type-Options":       "nosniff",
			"Cross-Origin-Resource-Policy": "cross-origin",
			"Content-Length":               strconv.Itoa(len(c.body)),
			"Access-Control-Allow-Origin":  "",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", c.name, k, got, want)
			}
		}
		if tag := h.Get("ETag"); len(tag) < 3 || tag[0] != '"' || tag[len(tag)-1] != '"' {
			t.Errorf("%s: ETag %q is not a strong validator", c.name, tag)
		}
	}
	if gz.Header.Get("ETag") == plain.Header.Get("ETag") {
		t.Errorf("both encodings have ETag %s: a strong ETag must differ per representation", gz.Header.Get("ETag"))
	}
	t.Logf("served: %d bytes gzip, %d bytes minified (source %d bytes); budget %d", len(zbody), len(body), len(sdk.Source()), sdkBudget)
	if len(zbody) > sdkBudget {
		t.Errorf("the SDK is %d bytes served gzip-encoded, over the %d-byte budget", len(zbody), sdkBudget)
	}
	zr, err := gzip.NewReader(bytes.NewReader(zbody))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(unzipped, body) {
		t.Fatalf("gzip body does not decode to the identity body (%v)", err)
	}
	if len(body) >= len(sdk.Source()) || !bytes.Contains(body, []byte("sendBeacon")) {
		t.Errorf("served %d bytes, source %d: want the minified SDK", len(body), len(sdk.Source()))
	}
}

// TestSDKConditionalHeadAndMethods: If-None-Match answers 304 per representation, HEAD
// the GET's headers without a body, and other methods 405.
func TestSDKConditionalHeadAndMethods(t *testing.T) {
	r := startRelay(t)
	gz, zbody := getSDK(t, r, http.MethodGet, map[string]string{"Accept-Encoding": "gzip"})
	tag := gz.Header.Get("ETag")
	for _, c := range []struct {
		name, inm, enc string
		want           int
	}{
		{"same tag", tag, "gzip", 304},
		{"in a list, weak form", `"x", W/` + tag, "gzip", 304},
		{"star", "*", "gzip", 304},
		{"other representation", tag, "", 200},
		{"stale tag", `"0000"`, "gzip", 200},
	} {
		res, b := getSDK(t, r, http.MethodGet, map[string]string{"Accept-Encoding": c.enc, "If-None-Match": c.inm})
		if res.StatusCode != c.want {
			t.Errorf("%s: status %d, want %d", c.name, res.StatusCode, c.want)
		}
		if c.want == 304 && (len(b) != 0 || res.Header.Get("ETag") != tag) {
			t.Errorf("%s: 304 with %d body bytes, ETag %q", c.name, len(b), res.Header.Get("ETag"))
		}
	}
	head, b := getSDK(t, r, http.MethodHead, map[string]string{"Accept-Encoding": "gzip"})
	if head.StatusCode != 200 || len(b) != 0 || head.Header.Get("Content-Length") != strconv.Itoa(len(zbody)) ||
		head.Header.Get("ETag") != tag {
		t.Errorf("HEAD: %d, %d body bytes, Content-Length %s, ETag %s; want 200, 0, %d, %s",
			head.StatusCode, len(b), head.Header.Get("Content-Length"), head.Header.Get("ETag"), len(zbody), tag)
	}
	for _, m := range []string{http.MethodPost, http.MethodOptions, http.MethodDelete} {
		res, b := getSDK(t, r, m, nil)
		if res.StatusCode != 405 || res.Header.Get("Allow") != "GET, HEAD" || !strings.Contains(string(b), "method_not_allowed") {
			t.Errorf("%s: %d Allow %q %s; want 405 with Allow: GET, HEAD", m, res.StatusCode, res.Header.Get("Allow"), b)
		}
	}
}
