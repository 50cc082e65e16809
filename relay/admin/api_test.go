package admin_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/eventrelay/relay/relay/admin"
)

// apiPaths are one request to every API route.
var apiPaths = []struct{ method, path, body string }{
	{"GET", "/admin/api/providers", ""},
	{"GET", "/admin/api/dead/ens", ""},
	{"GET", "/admin/api/dead/ens/1-0", ""},
	{"POST", "/admin/api/dead/ens/replay", `{"ids":["1-0"]}`},
	{"DELETE", "/admin/api/dead/ens", `{"ids":["1-0"]}`},
	{"GET", "/admin/api/nothing-here", ""},
}

func wantError(t *testing.T, what string, b []byte, code string) {
	t.Helper()
	var e admin.ErrorReply
	if err := json.Unmarshal(b, &e); err != nil || e.OK || e.Error.Code != code || e.Error.Message == "" {
		t.Errorf("%s: reply %s, want error code %q", what, b, code)
	}
}

func TestAPIRefusesMissingOrWrongToken(t *testing.T) {
	fx := newFixture(t, fxOptions{})
	headers := map[string]string{
		"none":         "",
		"wrong":        "Bearer wrong-token-0123456789abcdef",
		"prefix":       "Bearer " + fxToken[:len(fxToken)-1],
		"longer":       "Bearer " + fxToken + "x",
		"no scheme":    fxToken,
		"basic":        "Basic " + fxToken,
		"empty bearer": "Bearer ",
	}
	for _, p := range apiPaths {
		for name, h := range headers {
			req, _ := http.NewRequest(p.method, fx.base+p.path, strings.NewReader(p.body))
			if h != "" {
				req.Header.Set("Authorization", h)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var e admin.ErrorReply
			err = json.NewDecoder(res.Body).Decode(&e)
			res.Body.Close()
			if res.StatusCode != 401 || err != nil || e.Error.Code != admin.CodeUnauthorized ||
				res.Header.Get("Content-Type") != "application/json" || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s with %s token: %d %+v (%v)", p.method, p.path, name, res.StatusCode, e, err)
			}
		}
	}
	// The right token, with the scheme in any case.
	for _, scheme := range []string{"Bearer", "bearer", "BEARER"} {
		req, _ := http.NewRequest("GET", fx.base+"/admin/api/providers", nil)
		req.Header.Set("Authorization", scheme+" "+fxToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("%s scheme: status %d", scheme, res.StatusCode)
		}
	}
	// Nothing was changed by the refused calls.
	if n := len(fx.auditLines()); n != 0 {
		t.Errorf("refused calls left %d audit lines", n)
	}
}

