package providers

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/delivery"
)

// The conformance suite: every outbound adapter, one table entry per route, against a fake
// upstream over real HTTP on 127.0.0.1, through the same checks (exact request, secrets,
// classification of every documented status, rate-limit delays, transport failures,
// redirects, huge replies, echoed secrets, corrupt bodies). A new provider is one more
// entry in cfCases.

const (
	// cfTimeout is the adapters' upstream timeout in the suite: short, to keep it fast.
	cfTimeout = 300 * time.Millisecond
	// cfNowhere is an upstream URL that must not be called (the other Brevo endpoint).
	cfNowhere = "http://127.0.0.1:9"
	// Canary secrets: none may appear anywhere but in its own request header.
	cfLinkrunnerKey = "lr-canary-7d1e0c5a9b3f"
	cfENSKey        = "ens-canary-3f8a2b6c4d1e"
	cfBrevoKey      = "xkeysib-canary-5e4d3c2b1a0f"
	cfBrevoMAKey    = "ma-canary-9a8b7c6d5e4f"
	// Stored bodies, from the providers' documented examples.
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

// cfReply is one scripted answer of the fake upstream: status, headers and body, then pad
// more bytes of body (or an endless body), after an optional delay.
type cfReply struct {
	status  int
	header  map[string]string
	body    string
	pad     int
	endless bool
	delay   time.Duration
}

// cfHit is one request the fake received.
type cfHit struct {
	method, path, query string
	header              http.Header
	body                []byte
}

// cfFake is a fake upstream: it records every request and answers the n-th with
// script[min(n, len-1)] (200 {"ok":true} without a script). Paths in aux get fixed answers
// and are not recorded (e.g. a session start before the event request).
type cfFake struct {
	srv    *httptest.Server
	mu     sync.Mutex
	hits   []cfHit
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
	f.mu.Lock()
	rep, isAux := f.aux[r.URL.Path]
	if !isAux {
		rep = cfReply{status: 200, body: `{"ok":true}`}
		if len(f.script) > 0 {
			rep = f.script[min(len(f.hits), len(f.script)-1)]
		}
		f.hits = append(f.hits, cfHit{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
	}
	f.mu.Unlock()
	select {
	case <-time.After(rep.delay):
	case <-r.Context().Done(): // the client gave up
		return
	}
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
	chunk := []byte(strings.Repeat("x", 32<<10))
	for sent, stop := 0, time.Now().Add(5*time.Second); (rep.endless || sent < rep.pad) && time.Now().Before(stop); sent += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			return // the client stopped reading, as it must
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
	build func(base string, timeout time.Duration) delivery.Adapter
	// serve starts the fake (nil: httptest.NewServer; a TLS provider passes its own), aux
	// answers auxiliary paths (session starts).
	serve func(http.Handler) *httptest.Server
	aux   map[string]cfReply
	// msg is the stored event, built from the provider's documented example body.
	msg func() *delivery.Message
	// The exact request: path, headers beyond Content-Type, body (compared as JSON).
	wantPath   string
	wantHeader map[string]string
	wantBody   string
	// secrets are all the provider's secrets: one may appear only in a wantHeader value
	// that holds it.
	secrets []string
	// success are the statuses that mean delivered, the documented one first; permanent
	// overrides or extends cfPermanent; rateHeader carries a 429's delay in seconds (Retry-After).
	success    []int
	permanent  map[int]bool
	rateHeader string
}

// cfPermanent is the expected class of each status docs/providers.md documents: true for
// Permanent, false for retryable (401: the relay's credential, a config fault).
var cfPermanent = map[int]bool{400: true, 401: false, 402: true, 403: true, 404: true, 408: false,
	429: false, 500: false, 502: false, 503: false}

// cfHeadersAllowed are the request headers every adapter may send besides its own
// (canonical form, as net/http reports them).
var cfHeadersAllowed = []string{"Content-Type", "Content-Length", "User-Agent", "Accept-Encoding", "Connection"}

func cfMsg(id, route, body string) func() *delivery.Message {
	return func() *delivery.Message {
		return &delivery.Message{ID: id, Route: route, Body: []byte(body), Source: "conformance"}
	}
}

func cfDelivery(base string, timeout time.Duration) config.Delivery {
	return config.Delivery{BaseURL: base, Workers: 2, Timeout: timeout}
}

func cfBrevo(base, tracker string, timeout time.Duration, batch bool) delivery.Adapter {
	return newBrevoAdapter(&BrevoConfig{Delivery: cfDelivery(base, timeout), APIKey: cfBrevoKey,
		MAKey: cfBrevoMAKey, TrackerURL: tracker, Batch: batch})
}

func cfCases() []cfCase {
	linkrunner := func(base string, timeout time.Duration) delivery.Adapter {
		return newLinkrunnerAdapter(&LinkrunnerConfig{Delivery: cfDelivery(base, timeout), ServerKey: cfLinkrunnerKey})
	}
	ens := func(base string, timeout time.Duration) delivery.Adapter {
		return newENSAdapter(&ENSConfig{Delivery: cfDelivery(base, timeout), APIKey: cfENSKey})
	}
	withEnv := func(f func() *delivery.Message, country, ua string) func() *delivery.Message {
		// From a site: only a browser's request carries the user's country.
		return func() *delivery.Message {
			m := f()
			m.Country, m.UserAgent, m.Source = country, ua, "site:shop"
			return m
		}
	}
	const (
		iPhone  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
		windows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	)
	brevoSecrets := []string{cfBrevoKey, cfBrevoMAKey}
	return []cfCase{{
		name: "linkrunner/capture-event", build: linkrunner,
		msg:      cfMsg("evt-lr-1", "linkrunner/capture-event", cfLinkrunnerEvent),
		wantPath: "/api/v1/capture-event", wantBody: cfLinkrunnerEvent,
		wantHeader: map[string]string{"linkrunner-key": cfLinkrunnerKey},
		secrets:    []string{cfLinkrunnerKey}, success: []int{201, 200},
	}, {
		name: "linkrunner/capture-payment", build: linkrunner,
		msg:      cfMsg("evt-lr-pay-1", "linkrunner/capture-payment", cfLinkrunnerPayment),
		wantPath: "/api/v1/capture-payment",
		// payment_id is the relay's event id: Linkrunner dedupes retries on (type, payment_id).
		wantBody:   `{"user_id":"user_12345","amount":149.99,"type":"FIRST_PAYMENT","status":"PAYMENT_COMPLETED","payment_id":"evt-lr-pay-1"}`,
		wantHeader: map[string]string{"linkrunner-key": cfLinkrunnerKey},
		secrets:    []string{cfLinkrunnerKey}, success: []int{201},
	}, {
		name: "ens/impression", build: ens,
		msg:        withEnv(cfMsg("evt-ens-1", "ens/impression", `{"campaignId":1,"placement":"header_banner"}`), "US", iPhone),
		wantPath:   "/api/v1/campaigns/impression",
		wantBody:   `{"campaignId":1,"placement":"header_banner","location":"US","device":"mobile"}`,
		wantHeader: map[string]string{"Authorization": "Bearer " + cfENSKey},
		secrets:    []string{cfENSKey}, success: []int{200},
	}, {
		// The client's own location and device win over what the relay observed.
		name: "ens/click", build: ens,
		msg: withEnv(cfMsg("evt-ens-2", "ens/click", `{"campaignId":1,"placement":"header_banner","location":"US","device":"mobile"}`),
			"FR", windows),
		wantPath:   "/api/v1/campaigns/click",
		wantBody:   `{"campaignId":1,"placement":"header_banner","location":"US","device":"mobile"}`,
		wantHeader: map[string]string{"Authorization": "Bearer " + cfENSKey},
		secrets:    []string{cfENSKey}, success: []int{200},
	}, {
		name: "brevo/events", build: func(b string, d time.Duration) delivery.Adapter { return cfBrevo(b, cfNowhere, d, false) },
		msg:      cfMsg("evt-bv-1", "brevo/events", cfBrevoEvent),
		wantPath: "/v3/events", wantBody: cfBrevoEvent, wantHeader: map[string]string{"accept": "application/json", "api-key": cfBrevoKey},
		secrets: brevoSecrets, success: []int{204, 200}, rateHeader: brevoResetHeader,
	}, {
		name: "brevo/events (batch)", build: func(b string, d time.Duration) delivery.Adapter { return cfBrevo(b, cfNowhere, d, true) },
		msg:      cfMsg("evt-bv-2", "brevo/events", cfBrevoEvent),
		wantPath: "/v3/events/batch", wantBody: `{"events":[` + cfBrevoEvent + `]}`,
		wantHeader: map[string]string{"accept": "application/json", "api-key": cfBrevoKey},
		secrets:    brevoSecrets, success: []int{202}, rateHeader: brevoResetHeader,
	}, {
		name:     "brevo/track-event", // Batching never applies to trackEvent.
		build:    func(b string, d time.Duration) delivery.Adapter { return cfBrevo(cfNowhere, b, d, true) },
		msg:      cfMsg("evt-bv-3", "brevo/track-event", cfBrevoTrack),
		wantPath: "/api/v2/trackEvent", wantBody: cfBrevoTrack, wantHeader: map[string]string{"accept": "application/json", "ma-key": cfBrevoMAKey},
		secrets: brevoSecrets, success: []int{204}, rateHeader: brevoResetHeader,
	}, {
		name: "bannerflex/banner-events", build: func(base string, timeout time.Duration) delivery.Adapter {
			return newBannerFlexAdapter(&BannerFlexConfig{Delivery: cfDelivery(base, timeout)})
		},
		msg:      cfMsg("evt-bf-1", "bannerflex/banner-events", cfBannerFlex),
		wantPath: "/api/public/banner-events", wantBody: cfBannerFlex, success: []int{200},
	}}
}

// cfDeliver delivers the one event m and returns its result.
func cfDeliver(t *testing.T, a delivery.Adapter, m *delivery.Message) error {
	t.Helper()
	if res := a.Deliver(context.Background(), []*delivery.Message{m}); len(res) == 1 {
		return res[0]
	}
	t.Fatal("Deliver did not return one result for one event")
	return nil
}

// cfJSONEqual fails unless got and want are the same JSON value.
func cfJSONEqual(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	var g, w any
	if json.Unmarshal(got, &g) != nil || json.Unmarshal([]byte(want), &w) != nil || !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %s\nwant %s", what, got, want)
	}
}

// cfNoSecret fails when text holds a secret, or the start of one (a cut excerpt), unless
// allowed (the header value documented to carry it) holds that secret too.
func cfNoSecret(t *testing.T, s string, secrets []string, allowed string) {
	t.Helper()
	for _, secret := range secrets {
		if (strings.Contains(s, secret) || strings.Contains(s, secret[:8])) && !strings.Contains(allowed, secret) {
			t.Errorf("a secret leaks: %s", s)
		}
	}
}

// cfExpect checks err's class and status.
func cfExpect(t *testing.T, err error, permanent bool, status int) {
	t.Helper()
	if err == nil || delivery.IsPermanent(err) != permanent || delivery.StatusOf(err) != status {
		t.Fatalf("got %v (permanent %v, status %d), want permanent %v, status %d",
			err, delivery.IsPermanent(err), delivery.StatusOf(err), permanent, status)
	}
}

func TestConformance(t *testing.T) {
	ops := opsByRoute(t, allProviders())
	for _, c := range append(cfCases(), cfCardlyticsCases(t)...) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfCheck(t, c, ops)
		})
	}
}

