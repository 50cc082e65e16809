package ingest_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/providers"
	"github.com/eventrelay/relay/relay/queue"
)

// apiKey is what the Brevo SDK sends: its apiKey option, here a relay client token.
func apiKey(tok string) map[string]string {
	return map[string]string{"api-key": tok, "X-Fern-Language": "JavaScript", "X-Fern-SDK-Name": "@getbrevo/brevo",
		"X-Fern-SDK-Version": "6.0.3", "X-Fern-Runtime": "node"}
}

// brevoErr decodes a Brevo-shaped error and checks it has exactly code and message.
func brevoErr(t *testing.T, body string) (code, message string) {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("error %q is not a JSON object of strings: %v", body, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !reflect.DeepEqual(keys, []string{"code", "message"}) {
		t.Fatalf("error %s: keys %v, want Brevo's code and message", body, keys)
	}
	return m["code"], m["message"]
}

func TestBrevoMirrorQueuesLikeV1(t *testing.T) {
	r := startRelay(t)
	second := strings.Replace(brevoV3, "cart_updated", "order_created", 1)
	res := r.do(t, req{path: "/brevo/v3/events", body: brevoV3, header: apiKey(backend)})
	if res.status != http.StatusNoContent || res.body != "" {
		t.Fatalf("one event: %d %q, want 204 without a body", res.status, res.body)
	}
	for _, body := range []string{`{"events":[` + brevoV3 + `,` + second + `]}`, `[` + brevoV3 + `,` + second + `]`} {
		res = r.do(t, req{path: "/brevo/v3/events/batch", body: body, header: apiKey(backend)})
		want := `{"status":"success","total_events":2,"successful_events":2,"failed_events":0,"errors":[]}`
		if res.status != http.StatusAccepted || res.body != want || res.header.Get("Content-Type") != "application/json" {
			t.Fatalf("batch %s: %d %q", body[:10], res.status, res.body)
		}
	}
	got := r.entries(t, "brevo")
	if len(got) != 5 {
		t.Fatalf("%d entries, want 5", len(got))
	}
	var bodies []string
	for i, e := range got {
		if e[queue.FieldRoute] != "brevo/events" || e[queue.FieldSource] != "client:backend" {
			t.Errorf("entry %d: %v", i, e)
		}
		bodies = append(bodies, e[queue.FieldBody].(string))
	}
	slices.Sort(bodies) // a batch's events are enqueued concurrently
	if want := []string{brevoV3, brevoV3, brevoV3, second, second}; !reflect.DeepEqual(bodies, want) {
		t.Errorf("bodies %q, want %q", bodies, want)
	}
	if dump := r.dumpRedis(t); strings.Contains(dump, backend) || strings.Contains(dump, "X-Fern") {
		t.Error("the client token or SDK headers reached Redis")
	}
}

func TestBrevoMirrorRefusals(t *testing.T) {
	r := startRelay(t)
	long := `{"event_name":"x","identifiers":{"ext_id":"` + strings.Repeat("a", 5000) + `"}}`
	for _, tc := range []struct {
		name        string
		q           req
		status      int
		code, inMsg string
	}{
		{"no api-key", req{path: "/brevo/v3/events", body: brevoV3}, 401, "unauthorized", "api-key"},
		{"unknown api-key", req{path: "/brevo/v3/events", body: brevoV3, header: apiKey("nope-nope-nope-nope")}, 401, "unauthorized", "client token"},
		{"site key as api-key", req{path: "/brevo/v3/events", body: brevoV3, header: apiKey(shopKey)}, 401, "unauthorized", "client token"},
		{"bearer only", req{path: "/brevo/v3/events", body: brevoV3, header: bearer(backend)}, 401, "unauthorized", "api-key"},
		{"from a browser", req{path: "/brevo/v3/events/batch", body: `[` + brevoV3 + `]`,
			header: map[string]string{"api-key": backend, "Origin": shopOrig}}, 403, "permission_denied", "browser"},
		{"GET", req{method: "GET", path: "/brevo/v3/events", header: apiKey(backend)}, 405, "method_not_allowed", "POST"},
		{"preflight", req{method: "OPTIONS", path: "/brevo/v3/events", header: map[string]string{"Origin": shopOrig}}, 405, "method_not_allowed", "POST"},
		{"missing name", req{path: "/brevo/v3/events", body: `{"identifiers":{"email_id":"a@example.com"}}`, header: apiKey(backend)},
			400, "missing_parameter", "event_name"},
		{"unknown field", req{path: "/brevo/v3/events", body: `{"event_name":"x","identifiers":{"email_id":"a@example.com"},"foo":1}`,
			header: apiKey(backend)}, 400, "invalid_parameter", "foo"},
		{"invalid json", req{path: "/brevo/v3/events", body: `{"event_name":`, header: apiKey(backend)}, 400, "invalid_parameter", "JSON"},
		{"batch item", req{path: "/brevo/v3/events/batch", body: `{"events":[` + brevoV3 + `,{"event_name":"x"}]}`, header: apiKey(backend)},
			400, "missing_parameter", "events[1]"},
		{"bare batch item", req{path: "/brevo/v3/events/batch", body: `[` + brevoV3 + `,{"event_name":"x"}]`, header: apiKey(backend)},
			400, "missing_parameter", "[1]"},
		{"empty batch", req{path: "/brevo/v3/events/batch", body: `{"events":[]}`, header: apiKey(backend)}, 400, "missing_parameter", "events"},
		{"batch extra member", req{path: "/brevo/v3/events/batch", body: `{"events":[` + brevoV3 + `],"x":1}`, header: apiKey(backend)},
			400, "invalid_parameter", "x"},
		{"batch of a string", req{path: "/brevo/v3/events/batch", body: `"x"`, header: apiKey(backend)}, 400, "invalid_parameter", "array"},
		{"bad idempotency key", req{path: "/brevo/v3/events", body: brevoV3,
			header: map[string]string{"api-key": backend, "Idempotency-Key": "a b"}}, 400, "invalid_parameter", "Idempotency-Key"},
		{"too large", req{path: "/brevo/v3/events", body: long, header: apiKey(backend)}, 413, "out_of_range", "max_body_bytes"},
		{"form type", req{path: "/brevo/v3/events", body: brevoV3,
			header: map[string]string{"api-key": backend, "Content-Type": "application/x-www-form-urlencoded"}}, 415, "invalid_parameter", "Content-Type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := r.do(t, tc.q)
			code, msg := brevoErr(t, res.body)
			if res.status != tc.status || code != tc.code || !strings.Contains(msg, tc.inMsg) {
				t.Errorf("%d %s, want %d %s with %q", res.status, res.body, tc.status, tc.code, tc.inMsg)
			}
			if strings.Contains(res.body, backend) {
				t.Error("reply echoes the client token")
			}
		})
	}
	if n := len(r.entries(t, "brevo")); n != 0 {
		t.Errorf("%d entries queued by refused requests", n)
	}
}

