package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"eventrelay/config"
	"eventrelay/relay/queue"
)

// The conformance suite: every outbound adapter, one table entry per route, against a fake
// upstream over real HTTP on 127.0.0.1, through the same checks (exact request, secrets,
// classification of every documented status, rate-limit delays, transport failures,
// redirects, huge replies, echoed secrets, corrupt bodies). A new provider is one more
// entry in cfCases.

// cfTimeout is the adapters' upstream timeout in the suite: short, to keep it fast.
const cfTimeout = 300 * time.Millisecond

// Canary secrets: none may appear anywhere but in its own request header.
const (
	cfLinkrunnerKey = "lr-canary-7d1e0c5a9b3f"
	cfENSKey        = "ens-canary-3f8a2b6c4d1e"
	cfBrevoKey      = "xkeysib-canary-5e4d3c2b1a0f"
	cfBrevoMAKey    = "ma-canary-9a8b7c6d5e4f"
)

// cfReply is one scripted answer of the fake upstream.
type cfReply struct {
	status  int
	header  map[string]string
	body    string
	pad     int           // > 0: this many more bytes of body after body
	endless bool          // stream body until the client goes away
	delay   time.Duration // wait before answering (cut short when the client leaves)
}

// cfHit is one request the fake received.
type cfHit struct {
	method, path, query string
	header              http.Header
	body                []byte
}

// cfFake is a fake upstream: it records every request and answers the n-th with
// script[min(n, len-1)] (200 {"ok":true} without a script). Paths in aux get fixed answers
// and are recorded apart (e.g. a session start before the event request).
type cfFake struct {
	srv    *httptest.Server
	mu     sync.Mutex
	hits   []cfHit
	auxed  []cfHit
	script []cfReply
	aux    map[string]cfReply
}

func newCFFake(t *testing.T, serve func(http.Handler) *httptest.Server, aux map[string]cfReply, script ...cfReply) *cfFake {
	t.Helper()
	f := &cfFake{script: script, aux: aux}
	if serve == nil {
		serve = httptest.NewServer
	}
	f.srv = serve(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *cfFake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h := cfHit{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Clone(), body: body}
	f.mu.Lock()
	rep, isAux := f.aux[r.URL.Path]
	if isAux {
		f.auxed = append(f.auxed, h)
	} else {
		rep = cfReply{status: 200, body: `{"ok":true}`}
		if len(f.script) > 0 {
			rep = f.script[min(len(f.hits), len(f.script)-1)]
		}
		f.hits = append(f.hits, h)
	}
	f.mu.Unlock()
	if rep.delay > 0 {
		select {
		case <-time.After(rep.delay):
		case <-r.Context().Done():
			return
		}
	}
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
	chunk := []byte(strings.Repeat("x", 32<<10))
	for sent, stop := 0, time.Now().Add(5*time.Second); (rep.endless || sent < rep.pad) && time.Now().Before(stop); sent += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			return // the client stopped reading: what the relay must do
		}
	}
}

func (f *cfFake) URL() string { return f.srv.URL }

func (f *cfFake) got() []cfHit {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]cfHit(nil), f.hits...)
}

// cfCase is one route of one adapter.
type cfCase struct {
	name string
	// build returns the adapter under test with the route's upstream at base.
	build func(t *testing.T, base string, timeout time.Duration) Adapter
	// serve starts the fake (nil: httptest.NewServer; a TLS provider passes its own).
	serve func(http.Handler) *httptest.Server
	// aux are upstream paths answered outside the script (e.g. session starts).
	aux map[string]cfReply
	// msg is the stored event, built from the provider's documented example body.
	msg func() *queue.Message
	// wantPath, wantHeader and wantBody are the exact request (body compared as JSON).
	wantPath   string
	wantHeader map[string]string
	wantBody   string
	// secrets are all the provider's secrets; authHeader is the one header allowed to
	// carry one ("" when the route sends none).
	secrets    []string
	authHeader string
	// success are the statuses that mean delivered; the first is the documented one.
	success []int
	// permanent overrides cfPermanent for this provider.
	permanent map[int]bool
	// rateHeader carries a 429's delay in seconds.
	rateHeader string
}