func TestAPIWithEmptyTokenRefusesEverything(t *testing.T) {
	empty := ""
	fx := newFixture(t, fxOptions{token: &empty})
	for _, h := range []string{"", "Bearer ", "Bearer  "} {
		req, _ := http.NewRequest("GET", fx.base+"/admin/api/providers", nil)
		if h != "" {
			req.Header.Set("Authorization", h)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 401 {
			t.Errorf("Authorization %q with an empty admin.token: status %d, want 401", h, res.StatusCode)
		}
	}
}

func TestAPIUnknownProviderIs404(t *testing.T) {
	fx := newFixture(t, fxOptions{})
	for _, p := range []struct{ method, path, body string }{
		{"GET", "/admin/api/dead/nope", ""},
		{"GET", "/admin/api/dead/nope/1-0", ""},
		{"POST", "/admin/api/dead/nope/replay", ""},
		{"DELETE", "/admin/api/dead/nope", ""},
		{"GET", "/admin/api/dead/cardlytics", ""}, // a real provider, but not enabled here
	} {
		status, _, b := fx.do(p.method, p.path, fxToken, p.body)
		if status != 404 {
			t.Errorf("%s %s: status %d", p.method, p.path, status)
		}
		wantError(t, p.method+" "+p.path, b, admin.CodeUnknownProvider)
	}
	status, _, b := fx.do("GET", "/admin/api/nothing-here", fxToken, "")
	if status != 404 {
		t.Errorf("unknown API path: status %d", status)
	}
	wantError(t, "unknown API path", b, admin.CodeNotFound)
	if n := len(fx.auditLines()); n != 0 {
		t.Errorf("404s left %d audit lines", n)
	}
}

func TestAPIBadRequestsAre400(t *testing.T) {
	fx := newFixture(t, fxOptions{})
	dead := fx.addDead("ens", event{id: "e1", route: "ens/click", body: `{}`}, deadInfo{reason: "permanent", status: 400, attempts: 1})
	for _, p := range []struct{ method, path, body string }{
		{"POST", "/admin/api/dead/ens/replay", `{`},
		{"POST", "/admin/api/dead/ens/replay", `{"idz":["1-0"]}`},
		{"POST", "/admin/api/dead/ens/replay", `{"ids":"1-0"}`},
		{"POST", "/admin/api/dead/ens/replay", `{"ids":["not-an-id"]}`},
		{"POST", "/admin/api/dead/ens/replay", `{"ids":["1-0"]} {"ids":[]}`},
		{"POST", "/admin/api/dead/ens/replay", `{"limit":-1}`},
		{"POST", "/admin/api/dead/ens/replay", `{"after":"x"}`},
		{"DELETE", "/admin/api/dead/ens", `[]`},
		{"DELETE", "/admin/api/dead/ens", `{"ids":["1-0",7]}`},
		{"DELETE", "/admin/api/dead/ens", `{"ids":["+"]}`},
		{"GET", "/admin/api/dead/ens?limit=0", ""},
		{"GET", "/admin/api/dead/ens?limit=ten", ""},
		{"GET", "/admin/api/dead/ens/abc", ""},
	} {
		status, _, b := fx.do(p.method, p.path, fxToken, p.body)
		if status != 400 {
			t.Errorf("%s %s %s: status %d: %s", p.method, p.path, p.body, status, b)
		}
		wantError(t, p.method+" "+p.path+" "+p.body, b, admin.CodeBadRequest)
	}
	// A bad request changed nothing.
	if got := fx.stream(fx.keys.Dead("ens")); len(got) != 1 || got[0].ID != dead {
		t.Errorf("dead letters after bad requests: %v", got)
	}
	if n := len(fx.auditLines()); n != 0 {
		t.Errorf("bad requests left %d audit lines", n)
	}
}

func TestPageIsServedWithoutTokenAndWithCSP(t *testing.T) {
	fx := newFixture(t, fxOptions{})
	for _, path := range []string{"/admin/", "/admin/index.html"} {
		status, h, b := fx.do("GET", path, "", "")
		if status != 200 {
			t.Fatalf("GET %s: %d", path, status)
		}
		want := map[string]string{
			"Content-Type":            "text/html; charset=utf-8",
			"Cache-Control":           "no-store",
			"Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
			"X-Content-Type-Options":  "nosniff",
		}
		for k, v := range want {
			if got := h.Get(k); got != v {
				t.Errorf("GET %s: %s is %q, want %q", path, k, got, v)
			}
		}
		if !strings.Contains(strings.ToLower(string(b)), "<html") {
			t.Errorf("GET %s: not the page: %.200s", path, b)
		}
	}
	// /admin redirects to the page; other paths are not the page.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Get(fx.base + "/admin")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/admin/" {
		t.Errorf("GET /admin: %d Location %q", res.StatusCode, res.Header.Get("Location"))
	}
	if status, _, _ := fx.do("GET", "/admin/secret.txt", "", ""); status != 404 {
		t.Errorf("GET /admin/secret.txt: %d", status)
	}
}

func TestReadyz(t *testing.T) {
	fx := newFixture(t, fxOptions{})
	if status, _, b := fx.do("GET", "/readyz", "", ""); status != 200 || string(b) != `{"ok":true}` {
		t.Errorf("readyz: %d %s", status, b)
	}
	fx.rs.Kill()
	if status, _, b := fx.do("GET", "/readyz", "", ""); status != 503 || !strings.Contains(string(b), "redis unreachable") {
		t.Errorf("readyz with Redis down: %d %s", status, b)
	}
	if status, _, _ := fx.do("GET", "/healthz", "", ""); status != 200 {
		t.Errorf("healthz with Redis down: %d", status)
	}
	// The API says Redis failed, in JSON.
	status, _, b := fx.do("GET", "/admin/api/providers", fxToken, "")
	if status != 503 {
		t.Errorf("providers with Redis down: %d %s", status, b)
	}
	wantError(t, "providers with Redis down", b, admin.CodeUnavailable)
	fx.rs.Restart()
	if status, _, _ := fx.do("GET", "/readyz", "", ""); status != 200 {
		t.Errorf("readyz after Redis came back: %d", status)
	}
	fx.srv.Drain()
	if status, _, b := fx.do("GET", "/readyz", "", ""); status != 503 || !strings.Contains(string(b), "draining") {
		t.Errorf("readyz while draining: %d %s", status, b)
	}
}