// A client whose routes leave out brevo/events is refused on the mirror too.
func TestBrevoMirrorRouteAllowlist(t *testing.T) {
	const billing = "billing-token-0123456789"
	r := startRelayWith(t, func(c *config.Config) {
		c.Clients = append(c.Clients, config.Client{Name: "billing", Token: billing, Routes: []string{"ens/click"}})
	})
	res := r.do(t, req{path: "/brevo/v3/events", body: brevoV3, header: apiKey(billing)})
	if code, _ := brevoErr(t, res.body); res.status != http.StatusForbidden || code != "permission_denied" {
		t.Errorf("%d %s", res.status, res.body)
	}
}

func TestBrevoMirrorIdempotencyKey(t *testing.T) {
	r := startRelay(t)
	for range 2 {
		h := map[string]string{"api-key": backend, "Idempotency-Key": "order-77"}
		if res := r.do(t, req{path: "/brevo/v3/events", body: brevoV3, header: h}); res.status != http.StatusNoContent {
			t.Fatalf("%d %s", res.status, res.body)
		}
		h["Idempotency-Key"] = "batch-78"
		if res := r.do(t, req{path: "/brevo/v3/events/batch", body: `[` + brevoV3 + `,` + brevoV3 + `]`, header: h}); res.status != http.StatusAccepted {
			t.Fatalf("%d %s", res.status, res.body)
		}
	}
	var ids []string
	for _, e := range r.entries(t, "brevo") {
		ids = append(ids, e[queue.FieldID].(string))
	}
	slices.Sort(ids) // a batch's events are enqueued concurrently
	if want := []string{"brevo-batch:batch-78:0", "brevo-batch:batch-78:1", "order-77"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("ids %q, want %q (each once)", ids, want)
	}
	long := strings.Repeat("k", 128-len("brevo-batch:"))
	res := r.do(t, req{path: "/brevo/v3/events/batch", body: `[` + brevoV3 + `]`,
		header: map[string]string{"api-key": backend, "Idempotency-Key": long}})
	if code, msg := brevoErr(t, res.body); res.status != http.StatusBadRequest || code != "invalid_parameter" || !strings.Contains(msg, "Idempotency-Key") {
		t.Errorf("key too long for its batch ids: %d %s", res.status, res.body)
	}
}