// cfPermanent is the expected class of each status PROVIDERS.md documents: true for
// Permanent, false for retryable (401: the relay's credential, a config fault).
var cfPermanent = map[int]bool{400: true, 401: false, 402: true, 403: true, 404: true, 408: false,
	429: false, 500: false, 502: false, 503: false}

// cfHeadersAllowed are the request headers every adapter may send besides its own.
var cfHeadersAllowed = []string{"Host", "Content-Type", "Content-Length", "User-Agent", "Accept-Encoding", "Connection"}

func cfMsg(id, route, body string) func() *queue.Message {
	return func() *queue.Message {
		return &queue.Message{ID: id, Route: route, Body: []byte(body), ReceivedAt: time.UnixMilli(1700000000000),
			ClientIP: "203.0.113.7", Source: "conformance"}
	}
}

func cfDelivery(base string, timeout time.Duration) config.Delivery {
	return config.Delivery{BaseURL: base, Workers: 2, Timeout: timeout}
}

func cfBrevo(base, tracker string, timeout time.Duration, batch bool) Adapter {
	return newBrevoAdapter(&config.Brevo{Delivery: cfDelivery(base, timeout), APIKey: cfBrevoKey,
		MAKey: cfBrevoMAKey, TrackerURL: tracker, Batch: batch})
}

// cfNowhere is an upstream URL that must not be called (the other Brevo endpoint).
const cfNowhere = "http://127.0.0.1:9"

const (
	cfLinkrunnerEvent = `{"event_name":"product_viewed","event_data":{"product_id":"ABC123","category":"electronics",` +
		`"amount":249.99,"currency":"USD","is_featured":true},"user_id":"user_12345"}`
	cfLinkrunnerPayment = `{"user_id":"user_12345","amount":149.99,"type":"FIRST_PAYMENT","status":"PAYMENT_COMPLETED"}`
	cfBrevoEvent        = `{"event_name":"video_played","event_date":"2024-02-06T20:59:23.383Z",` +
		`"identifiers":{"email_id":"jane.doe@example.com"},"contact_properties":{"AGE":32,"GENDER":"FEMALE"},` +
		`"event_properties":{"video_title":"Brevo","duration":142,"autoplayed":false}}`
	cfBrevoTrack = `{"email":"jane.doe@example.com","event":"cart_updated","eventdata":{"data":{"added_product":` +
		`[{"currency":"EUR","name":"Wrist watch","type":"accessories","price":"50.00"}]}},"properties":{"additionalProp":"string"}}`
	cfBannerFlex = `{"bannerId":"3f2504e0-4f89-41d3-9a0c-0305e82c3301","event":"impression","campaignId":"bnrflx-a1b2c3d4"}`
)