func cfCheck(t *testing.T, c cfCase, ops map[string]*Op) {
	// run delivers c.msg() through a fresh adapter to a fresh fake answering script.
	run := func(t *testing.T, script ...cfReply) (*cfFake, time.Duration, error) {
		f := newCFFake(t, c.serve, c.aux, script...)
		a := c.build(f.URL(), cfTimeout)
		start := time.Now()
		err := cfDeliver(t, a, c.msg())
		return f, time.Since(start), err
	}
	rateHeader := cmp.Or(c.rateHeader, "Retry-After")

	t.Run("example body is valid inbound", func(t *testing.T) {
		m := c.msg()
		if _, err := validate(t, ops, m.Route, string(m.Body), backendID()); err != nil {
			t.Fatalf("ingest refuses the test body: %v", err)
		}
	})
	t.Run("request", func(t *testing.T) {
		f, _, err := run(t, cfReply{status: c.success[0]})
		hits := f.got()
		if err != nil || len(hits) != 1 {
			t.Fatalf("Deliver: %v after %d requests, want delivered after 1", err, len(hits))
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
		cfJSONEqual(t, "body", h.body, c.wantBody)
		documented := http.Header{}
		for name, v := range c.wantHeader {
			documented.Set(name, v)
		}
		for name, vals := range h.header {
			want := documented.Get(name)
			if documented[name] == nil && !slices.Contains(cfHeadersAllowed, name) {
				t.Errorf("undocumented header %s: %q", name, vals)
			}
			cfNoSecret(t, "header "+name+": "+strings.Join(vals, ","), c.secrets, want)
		}
		cfNoSecret(t, "body, path or query: "+string(h.body)+h.path+h.query, c.secrets, "")
	})
	for _, code := range c.success {
		if _, _, err := run(t, cfReply{status: code}); err != nil {
			t.Errorf("status %d: %v, want delivered", code, err)
		}
	}
	classes := maps.Clone(cfPermanent)
	maps.Copy(classes, c.permanent) // overrides, and statuses only this provider documents
	for code, perm := range classes {
		t.Run(fmt.Sprintf("status %d", code), func(t *testing.T) {
			_, _, err := run(t, cfReply{status: code, body: `{"code":"x","message":"refused"}`})
			cfExpect(t, err, perm, code)
			if _, ok := delivery.RetryDelay(err); ok {
				t.Errorf("RetryDelay set without a header: %v", err)
			}
		})
	}
	for _, tc := range []struct {
		header, value string
		lo, hi        time.Duration
	}{
		{rateHeader, "2", 2 * time.Second, 2 * time.Second},
		{"Retry-After", "2", 2 * time.Second, 2 * time.Second},
		{rateHeader, "0", time.Second, time.Second},
		{rateHeader, "999999", time.Hour, time.Hour},
		{"Retry-After", time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat), 1500 * time.Millisecond, 3 * time.Second},
	} {
		t.Run(fmt.Sprintf("429 %s: %s", tc.header, tc.value), func(t *testing.T) {
			_, _, err := run(t, cfReply{status: 429, header: map[string]string{tc.header: tc.value}})
			cfExpect(t, err, false, 429)
			if d, ok := delivery.RetryDelay(err); !ok || d < tc.lo || d > tc.hi {
				t.Errorf("RetryDelay = %v, %v; want %v-%v", d, ok, tc.lo, tc.hi)
			}
		})
	}
	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := "http://" + l.Addr().String()
		_ = l.Close()
		err = cfDeliver(t, c.build(base, cfTimeout), c.msg())
		cfExpect(t, err, false, 0)
		cfNoSecret(t, fmt.Sprint(err), c.secrets, "")
	})
	// A redirect is not followed, and it is a configuration fault (base_url moved), not
	// the event's: retryable, so it counts against the breaker and the event waits.
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect} {
		t.Run(fmt.Sprintf("redirect %d not followed", code), func(t *testing.T) {
			other := newCFFake(t, c.serve, c.aux)
			_, _, err := run(t, cfReply{status: code, header: map[string]string{"Location": other.URL() + c.wantPath + "?k=v"}})
			cfExpect(t, err, false, code)
			if d, ok := delivery.RetryDelay(err); ok {
				t.Errorf("RetryDelay %v for a redirect", d)
			}
			host := strings.TrimPrefix(strings.TrimPrefix(other.URL(), "https://"), "http://")
			if msg := err.Error(); !strings.Contains(msg, "redirected ("+strconv.Itoa(code)+" to "+host+")") ||
				!strings.Contains(msg, "base_url") || strings.Contains(msg, c.wantPath) {
				t.Errorf("error %q: want the target's host only and base_url named", msg)
			}
			if n := len(other.got()); n != 0 {
				t.Errorf("redirect followed: %d requests to its target", n)
			}
		})
	}
	for _, tc := range []struct {
		name   string
		reply  cfReply
		perm   bool
		status int
	}{
		{"slower than the timeout", cfReply{status: c.success[0], delay: 5 * time.Second}, false, 0},
		{"10 MiB reply", cfReply{status: 503, body: "overloaded ", pad: 10 << 20}, false, 503},
		{"endless reply", cfReply{status: 400, body: `{"message":"bad"}`, endless: true}, true, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Baseline: a plain delivery's time, now, on this machine (subtests run in
			// parallel under -race). The bound grows with it, but stays under the 5 s an
			// adapter that waited for the slow reply would take.
			_, baseline, err := run(t, cfReply{status: c.success[0]})
			if err != nil {
				t.Fatalf("baseline delivery: %v", err)
			}
			_, took, err := run(t, tc.reply)
			cfExpect(t, err, tc.perm, tc.status)
			limit := min(3*cfTimeout+4*baseline, 4*time.Second)
			if took > limit || len(err.Error()) > 1024 {
				t.Errorf("took %v (timeout %v, limit %v from a %v baseline), error of %d bytes", took, cfTimeout, limit, baseline, len(err.Error()))
			}
		})
	}
	for _, code := range []int{400, 401, 500} {
		t.Run(fmt.Sprintf("secret echoed in %d", code), func(t *testing.T) {
			for _, s := range c.secrets {
				// Once plainly, once straddling the excerpt's cut.
				_, _, err := run(t, cfReply{status: code, body: `{"message":"invalid key ` + s + `"}`})
				cfNoSecret(t, fmt.Sprint(err), c.secrets, "")
				_, _, err = run(t, cfReply{status: code, body: strings.Repeat("x", snippetBytes-8) + s})
				cfNoSecret(t, fmt.Sprint(err), c.secrets, "")
			}
		})
	}
	t.Run("never sent", func(t *testing.T) {
		f := newCFFake(t, c.serve, c.aux)
		a := c.build(f.URL(), cfTimeout)
		for _, body := range []string{`{"broken`, `[1,2]`, ``, "unknown route"} {
			m := c.msg()
			if m.Body = []byte(body); body == "unknown route" {
				m.Body, m.Route = c.msg().Body, strings.Split(m.Route, "/")[0]+"/no-such-route"
			}
			cfExpect(t, cfDeliver(t, a, m), true, 0)
		}
		if res := a.Deliver(context.Background(), nil); len(res) != 0 {
			t.Errorf("empty batch: %d results", len(res))
		}
		// Two events for a one-event request: refused, not Permanent (a relay bug).
		if key, _ := a.BatchKey(c.msg()); key == "" {
			res := a.Deliver(context.Background(), []*delivery.Message{c.msg(), c.msg()})
			if len(res) != 2 || res[0] == nil || res[1] == nil || delivery.IsPermanent(res[0]) {
				t.Errorf("two events for a one-event request: %v", res)
			}
		}
		if n := len(f.got()); n != 0 {
			t.Errorf("%d requests for corrupt bodies, unknown routes or refused batches", n)
		}
	})
}