func TestBrevoMirrorUnavailable(t *testing.T) {
	r := startRelay(t)
	r.redis.Pause()
	defer r.redis.Resume()
	for _, path := range []string{"/brevo/v3/events", "/brevo/v3/events/batch"} {
		body := brevoV3
		if strings.HasSuffix(path, "batch") {
			body = `[` + brevoV3 + `]`
		}
		res := r.do(t, req{path: path, body: body, header: apiKey(backend)})
		if code, _ := brevoErr(t, res.body); res.status != http.StatusServiceUnavailable || code != "service_unavailable" ||
			res.header.Get("Retry-After") != "1" {
			t.Errorf("%s with Redis paused: %d %v %s", path, res.status, res.header, res.body)
		}
	}
}

// Without providers.brevo.api_key the mirror paths answer 404 in Brevo's shape.
func TestBrevoMirrorNeedsAPIKey(t *testing.T) {
	r := startRelayWith(t, func(c *config.Config) {
		c.Providers.Section("brevo").(*providers.BrevoConfig).APIKey = ""
		isV3 := func(r string) bool { return r == "brevo/events" }
		for i := range c.Sites {
			c.Sites[i].Routes = slices.DeleteFunc(c.Sites[i].Routes, isV3)
		}
		for i := range c.Clients {
			c.Clients[i].Routes = slices.DeleteFunc(c.Clients[i].Routes, isV3)
		}
	})
	res := r.do(t, req{path: "/brevo/v3/events", body: brevoV3, header: apiKey(backend)})
	if code, msg := brevoErr(t, res.body); res.status != http.StatusNotFound || code != "document_not_found" || !strings.Contains(msg, "api_key") {
		t.Errorf("%d %s", res.status, res.body)
	}
}

// TestBrevoMirrorBatchIDsApartFromClientKeys: a batch's derived ids cannot equal a key a
// client chose on a one-event path (else the batch event is answered success and never
// queued as the other's duplicate): clients may not choose ids of the derived shape.
func TestBrevoMirrorBatchIDsApartFromClientKeys(t *testing.T) {
	r := startRelay(t)
	other := strings.Replace(brevoV3, "cart_updated", "order_created", 1)
	if res := r.do(t, req{path: "/brevo/v3/events", body: brevoV3, header: map[string]string{"api-key": backend, "Idempotency-Key": "order-77:0"}}); res.status != http.StatusNoContent {
		t.Fatalf("one event keyed order-77:0: %d %s", res.status, res.body)
	}
	if res := r.do(t, req{path: "/brevo/v3/events/batch", body: `[` + other + `]`, header: map[string]string{"api-key": backend, "Idempotency-Key": "order-77"}}); res.status != http.StatusAccepted {
		t.Fatalf("batch keyed order-77: %d %s", res.status, res.body)
	}
	if n := len(r.entries(t, "brevo")); n != 2 {
		t.Errorf("%d brevo events queued, want 2: the batch's event was taken for the one-event key's duplicate", n)
	}
	derived := "brevo-batch:order-77:0"
	for _, c := range []struct {
		name, path, body string
		header           map[string]string
		field            string
	}{
		{"mirror one-event key", "/brevo/v3/events", brevoV3, map[string]string{"api-key": backend, "Idempotency-Key": derived}, ""},
		{"/v1 one-event key", "/v1/brevo/events", brevoV3, map[string]string{"Authorization": "Bearer " + backend, "Idempotency-Key": derived}, "Idempotency-Key"},
		{"/v1/batch item id", "/v1/batch", `{"events":[{"route":"brevo/events","id":"` + derived + `","body":` + brevoV3 + `}]}`, bearer(backend), "events[0].id"},
	} {
		res := r.do(t, req{path: c.path, body: c.body, header: c.header})
		if res.status != http.StatusBadRequest {
			t.Errorf("%s %s: %d %s, want 400", c.name, derived, res.status, res.body)
			continue
		}
		if c.field == "" { // Brevo's error shape: the field leads the message
			if _, msg := brevoErr(t, res.body); !strings.HasPrefix(msg, "Idempotency-Key") {
				t.Errorf("%s: %s, want the message to name Idempotency-Key", c.name, res.body)
			}
		} else if e := decode[refused](t, res.body); e.Error.Field != c.field {
			t.Errorf("%s: %s, want field %s", c.name, res.body, c.field)
		}
	}
	if n := len(r.entries(t, "brevo")); n != 2 {
		t.Errorf("%d brevo events queued after the refusals, want 2", n)
	}
}