func cfCases() []cfCase {
	linkrunner := func(t *testing.T, base string, timeout time.Duration) Adapter {
		return newLinkrunnerAdapter(&config.Linkrunner{Delivery: cfDelivery(base, timeout), ServerKey: cfLinkrunnerKey})
	}
	ens := func(t *testing.T, base string, timeout time.Duration) Adapter {
		return newENSAdapter(&config.ENS{Delivery: cfDelivery(base, timeout), APIKey: cfENSKey})
	}
	withEnv := func(f func() *queue.Message, country, ua string) func() *queue.Message {
		return func() *queue.Message { m := f(); m.Country, m.UserAgent = country, ua; return m }
	}
	const iPhone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
	const windows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	brevoSecrets := []string{cfBrevoKey, cfBrevoMAKey}
	return []cfCase{{
		name: "linkrunner/capture-event", build: linkrunner,
		msg:      cfMsg("evt-lr-1", "linkrunner/capture-event", cfLinkrunnerEvent),
		wantPath: "/api/v1/capture-event", wantBody: cfLinkrunnerEvent,
		wantHeader: map[string]string{"linkrunner-key": cfLinkrunnerKey},
		secrets:    []string{cfLinkrunnerKey}, authHeader: "linkrunner-key", success: []int{201, 200},
	}, {
		name: "linkrunner/capture-payment", build: linkrunner,
		msg:      cfMsg("evt-lr-pay-1", "linkrunner/capture-payment", cfLinkrunnerPayment),
		wantPath: "/api/v1/capture-payment",
		// payment_id is the relay's event id: Linkrunner dedupes retries on (type, payment_id).
		wantBody:   `{"user_id":"user_12345","amount":149.99,"type":"FIRST_PAYMENT","status":"PAYMENT_COMPLETED","payment_id":"evt-lr-pay-1"}`,
		wantHeader: map[string]string{"linkrunner-key": cfLinkrunnerKey},
		secrets:    []string{cfLinkrunnerKey}, authHeader: "linkrunner-key", success: []int{201},
	}, {
		name: "ens/impression", build: ens,
		msg:        withEnv(cfMsg("evt-ens-1", "ens/impression", `{"campaignId":1,"placement":"header_banner"}`), "US", iPhone),
		wantPath:   "/api/v1/campaigns/impression",
		wantBody:   `{"campaignId":1,"placement":"header_banner","location":"US","device":"mobile"}`,
		wantHeader: map[string]string{"Authorization": "Bearer " + cfENSKey},
		secrets:    []string{cfENSKey}, authHeader: "Authorization", success: []int{200},
	}, {
		// The client's own location and device win over what the relay observed.
		name: "ens/click", build: ens,
		msg: withEnv(cfMsg("evt-ens-2", "ens/click", `{"campaignId":1,"placement":"header_banner","location":"US","device":"mobile"}`),
			"FR", windows),
		wantPath:   "/api/v1/campaigns/click",
		wantBody:   `{"campaignId":1,"placement":"header_banner","location":"US","device":"mobile"}`,
		wantHeader: map[string]string{"Authorization": "Bearer " + cfENSKey},
		secrets:    []string{cfENSKey}, authHeader: "Authorization", success: []int{200},
	}, {
		name: "brevo/events", build: func(t *testing.T, base string, timeout time.Duration) Adapter {
			return cfBrevo(base, cfNowhere, timeout, false)
		},
		msg:      cfMsg("evt-bv-1", "brevo/events", cfBrevoEvent),
		wantPath: "/v3/events", wantBody: cfBrevoEvent, wantHeader: map[string]string{"api-key": cfBrevoKey},
		secrets: brevoSecrets, authHeader: "api-key", success: []int{204, 200}, rateHeader: brevoResetHeader,
	}, {
		name: "brevo/events (batch)", build: func(t *testing.T, base string, timeout time.Duration) Adapter {
			return cfBrevo(base, cfNowhere, timeout, true)
		},
		msg:      cfMsg("evt-bv-2", "brevo/events", cfBrevoEvent),
		wantPath: "/v3/events/batch", wantBody: `{"events":[` + cfBrevoEvent + `]}`,
		wantHeader: map[string]string{"api-key": cfBrevoKey},
		secrets:    brevoSecrets, authHeader: "api-key", success: []int{202}, rateHeader: brevoResetHeader,
	}, {
		name: "brevo/track-event", build: func(t *testing.T, base string, timeout time.Duration) Adapter {
			return cfBrevo(cfNowhere, base, timeout, true) // batching never applies to trackEvent
		},
		msg:      cfMsg("evt-bv-3", "brevo/track-event", cfBrevoTrack),
		wantPath: "/api/v2/trackEvent", wantBody: cfBrevoTrack, wantHeader: map[string]string{"ma-key": cfBrevoMAKey},
		secrets: brevoSecrets, authHeader: "ma-key", success: []int{204}, rateHeader: brevoResetHeader,
	}, {
		name: "bannerflex/banner-events", build: func(t *testing.T, base string, timeout time.Duration) Adapter {
			return newBannerFlexAdapter(&config.BannerFlex{Delivery: cfDelivery(base, timeout)})
		},
		msg:      cfMsg("evt-bf-1", "bannerflex/banner-events", cfBannerFlex),
		wantPath: "/api/public/banner-events", wantBody: cfBannerFlex, success: []int{200},
	}}
}