// cfBatch returns n Brevo v3 events, the i-th with event_name "e<i>".
func cfBatch(n int) []*delivery.Message {
	out := make([]*delivery.Message, n)
	for i := range out {
		out[i] = cfMsg(fmt.Sprintf("evt-%d", i), "brevo/events",
			fmt.Sprintf(`{"event_name":"e%d","identifiers":{"email_id":"u%d@example.com"}}`, i, i))()
	}
	return out
}

func TestBrevoBatchRequest(t *testing.T) {
	f := newCFFake(t, nil, nil, cfReply{status: 202, body: `{"message":"Batch accepted.","count":100}`})
	a := cfBrevo(f.URL(), cfNowhere, cfTimeout, true)
	batch, want := cfBatch(100), []string{}
	for _, m := range batch {
		if key, w := a.BatchKey(m); key != "v3" || w != 1 {
			t.Fatalf("BatchKey = %q, %d", key, w)
		}
		want = append(want, string(m.Body))
	}
	if res := a.Deliver(context.Background(), batch); a.MaxBatchWeight() != 100 || slices.ContainsFunc(res, func(e error) bool { return e != nil }) {
		t.Errorf("MaxBatchWeight %d, results %v", a.MaxBatchWeight(), res)
	}
	hits := f.got()
	if len(hits) != 1 || hits[0].path != "/v3/events/batch" || hits[0].header.Get("api-key") != cfBrevoKey {
		t.Fatalf("requests: %+v", hits)
	}
	cfJSONEqual(t, "batch body", hits[0].body, `{"events":[`+strings.Join(want, ",")+`]}`)

	// A heavy event weighs more (Brevo caps a request at 512 KB); trackEvent never batches.
	heavy := cfMsg("h", "brevo/events", `{"event_name":"e","identifiers":{"ext_id":"`+strings.Repeat("a", 12000)+`"}}`)()
	track := cfMsg("t", "brevo/track-event", cfBrevoTrack)()
	if _, w := a.BatchKey(heavy); w != 3 {
		t.Errorf("weight of a 12 KB event = %d, want 3", w)
	}
	k1, _ := a.BatchKey(track)
	if k2, _ := cfBrevo(f.URL(), cfNowhere, cfTimeout, false).BatchKey(batch[0]); k1 != "" || k2 != "" {
		t.Errorf("batch key %q for trackEvent, %q without batch: true", k1, k2)
	}
	// Batches the forwarder must never build are refused without a request.
	for _, b := range [][]*delivery.Message{cfBatch(101), append(cfBatch(2), track), append(cfBatch(99), heavy)} {
		if res := a.Deliver(context.Background(), b); slices.ContainsFunc(res, func(e error) bool { return e == nil || delivery.IsPermanent(e) }) {
			t.Errorf("batch of %d: %v", len(b), res)
		}
	}
	if n := len(f.got()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestBrevoBatchReplies(t *testing.T) {
	partial := `{"status":"partial_success","total_events":5,"successful_events":2,"failed_events":3,"errors":[` +
		`{"eventIndex":[1,3],"message":"identifiers: at least one identifier is required"},` +
		`{"eventIndex":[4],"message":"Internal error while queueing the event, please try again"}]}`
	// want is per event of a batch of 6 whose event 2 is corrupt (Permanent, never sent):
	// d delivered, p Permanent, r retryable. Reply indexes refer to the 5 events sent.
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"202 all queued", 202, `{"message":"Batch accepted.","count":5}`, "ddpddd"},
		{"207 split", 207, partial, "dppdpr"},
		{"207 bare index", 207, `{"failed_events":1,"errors":[{"eventIndex":0,"message":"invalid event_name"}]}`, "pdpddd"},
		{"207 key echoed", 207, `{"errors":[{"eventIndex":[0],"message":"bad key ` + cfBrevoKey + `"}]}`, "pdpddd"},
		// A 207 that does not say which events failed: retry all (duplicates over loss).
		{"207 not JSON", 207, `<html>Multi-Status</html>`, "rrprrr"},
		{"207 no errors", 207, `{"status":"partial_success","failed_events":2}`, "rrprrr"},
		{"207 index out of range", 207, `{"errors":[{"eventIndex":[5],"message":"x"}]}`, "rrprrr"},
		{"207 fewer listed than failed", 207, `{"failed_events":3,"errors":[{"eventIndex":[0],"message":"x"}]}`, "rrprrr"},
		{"207 nothing listed", 207, `{"failed_events":0,"errors":[]}`, "rrprrr"},
		{"400 all failed", 400, `{"status":"failure","total_events":5,"successful_events":0,"failed_events":5,` +
			`"errors":[{"eventIndex":[0,1,2,3,4],"message":"event_name is invalid"}]}`, "pppppp"},
		{"429 whole batch", 429, ``, "rrprrr"},
		{"500 whole batch", 500, ``, "rrprrr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newCFFake(t, nil, nil, cfReply{status: tc.status, body: tc.body, header: map[string]string{brevoResetHeader: "3"}})
			batch := cfBatch(6)
			batch[2].Body = []byte(`{"event_name":`)
			res := cfBrevo(f.URL(), cfNowhere, cfTimeout, true).Deliver(context.Background(), batch)
			for i, err := range res {
				got := map[bool]string{true: "p", false: "r"}[delivery.IsPermanent(err)]
				if err == nil {
					got = "d"
				}
				if got != tc.want[i:i+1] || i != 2 && err != nil && delivery.StatusOf(err) != tc.status {
					t.Errorf("event %d: %s, status %d (%v); want %s, %d", i, got, delivery.StatusOf(err), err, tc.want[i:i+1], tc.status)
				}
				cfNoSecret(t, fmt.Sprint(err), []string{cfBrevoKey, cfBrevoMAKey}, "")
			}
			if d, ok := delivery.RetryDelay(res[0]); tc.status == 429 && d != 3*time.Second {
				t.Errorf("RetryDelay = %v, %v", d, ok)
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
	a := newBrevoAdapter(&BrevoConfig{Delivery: cfDelivery(f.URL(), cfTimeout), APIKey: cfBrevoKey, TrackerURL: f.URL()})
	if err := cfDeliver(t, a, cfMsg("t", "brevo/track-event", cfBrevoTrack)()); !errors.Is(err, errNoKey) || delivery.IsPermanent(err) || len(f.got()) != 0 {
		t.Errorf("trackEvent without ma_key: %v after %d requests, want a retryable config fault, no request", err, len(f.got()))
	}
}

// TestFilledFields covers the fields the adapters add: Linkrunner's payment_id, ENS's
// location (from the geo header) and device (from the User-Agent).
func TestFilledFields(t *testing.T) {
	const ens = `{"campaignId":1,"placement":"p"}`
	dev := func(d string) string { return `{"campaignId":1,"placement":"p","device":"` + d + `"}` }
	for _, tc := range []struct{ route, body, country, ua, want string }{
		{"linkrunner/capture-payment", `{"user_id":"u","amount":1,"payment_id":"pay_9"}`, "", "", `{"user_id":"u","amount":1,"payment_id":"pay_9"}`},
		{"linkrunner/capture-payment", `{"user_id":"u","amount":1,"payment_id":null}`, "", "", `{"user_id":"u","amount":1,"payment_id":"evt"}`},
		{"linkrunner/capture-event", `{"event_name":"e","user_id":"u"}`, "US", "iPhone", `{"event_name":"e","user_id":"u"}`},
		{"ens/click", `{"campaignId":1,"placement":"p","location":null}`, "gb", "", `{"campaignId":1,"placement":"p","location":"GB"}`},
		{"ens/click", ens, "XX", " ", ens},          // XX: Cloudflare's "unknown"; a blank UA says nothing
		{"ens/click", ens, "T1", "curl/8.5.0", ens}, // not a browser: device unknown
		{"ens/click", ens, "", "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148", dev("tablet")},
		{"ens/click", ens, "", "Mozilla/5.0 (Linux; Android 14; SM-X910) AppleWebKit/537.36 Chrome/124.0 Safari/537.36", dev("tablet")},
		{"ens/click", ens, "", "Mozilla/5.0 (Android 14; Tablet; rv:125.0) Gecko/125.0 Firefox/125.0", dev("tablet")},
		{"ens/click", ens, "", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36", dev("mobile")},
		{"ens/click", ens, "", "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0", dev("mobile")},
		{"ens/click", ens, "", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Version/17.4 Safari/605.1.15", dev("desktop")},
	} {
		f := newCFFake(t, nil, nil)
		var a delivery.Adapter = newLinkrunnerAdapter(&LinkrunnerConfig{Delivery: cfDelivery(f.URL(), cfTimeout), ServerKey: cfLinkrunnerKey})
		if strings.HasPrefix(tc.route, "ens/") {
			a = newENSAdapter(&ENSConfig{Delivery: cfDelivery(f.URL(), cfTimeout), APIKey: cfENSKey})
		}
		m := cfMsg("evt", tc.route, tc.body)()
		m.Country, m.UserAgent, m.Source = tc.country, tc.ua, "site:shop"
		if err := cfDeliver(t, a, m); err != nil || len(f.got()) != 1 {
			t.Fatalf("%s %s: %v", tc.route, tc.body, err)
		}
		cfJSONEqual(t, fmt.Sprintf("%s %q %q", tc.body, tc.country, tc.ua), f.got()[0].body, tc.want)
	}
}

// TestENSLocationOnlyForSites: location is filled from the stored country only for an
// event a site (a browser) sent; a backend's request carries the backend's own country,
// which says nothing about the user, so its events get no location.
func TestENSLocationOnlyForSites(t *testing.T) {
	const ens = `{"campaignId":1,"placement":"p"}`
	for _, tc := range []struct{ src, body, want string }{
		{"site:shop", ens, `{"campaignId":1,"placement":"p","location":"US"}`},
		{"client:backend", ens, ens},
		{"client:backend", `{"campaignId":1,"placement":"p","location":null}`, `{"campaignId":1,"placement":"p","location":null}`},
		{"", ens, ens}, // no known caller: not a site
	} {
		f := newCFFake(t, nil, nil)
		a := newENSAdapter(&ENSConfig{Delivery: cfDelivery(f.URL(), cfTimeout), APIKey: cfENSKey})
		m := cfMsg("evt", "ens/click", tc.body)()
		m.Country, m.Source = "US", tc.src
		if err := cfDeliver(t, a, m); err != nil || len(f.got()) != 1 {
			t.Fatalf("%s: %v", tc.src, err)
		}
		cfJSONEqual(t, tc.src, f.got()[0].body, tc.want)
	}
}
