package ingest_test

import (
	"net/http"
	"testing"

	"github.com/eventrelay/relay/config"
)

// With server.path_prefix every public path is served under it and only under it.
func TestPathPrefix(t *testing.T) {
	r := startRelayWith(t, func(c *config.Config) { c.Server.PathPrefix = "/t/r1" })
	batch := `{"events":[{"route":"ens/click","body":` + ensBody + `}]}`
	for _, tc := range []struct {
		name   string
		q      req
		status int
	}{
		{"route", req{path: "/t/r1/v1/ens/click", body: ensBody, header: shop()}, 202},
		{"batch", req{path: "/t/r1/v1/batch", body: batch, header: shop()}, 202},
		{"brevo mirror", req{path: "/t/r1/brevo/v3/events", body: brevoV3, header: apiKey(backend)}, 204},
		{"brevo mirror batch", req{path: "/t/r1/brevo/v3/events/batch", body: `[` + brevoV3 + `]`, header: apiKey(backend)}, 202},
		{"key in query", req{path: "/t/r1/v1/ens/click?key=" + shopKey, body: ensBody}, 202},
		{"bare route", req{path: "/v1/ens/click", body: ensBody, header: shop()}, 404},
		{"bare batch", req{path: "/v1/batch", body: batch, header: shop()}, 404},
		{"bare brevo mirror", req{path: "/brevo/v3/events", body: brevoV3, header: apiKey(backend)}, 404},
		{"half the prefix", req{path: "/t/v1/ens/click", body: ensBody, header: shop()}, 404},
		{"prefix glued to the path", req{path: "/t/r1v1/ens/click", body: ensBody, header: shop()}, 404},
		{"longer segment", req{path: "/t/r12/v1/ens/click", body: ensBody, header: shop()}, 404},
		{"prefix alone", req{path: "/t/r1", body: ensBody, header: shop()}, 404},
		{"prefix and slash", req{path: "/t/r1/", body: ensBody, header: shop()}, 404},
		{"prefix twice", req{path: "/t/r1/t/r1/v1/ens/click", body: ensBody, header: shop()}, 404},
		{"other case", req{path: "/T/R1/v1/ens/click", body: ensBody, header: shop()}, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if res := r.do(t, tc.q); res.status != tc.status {
				t.Errorf("%s: %d %s, want %d", tc.q.path, res.status, res.body, tc.status)
			}
		})
	}
	// The preflight a browser sends first is answered under the prefix too.
	res := r.do(t, req{method: "OPTIONS", path: "/t/r1/v1/ens/click", header: map[string]string{
		"Origin": shopOrig, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-relay-key"}})
	if res.status != http.StatusNoContent || res.header.Get("Access-Control-Allow-Origin") != shopOrig {
		t.Errorf("preflight under the prefix: %d %v", res.status, res.header)
	}
	if res := r.do(t, req{method: "OPTIONS", path: "/v1/ens/click", header: map[string]string{
		"Origin": shopOrig, "Access-Control-Request-Method": "POST"}}); res.status != http.StatusNotFound ||
		res.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight of the bare path: %d %v", res.status, res.header)
	}
	if n := len(r.entries(t, "ens")); n != 3 {
		t.Errorf("%d ens entries, want 3 (only the prefixed requests)", n)
	}
	// fasthttp normalises the path before routing: a dot segment cannot step out of the
	// prefix.
	if res := r.do(t, req{path: "/t/r1/../v1/ens/click", body: ensBody, header: shop()}); res.status != http.StatusNotFound {
		t.Errorf("dot segment: %d, want 404", res.status)
	}
}

// Without a prefix the paths stay at the root.
func TestNoPathPrefix(t *testing.T) {
	r := startRelay(t)
	if res := r.do(t, req{path: "/t/v1/ens/click", body: ensBody, header: shop()}); res.status != http.StatusNotFound {
		t.Errorf("/t/v1/ens/click: %d", res.status)
	}
	if res := r.do(t, req{path: "/v1/ens/click", body: ensBody, header: shop()}); res.status != http.StatusAccepted {
		t.Errorf("/v1/ens/click: %d %s", res.status, res.body)
	}
}