// cfDeliver delivers the one event m and returns its result.
func cfDeliver(t *testing.T, a Adapter, m *queue.Message) error {
	t.Helper()
	res := a.Deliver(context.Background(), []*queue.Message{m})
	if len(res) != 1 {
		t.Fatalf("Deliver returned %d results for 1 event", len(res))
	}
	return res[0]
}

// cfJSONEqual fails unless got and want are the same JSON value.
func cfJSONEqual(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s is not JSON: %v: %s", what, err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expectation %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %s\nwant %s", what, got, want)
	}
}

// cfNoSecret fails when err's text holds a secret, or the start of one (a cut excerpt).
func cfNoSecret(t *testing.T, err error, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if err != nil && (strings.Contains(err.Error(), s) || strings.Contains(err.Error(), s[:8])) {
			t.Errorf("error leaks a secret: %v", err)
		}
	}
}

// cfExpect checks err's class and status.
func cfExpect(t *testing.T, err error, permanent bool, status int) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil, want an error with status %d", status)
	}
	if IsPermanent(err) != permanent {
		t.Errorf("IsPermanent = %v, want %v (%v)", IsPermanent(err), permanent, err)
	}
	if StatusOf(err) != status {
		t.Errorf("StatusOf = %d, want %d (%v)", StatusOf(err), status, err)
	}
}

func TestConformance(t *testing.T) {
	ops := opsByRoute(t, allProviders())
	for _, c := range cfCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfCheck(t, c, ops)
		})
	}
}

func cfCheck(t *testing.T, c cfCase, ops map[string]*Op) {
	// run builds a fresh fake with script and a fresh adapter at it, and delivers c.msg().
	run := func(t *testing.T, script ...cfReply) (error, *cfFake, time.Duration) {
		f := newCFFake(t, c.serve, c.aux, script...)
		a := c.build(t, f.URL(), cfTimeout)
		start := time.Now()
		err := cfDeliver(t, a, c.msg())
		return err, f, time.Since(start)
	}
	permanent := func(status int) bool {
		if p, ok := c.permanent[status]; ok {
			return p
		}
		return cfPermanent[status]
	}
	rateHeader := c.rateHeader
	if rateHeader == "" {
		rateHeader = "Retry-After"
	}

	t.Run("example body is valid inbound", func(t *testing.T) {
		m := c.msg()
		if _, err := validate(t, ops, m.Route, string(m.Body), backendID()); err != nil {
			t.Fatalf("ingest refuses the test body: %v", err)
		}
	})
	t.Run("request", func(t *testing.T) {
		err, f, _ := run(t, cfReply{status: c.success[0]})
		if err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		hits := f.got()
		if len(hits) != 1 {
			t.Fatalf("%d requests, want 1", len(hits))
		}
		h := hits[0]
		if h.method != http.MethodPost || h.path != c.wantPath || h.query != "" {
			t.Errorf("request %s %s?%s, want POST %s", h.method, h.path, h.query, c.wantPath)
		}
		if ct := h.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type %q", ct)
		}
		for name, want := range c.wantHeader {
			if got := h.header.Values(name); len(got) != 1 || got[0] != want {
				t.Errorf("header %s = %q, want %q", name, got, want)
			}
		}
		for name, vals := range h.header {
			if cfIn(name, cfHeadersAllowed) || cfIn(name, cfKeys(c.wantHeader)) {
				continue
			}
			t.Errorf("undocumented header %s: %q", name, vals)
		}
		cfJSONEqual(t, "body", h.body, c.wantBody)
		for _, s := range c.secrets {
			if strings.Contains(string(h.body), s) || strings.Contains(h.query, s) || strings.Contains(h.path, s) {
				t.Errorf("a secret is in the body, path or query")
			}
			for name, vals := range h.header {
				if strings.Contains(strings.Join(vals, ","), s) && (!strings.EqualFold(name, c.authHeader) || !strings.Contains(c.wantHeader[c.authHeader], s)) {
					t.Errorf("a secret is in header %s", name)
				}
			}
		}
	})
	for _, code := range c.success {
		t.Run(fmt.Sprintf("success %d", code), func(t *testing.T) {
			if err, _, _ := run(t, cfReply{status: code}); err != nil {
				t.Errorf("status %d: %v, want delivered", code, err)
			}
		})
	}
	for _, code := range []int{400, 401, 402, 403, 404, 408, 429, 500, 502, 503} {
		t.Run(fmt.Sprintf("status %d", code), func(t *testing.T) {
			err, _, _ := run(t, cfReply{status: code, body: `{"code":"x","message":"refused"}`})
			cfExpect(t, err, permanent(code), code)
			if _, ok := RetryDelay(err); ok {
				t.Errorf("RetryDelay set without a header: %v", err)
			}
		})
	}
	for _, h := range []string{rateHeader, "Retry-After"} {
		for _, tc := range []struct {
			value string
			want  time.Duration
		}{{"2", 2 * time.Second}, {"0", time.Second}, {"999999", time.Hour}} {
			t.Run(fmt.Sprintf("429 %s: %s", h, tc.value), func(t *testing.T) {
				err, _, _ := run(t, cfReply{status: 429, header: map[string]string{h: tc.value}})
				cfExpect(t, err, false, 429)
				if d, ok := RetryDelay(err); !ok || d != tc.want {
					t.Errorf("RetryDelay = %v, %v; want %v", d, ok, tc.want)
				}
			})
		}
	}
	t.Run("429 Retry-After date", func(t *testing.T) {
		at := time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
		err, _, _ := run(t, cfReply{status: 429, header: map[string]string{"Retry-After": at}})
		cfExpect(t, err, false, 429)
		if d, ok := RetryDelay(err); !ok || d < 1500*time.Millisecond || d > 3*time.Second {
			t.Errorf("RetryDelay = %v, %v; want about 2-3 s", d, ok)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := "http://" + l.Addr().String()
		_ = l.Close()
		err = cfDeliver(t, c.build(t, base, cfTimeout), c.msg())
		cfExpect(t, err, false, 0)
		cfNoSecret(t, err, c.secrets)
	})
	t.Run("slower than the timeout", func(t *testing.T) {
		err, _, took := run(t, cfReply{status: c.success[0], delay: 5 * time.Second})
		cfExpect(t, err, false, 0)
		if took > 3*cfTimeout {
			t.Errorf("took %v with a %v timeout", took, cfTimeout)
		}
	})
	t.Run("redirect not followed", func(t *testing.T) {
		other := newCFFake(t, c.serve, c.aux)
		err, _, _ := run(t, cfReply{status: http.StatusFound, header: map[string]string{"Location": other.URL() + c.wantPath}})
		cfExpect(t, err, true, http.StatusFound)
		if n := len(other.got()); n != 0 {
			t.Errorf("redirect followed: %d requests to its target", n)
		}
	})
	t.Run("huge reply", func(t *testing.T) {
		err, _, took := run(t, cfReply{status: 503, body: "overloaded ", pad: 10 << 20})
		cfExpect(t, err, false, 503)
		if took > time.Second || len(err.Error()) > 1024 {
			t.Errorf("took %v, error of %d bytes", took, len(err.Error()))
		}
	})
	t.Run("endless reply", func(t *testing.T) {
		err, _, took := run(t, cfReply{status: 400, body: `{"message":"bad"}`, endless: true})
		cfExpect(t, err, true, 400)
		if took > time.Second {
			t.Errorf("took %v", took)
		}
	})
	for _, s := range c.secrets {
		for _, code := range []int{400, 401, 500} {
			t.Run(fmt.Sprintf("secret echoed in %d", code), func(t *testing.T) {
				// Once plainly, once straddling the excerpt's cut.
				err, _, _ := run(t, cfReply{status: code, body: `{"message":"invalid key ` + s + `"}`})
				cfNoSecret(t, err, c.secrets)
				err, _, _ = run(t, cfReply{status: code, body: strings.Repeat("x", snippetBytes-8) + s})
				cfNoSecret(t, err, c.secrets)
			})
		}
	}
	t.Run("corrupt stored body", func(t *testing.T) {
		f := newCFFake(t, c.serve, c.aux)
		for _, body := range []string{`{"broken`, `[1,2]`, ``} {
			m := c.msg()
			m.Body = []byte(body)
			err := cfDeliver(t, c.build(t, f.URL(), cfTimeout), m)
			cfExpect(t, err, true, 0)
		}
		if n := len(f.got()); n != 0 {
			t.Errorf("%d requests for corrupt bodies", n)
		}
	})
	t.Run("unknown route", func(t *testing.T) {
		f := newCFFake(t, c.serve, c.aux)
		m := c.msg()
		m.Route = strings.Split(m.Route, "/")[0] + "/no-such-route"
		cfExpect(t, cfDeliver(t, c.build(t, f.URL(), cfTimeout), m), true, 0)
		if n := len(f.got()); n != 0 {
			t.Errorf("%d requests for an unknown route", n)
		}
	})
	t.Run("batch shape", func(t *testing.T) {
		f := newCFFake(t, c.serve, c.aux)
		a := c.build(t, f.URL(), cfTimeout)
		if res := a.Deliver(context.Background(), nil); len(res) != 0 {
			t.Errorf("empty batch: %d results", len(res))
		}
		if key, _ := a.BatchKey(c.msg()); key != "" {
			return // a batching route: its batches have their own tests
		}
		res := a.Deliver(context.Background(), []*queue.Message{c.msg(), c.msg()})
		if len(res) != 2 || res[0] == nil || res[1] == nil || IsPermanent(res[0]) {
			t.Errorf("two events for a one-event request: %v", res)
		}
		if n := len(f.got()); n != 0 {
			t.Errorf("%d requests for a refused batch", n)
		}
	})
}

func cfIn(name string, list []string) bool {
	for _, l := range list {
		if strings.EqualFold(name, l) {
			return true
		}
	}
	return false
}

func cfKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// cfBatch returns n Brevo v3 events, the i-th with event_name "e<i>".
func cfBatch(n int) []*queue.Message {
	out := make([]*queue.Message, n)
	for i := range out {
		out[i] = cfMsg(fmt.Sprintf("evt-%d", i), "brevo/events",
			fmt.Sprintf(`{"event_name":"e%d","identifiers":{"email_id":"u%d@example.com"}}`, i, i))()
	}
	return out
}

func TestBrevoBatchRequest(t *testing.T) {
	f := newCFFake(t, nil, nil, cfReply{status: 202, body: `{"message":"Batch accepted.","count":100}`})
	a := cfBrevo(f.URL(), cfNowhere, cfTimeout, true)
	batch := cfBatch(100)
	var want []string
	for _, m := range batch {
		if key, w := a.BatchKey(m); key != "v3" || w != 1 {
			t.Fatalf("BatchKey = %q, %d", key, w)
		}
		want = append(want, string(m.Body))
	}
	if a.MaxBatchWeight() != 100 {
		t.Errorf("MaxBatchWeight = %d", a.MaxBatchWeight())
	}
	for i, err := range a.Deliver(context.Background(), batch) {
		if err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
	hits := f.got()
	if len(hits) != 1 || hits[0].path != "/v3/events/batch" || hits[0].header.Get("api-key") != cfBrevoKey {
		t.Fatalf("requests: %+v", hits)
	}
	cfJSONEqual(t, "batch body", hits[0].body, `{"events":[`+strings.Join(want, ",")+`]}`)

	// A heavy event weighs more (Brevo caps a request at 512 KB); trackEvent never batches.
	heavy := cfMsg("h", "brevo/events", `{"event_name":"e","identifiers":{"ext_id":"`+strings.Repeat("a", 12000)+`"}}`)()
	if _, w := a.BatchKey(heavy); w != 3 {
		t.Errorf("weight of a 12 KB event = %d, want 3", w)
	}
	if key, _ := a.BatchKey(cfMsg("t", "brevo/track-event", cfBrevoTrack)()); key != "" {
		t.Errorf("trackEvent batch key %q", key)
	}
	if key, _ := cfBrevo(f.URL(), cfNowhere, cfTimeout, false).BatchKey(batch[0]); key != "" {
		t.Errorf("batch key %q without batch: true", key)
	}
	// Batches the forwarder must never build are refused without a request.
	mixed := append(cfBatch(2), cfMsg("t", "brevo/track-event", cfBrevoTrack)())
	for _, b := range [][]*queue.Message{cfBatch(101), mixed, append(cfBatch(99), heavy)} {
		for i, err := range a.Deliver(context.Background(), b) {
			if err == nil || IsPermanent(err) {
				t.Fatalf("batch of %d, event %d: %v", len(b), i, err)
			}
		}
	}
	if n := len(f.got()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestBrevoBatchReplies(t *testing.T) {
	const (
		ok   = "delivered"
		perm = "permanent"
		retr = "retryable"
	)
	partial := `{"status":"partial_success","total_events":5,"successful_events":2,"failed_events":3,"errors":[` +
		`{"eventIndex":[1,3],"message":"identifiers: at least one identifier is required"},` +
		`{"eventIndex":[4],"message":"Internal error while queueing the event, please try again"}]}`
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   []string // per event of the 6 (index 2 is corrupt and not sent)
	}{
		{"202 all queued", 202, `{"message":"Batch accepted.","count":5}`, []string{ok, ok, perm, ok, ok, ok}},
		// Indexes refer to the 5 events sent: 0,1,3,4,5 of the batch.
		{"207 split", 207, partial, []string{ok, perm, perm, ok, perm, retr}},
		{"207 bare index", 207, `{"failed_events":1,"errors":[{"eventIndex":0,"message":"invalid event_name"}]}`,
			[]string{perm, ok, perm, ok, ok, ok}},
		{"207 api-key echoed", 207, `{"errors":[{"eventIndex":[0],"message":"bad key ` + cfBrevoKey + `"}]}`,
			[]string{perm, ok, perm, ok, ok, ok}},
		// A 207 that does not say which events failed: retry all (duplicates over loss).
		{"207 not JSON", 207, `<html>Multi-Status</html>`, []string{retr, retr, perm, retr, retr, retr}},
		{"207 no errors", 207, `{"status":"partial_success","failed_events":2}`, []string{retr, retr, perm, retr, retr, retr}},
		{"207 index out of range", 207, `{"errors":[{"eventIndex":[5],"message":"x"}]}`, []string{retr, retr, perm, retr, retr, retr}},
		{"207 fewer listed than failed", 207, `{"failed_events":3,"errors":[{"eventIndex":[0],"message":"x"}]}`,
			[]string{retr, retr, perm, retr, retr, retr}},
		{"207 nothing listed", 207, `{"failed_events":0,"errors":[]}`, []string{retr, retr, perm, retr, retr, retr}},
		{"400 all failed", 400, `{"status":"failure","total_events":5,"successful_events":0,"failed_events":5,"errors":[` +
			`{"eventIndex":[0,1,2,3,4],"message":"event_name is invalid"}]}`, []string{perm, perm, perm, perm, perm, perm}},
		{"429 whole batch", 429, ``, []string{retr, retr, perm, retr, retr, retr}},
		{"500 whole batch", 500, ``, []string{retr, retr, perm, retr, retr, retr}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newCFFake(t, nil, nil, cfReply{status: tc.status, body: tc.body, header: map[string]string{brevoResetHeader: "3"}})
			batch := cfBatch(6)
			batch[2].Body = []byte(`{"event_name":`) // corrupt: never sent
			res := cfBrevo(f.URL(), cfNowhere, cfTimeout, true).Deliver(context.Background(), batch)
			for i, err := range res {
				got := ok
				switch {
				case IsPermanent(err):
					got = perm
				case err != nil:
					got = retr
				}
				if got != tc.want[i] {
					t.Errorf("event %d: %s (%v), want %s", i, got, err, tc.want[i])
				}
				if i != 2 && err != nil && StatusOf(err) != tc.status {
					t.Errorf("event %d: StatusOf = %d, want %d", i, StatusOf(err), tc.status)
				}
				cfNoSecret(t, err, []string{cfBrevoKey, cfBrevoMAKey})
			}
			if tc.status == 429 {
				if d, ok := RetryDelay(res[0]); !ok || d != 3*time.Second {
					t.Errorf("RetryDelay = %v, %v", d, ok)
				}
			}
			var sent struct{ Events []json.RawMessage }
			if hits := f.got(); len(hits) != 1 || json.Unmarshal(hits[0].body, &sent) != nil || len(sent.Events) != 5 {
				t.Errorf("want one request with the 5 sound events, got %d requests", len(hits))
			}
		})
	}
}

func TestBrevoMissingKey(t *testing.T) {
	f := newCFFake(t, nil, nil)
	a := newBrevoAdapter(&config.Brevo{Delivery: cfDelivery(f.URL(), cfTimeout), APIKey: cfBrevoKey, TrackerURL: f.URL()})
	err := cfDeliver(t, a, cfMsg("t", "brevo/track-event", cfBrevoTrack)())
	if !errors.Is(err, errNoKey) || IsPermanent(err) {
		t.Errorf("trackEvent without ma_key: %v, want a retryable config fault", err)
	}
	if n := len(f.got()); n != 0 {
		t.Errorf("%d requests without a key", n)
	}
}

// TestFilledFields covers the fields the adapters add: Linkrunner's payment_id, ENS's
// location and device.
func TestFilledFields(t *testing.T) {
	for _, tc := range []struct{ route, body, country, ua, want string }{
		{"linkrunner/capture-payment", `{"user_id":"u","amount":1,"payment_id":"pay_9"}`, "", "", `{"user_id":"u","amount":1,"payment_id":"pay_9"}`},
		{"linkrunner/capture-payment", `{"user_id":"u","amount":1,"payment_id":null}`, "", "", `{"user_id":"u","amount":1,"payment_id":"evt"}`},
		{"linkrunner/capture-event", `{"event_name":"e","user_id":"u"}`, "US", "", `{"event_name":"e","user_id":"u"}`},
		{"ens/click", `{"campaignId":1,"placement":"p","location":null}`, "gb", "", `{"campaignId":1,"placement":"p","location":"GB"}`},
		{"ens/click", `{"campaignId":1,"placement":"p"}`, "XX", "", `{"campaignId":1,"placement":"p"}`},
		{"ens/click", `{"campaignId":1,"placement":"p"}`, "T1", "curl/8.5.0", `{"campaignId":1,"placement":"p","device":"desktop"}`},
	} {
		f := newCFFake(t, nil, nil)
		var a Adapter = newLinkrunnerAdapter(&config.Linkrunner{Delivery: cfDelivery(f.URL(), cfTimeout), ServerKey: cfLinkrunnerKey})
		if strings.HasPrefix(tc.route, "ens/") {
			a = newENSAdapter(&config.ENS{Delivery: cfDelivery(f.URL(), cfTimeout), APIKey: cfENSKey})
		}
		m := cfMsg("evt", tc.route, tc.body)()
		m.Country, m.UserAgent = tc.country, tc.ua
		if err := cfDeliver(t, a, m); err != nil || len(f.got()) != 1 {
			t.Fatalf("%s %s: %v", tc.route, tc.body, err)
		}
		cfJSONEqual(t, tc.route+" "+tc.body, f.got()[0].body, tc.want)
	}
	for ua, want := range map[string]string{
		"": "", "   ": "",
		"Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148":               "tablet",
		"Mozilla/5.0 (Linux; Android 14; SM-X910) AppleWebKit/537.36 Chrome/124.0 Safari/537.36":         "tablet",
		"Mozilla/5.0 (Android 14; Tablet; rv:125.0) Gecko/125.0 Firefox/125.0":                           "tablet",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36":  "mobile",
		"Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0":                           "mobile",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15":                    "mobile",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Version/17.4 Safari/605.1.15": "desktop",
	} {
		if got := deviceOf(ua); got != want {
			t.Errorf("deviceOf(%q) = %q, want %q", ua, got, want)
		}
	}
}
