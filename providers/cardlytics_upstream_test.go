package providers

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/internal/testpki"
)

// Canary credentials: no error string may ever contain "canary".
const (
	cdlxTestClientID = "canary-client-1a2b3c4d5e"
	cdlxTestSecret   = "canary-secret-0f9e8d7c6b5a"
	cdlxClientCN     = testpki.ClientCommonName
	// Two client events: the first without clientEventId, the second with one.
	cdlxEvNoID   = `{"clientEventType":"SessionAction","clientEvent":"LogEnrollment","clientEventTimestamp":"2023-03-11T08:00:00Z","clientEventMetadata":null}`
	cdlxGivenID  = "2e08d638-04e2-4561-b56a-ca32cfff6203"
	cdlxEvWithID = `{"clientEventId":"` + cdlxGivenID + `","clientEventType":"AdImpression","clientEvent":"AdViewableImpression","clientEventTimestamp":"2023-03-11T08:00:00Z","clientEventMetadata":{"serveToken":"91e471aed3c04b81bee792f23ad4859d","section":"LatestOffers","channel":"OLB","imageSlots":["logo"],"categoryId":"1","displayPosition":2}}`
)

// cdlxToken is the n-th token the fake issues (1-based).
func cdlxToken(n int) string { return "canary-token-" + strconv.Itoa(n) + "-5f4e3d2c1b0a" }

// cdlxReq is one request the fake received; ClientCN names the verified client certificate.
type cdlxReq struct {
	Method, Path, ClientCN string
	Header                 http.Header
	Body                   []byte
}

// cdlxResp is a scripted reply.
type cdlxResp struct {
	Status int
	Header map[string]string
	Body   string
}

// fakeCDLX is a Cardlytics fake over TLS that requires a client certificate from the CA.
type fakeCDLX struct {
	pki  *testpki.PKI
	srv  *httptest.Server
	mode string
	mu   sync.Mutex
	reqs []cdlxReq
	// hooks answer the n-th call (1-based) of a path.
	hooks map[string]func(n int, r cdlxReq) cdlxResp
	// sessionDelay slows startSession, to make concurrent callers overlap.
	sessionDelay time.Duration
}

func newFakeCDLX(t *testing.T, mode string) *fakeCDLX {
	t.Helper()
	field := map[string]string{cardlyticsAuthSession: "sessionToken", cardlyticsAuthBearer: "token"}[mode]
	f := &fakeCDLX{pki: testpki.New(t), mode: mode, hooks: map[string]func(int, cdlxReq) cdlxResp{
		cardlyticsSessionPath: func(n int, _ cdlxReq) cdlxResp {
			return cdlxResp{Status: 200, Body: `{"` + field + `":"` + cdlxToken(n) + `"}`}
		},
		cardlyticsEventsPath: cdlxReply(200, `{"requestId":"r"}`),
	}}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.TLS = f.pki.ServerTLS() // requires a client certificate from the CA
	// Refused handshakes are expected in one test; keep them off the test output.
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

// script replaces the replies on path.
func (f *fakeCDLX) script(path string, hook func(n int, r cdlxReq) cdlxResp) {
	f.mu.Lock()
	f.hooks[path] = hook
	f.mu.Unlock()
}

// cdlxReply always answers status with body.
func cdlxReply(status int, body string) func(int, cdlxReq) cdlxResp {
	return func(int, cdlxReq) cdlxResp { return cdlxResp{Status: status, Body: body} }
}

func (f *fakeCDLX) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := cdlxReq{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		req.ClientCN = r.TLS.PeerCertificates[0].Subject.CommonName
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	n, hook, delay := f.count(r.URL.Path), f.hooks[r.URL.Path], time.Duration(0)
	if r.URL.Path == cardlyticsSessionPath {
		delay = f.sessionDelay
	}
	f.mu.Unlock()
	if hook == nil {
		hook = cdlxReply(404, "")
	}
	time.Sleep(delay)
	resp := hook(n, req)
	for k, v := range resp.Header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(resp.Status)
	_, _ = io.WriteString(w, resp.Body)
}

// requests returns the requests received on path.
func (f *fakeCDLX) requests(path string) []cdlxReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(f.reqs), func(r cdlxReq) bool { return r.Path != path })
}

// count is the number of requests on path; f.mu must be held.
func (f *fakeCDLX) count(path string) int {
	return len(f.reqs) - len(slices.DeleteFunc(slices.Clone(f.reqs), func(r cdlxReq) bool { return r.Path == path }))
}

// counts returns the number of startSession and clientEvent calls.
func (f *fakeCDLX) counts() (sessions, events int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count(cardlyticsSessionPath), f.count(cardlyticsEventsPath)
}

// cdlxEcho answers status and header (name, value pairs) with everything the request carried, the first token straddling
// the excerpt's cut: redaction must cover headers, bodies and partial matches.
func cdlxEcho(status int, header ...string) func(int, cdlxReq) cdlxResp {
	return func(_ int, r cdlxReq) cdlxResp {
		token := r.Header.Get("X-CDLX-Session-Token") + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		resp := cdlxResp{Status: status, Header: map[string]string{},
			Body: strings.Repeat("x", snippetBytes-10) + token + fmt.Sprint(" ", r.Header, " ", string(r.Body))}
		for i := 0; i+1 < len(header); i += 2 {
			resp.Header[header[i]] = header[i+1]
		}
		return resp
	}
}

// cdlxClock is a settable clock, in Unix nanoseconds.
type cdlxClock struct{ atomic.Int64 }

func (c *cdlxClock) Now() time.Time { return time.Unix(0, c.Load()) }

func newCDLXAdapter(t *testing.T, f *fakeCDLX, edit ...func(*CardlyticsConfig)) *cardlyticsAdapter {
	t.Helper()
	cfg := &CardlyticsConfig{Auth: f.mode, ClientID: cdlxTestClientID, Secret: cdlxTestSecret,
		Delivery:    config.Delivery{BaseURL: f.srv.URL + "/", Timeout: 2 * time.Second, Workers: 4},
		TLSCertFile: f.pki.ClientCertFile, TLSKeyFile: f.pki.ClientKeyFile, TLSCAFile: f.pki.CAFile}
	for _, e := range edit {
		e(cfg)
	}
	a, err := newCardlyticsAdapter(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return a.(*cardlyticsAdapter)
}

func cdlxMsg(id, customer string, events ...string) *delivery.Message {
	return &delivery.Message{ID: id, Provider: Cardlytics, Route: "cardlytics/client-events", CustomerID: customer,
		Body: []byte(`{"clientEvents":[` + strings.Join(events, ",") + `]}`), ReceivedAt: time.Now()}
}

// cdlxDerivedID is the clientEventId the relay must send for event i of message id.
func cdlxDerivedID(id string, i int) string {
	return uuid.NewSHA1(uuid.MustParse(cardlyticsEventIDSpace), []byte(id+"/"+strconv.Itoa(i))).String()
}

// cdlxWithID returns event (valid JSON) with clientEventId set.
func cdlxWithID(event, id string) map[string]any {
	var m map[string]any
	_ = json.Unmarshal([]byte(event), &m)
	m["clientEventId"] = id
	return m
}

// cdlxJSONEqual compares got with want (any value encoding/json marshals) as JSON.
func cdlxJSONEqual(t *testing.T, what string, got []byte, want any) {
	t.Helper()
	wantJSON, _ := json.Marshal(want)
	var g, w any
	if json.Unmarshal(got, &g) != nil || json.Unmarshal(wantJSON, &w) != nil || !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %s\nwant %s", what, got, wantJSON)
	}
}

// cdlxDeliver delivers batch, checking that no error holds a credential.
func cdlxDeliverAll(t *testing.T, a *cardlyticsAdapter, batch ...*delivery.Message) []error {
	t.Helper()
	res := a.Deliver(context.Background(), batch)
	if len(res) != len(batch) {
		t.Fatalf("%d results for %d events", len(res), len(batch))
	}
	for _, err := range res {
		if err != nil && strings.Contains(err.Error(), "canary") {
			t.Errorf("a credential leaked into %q", err)
		}
	}
	return res
}

// cdlxOK delivers m alone and fails the test unless it was delivered.
func cdlxOK(t *testing.T, a *cardlyticsAdapter, m *delivery.Message) {
	t.Helper()
	if err := cdlxDeliver(t, a, m); err != nil {
		t.Fatalf("%s: %v", m.ID, err)
	}
}

// cdlxDeliver delivers m alone.
func cdlxDeliver(t *testing.T, a *cardlyticsAdapter, m *delivery.Message) error {
	t.Helper()
	return cdlxDeliverAll(t, a, m)[0]
}

func cdlxWantHeader(t *testing.T, r cdlxReq, name, want string) {
	t.Helper()
	if got := r.Header.Get(name); got != want {
		t.Errorf("%s: header %s = %q, want %q", r.Path, name, got, want)
	}
}

func TestCardlyticsRequests(t *testing.T) {
	for _, tc := range []struct {
		mode                 string
		sessionHdr, eventHdr map[string]string // "" means absent
		sessionBody          any
	}{{
		mode:        cardlyticsAuthSession,
		sessionHdr:  map[string]string{"X-CDLX-Institution-Id": "inst-42", "Authorization": "", "x-source-customer-id": ""},
		sessionBody: map[string]any{"sourceCustomerId": "cust-1", "scopes": []string{"api:customer"}},
		eventHdr:    map[string]string{"X-CDLX-Session-Token": cdlxToken(1), "Authorization": "", "x-source-customer-id": ""},
	}, {
		mode:        cardlyticsAuthBearer,
		sessionHdr:  map[string]string{"x-source-customer-id": "cust-1", "Authorization": "", "X-CDLX-Institution-Id": ""},
		sessionBody: map[string]any{"clientId": cdlxTestClientID, "secret": cdlxTestSecret},
		eventHdr:    map[string]string{"Authorization": "Bearer " + cdlxToken(1), "x-source-customer-id": "cust-1", "X-CDLX-Session-Token": ""},
	}} {
		t.Run(tc.mode, func(t *testing.T) {
			f := newFakeCDLX(t, tc.mode)
			a := newCDLXAdapter(t, f, func(c *CardlyticsConfig) { c.InstitutionID = "inst-42" })
			cdlxOK(t, a, cdlxMsg("evt-1", "cust-1", cdlxEvNoID, cdlxEvWithID))
			ss, evs := f.requests(cardlyticsSessionPath), f.requests(cardlyticsEventsPath)
			if len(ss) != 1 || len(evs) != 1 {
				t.Fatalf("%d startSession and %d clientEvent calls, want 1 and 1", len(ss), len(evs))
			}
			tc.sessionHdr["Content-Type"], tc.eventHdr["Content-Type"] = "application/json", "application/json"
			tc.eventHdr["X-CDLX-Request-Id"] = "evt-1"
			for r, hdr := range map[*cdlxReq]map[string]string{&ss[0]: tc.sessionHdr, &evs[0]: tc.eventHdr} {
				if r.Method != http.MethodPost || r.ClientCN != cdlxClientCN {
					t.Errorf("%s: method %s, client certificate %q", r.Path, r.Method, r.ClientCN)
				}
				for name, want := range hdr {
					cdlxWantHeader(t, *r, name, want)
				}
			}
			cdlxJSONEqual(t, "startSession body", ss[0].Body, tc.sessionBody)
			cdlxJSONEqual(t, "clientEvent body", evs[0].Body, map[string]any{"clientEvents": []any{
				cdlxWithID(cdlxEvNoID, cdlxDerivedID("evt-1", 0)), cdlxWithID(cdlxEvWithID, cdlxGivenID)}})
		})
	}
}

func TestCardlyticsMutualTLSRequired(t *testing.T) {
	f := newFakeCDLX(t, cardlyticsAuthBearer)
	post := func(certs ...tls.Certificate) error {
		c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.pki.CertPool(), Certificates: certs}}}
		defer c.CloseIdleConnections()
		resp, err := c.Post(f.srv.URL+cardlyticsSessionPath, "application/json", strings.NewReader(`{}`))
		if err == nil {
			err = resp.Body.Close()
		}
		return err
	}
	if err := post(); err == nil {
		t.Fatal("a client without a certificate reached the fake: mutual TLS is not required")
	}
	if err := post(f.pki.Client); err != nil {
		t.Fatalf("the same client with the certificate: %v", err)
	}
	// The adapter without a certificate is refused too: retryable, nothing received.
	a := newCDLXAdapter(t, f, func(c *CardlyticsConfig) { c.TLSCertFile, c.TLSKeyFile = "", "" })
	before, _ := f.counts()
	if err := cdlxDeliver(t, a, cdlxMsg("evt-1", "cust-1", cdlxEvNoID)); err == nil || delivery.IsPermanent(err) {
		t.Fatalf("Deliver without a client certificate: %v, want a retryable error", err)
	}
	if after, events := f.counts(); after != before || events != 0 {
		t.Fatalf("requests got through without a client certificate: %d sessions, %d events", after-before, events)
	}
}

func TestCardlyticsSessionCached(t *testing.T) {
	f := newFakeCDLX(t, cardlyticsAuthSession)
	a := newCDLXAdapter(t, f)
	for i, c := range []string{"cust-1", "cust-1", "cust-1", "cust-1", "cust-1", "cust-2"} {
		cdlxOK(t, a, cdlxMsg("a"+strconv.Itoa(i), c, cdlxEvNoID))
	}
	if s, e := f.counts(); s != 2 || e != 6 {
		t.Fatalf("%d sessions and %d event calls, want 2 (one per customer) and 6", s, e)
	}
	evs := f.requests(cardlyticsEventsPath)
	cdlxWantHeader(t, evs[4], "X-CDLX-Session-Token", cdlxToken(1))
	cdlxWantHeader(t, evs[5], "X-CDLX-Session-Token", cdlxToken(2))

	// Concurrent misses for one customer start a single session.
	f.mu.Lock()
	f.sessionDelay = 100 * time.Millisecond // overlapping startSession calls
	f.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() { errs[i] = cdlxDeliver(t, a, cdlxMsg("c"+strconv.Itoa(i), "cust-3", cdlxEvNoID)) })
	}
	wg.Wait()
	if s, _ := f.counts(); s != 3 || errors.Join(errs...) != nil {
		t.Fatalf("%d sessions after 16 concurrent deliveries for a new customer, want 3 (errors: %v)", s, errors.Join(errs...))
	}
}

func TestCardlyticsSessionExpiry(t *testing.T) {
	for _, tc := range []struct {
		mode, reply string
		field       string        // session_token_field
		valid       time.Duration // how long the token is used
	}{
		{cardlyticsAuthSession, `{"sessionToken":"%s"}`, "", time.Hour - time.Minute},
		{cardlyticsAuthBearer, `{"token":"%s"}`, "", 15*time.Minute - time.Minute},
		{cardlyticsAuthBearer, `{"accessToken":"%s","expiresIn":120}`, "accessToken", time.Minute},
		{cardlyticsAuthBearer, `{"access_token":"%s","expires_in":"300"}`, "access_token", 4 * time.Minute},
	} {
		t.Run(tc.reply, func(t *testing.T) {
			f := newFakeCDLX(t, tc.mode)
			f.script(cardlyticsSessionPath, func(n int, _ cdlxReq) cdlxResp {
				return cdlxResp{Status: 200, Body: fmt.Sprintf(tc.reply, cdlxToken(n))}
			})
			a := newCDLXAdapter(t, f, func(c *CardlyticsConfig) { c.SessionTokenField = tc.field })
			clk := &cdlxClock{}
			a.now = clk.Now
			deliver := func(wantSessions int) {
				t.Helper()
				cdlxOK(t, a, cdlxMsg("e", "cust-1", cdlxEvNoID))
				if s, _ := f.counts(); s != wantSessions {
					t.Fatalf("%d sessions, want %d", s, wantSessions)
				}
			}
			deliver(1)
			clk.Add(int64(tc.valid - time.Second))
			deliver(1)
			clk.Add(int64(2 * time.Second))
			deliver(2)
			evs := f.requests(cardlyticsEventsPath)
			if last := evs[len(evs)-1]; !strings.Contains(fmt.Sprint(last.Header), cdlxToken(2)) {
				t.Errorf("the renewed token is not used: %v", last.Header)
			}
		})
	}
}

func TestCardlytics401RenewsSessionOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		expired func(token string) bool // whether the fake answers 401 to token
		ok      bool
	}{
		{"401 then a new session", func(tok string) bool { return tok == cdlxToken(1) }, true},
		{"401 twice", func(string) bool { return true }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeCDLX(t, cardlyticsAuthBearer)
			f.script(cardlyticsEventsPath, func(n int, r cdlxReq) cdlxResp {
				if tc.expired(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")) {
					return cdlxEcho(401)(n, r)
				}
				return cdlxResp{Status: 200, Body: `{}`}
			})
			a := newCDLXAdapter(t, f)
			err := cdlxDeliver(t, a, cdlxMsg("e1", "cust-1", cdlxEvNoID))
			if tc.ok && err != nil || !tc.ok && (err == nil || delivery.IsPermanent(err) || delivery.StatusOf(err) != 401) {
				t.Fatalf("got %v, want delivered %v or else a retryable 401", err, tc.ok)
			}
			if s, e := f.counts(); s != 2 || e != 2 {
				t.Fatalf("%d sessions and %d event calls, want 2 and 2", s, e)
			}
			if evs := f.requests(cardlyticsEventsPath); tc.ok {
				cdlxWantHeader(t, evs[1], "Authorization", "Bearer "+cdlxToken(2))
				// The new token is the cached one now.
				cdlxOK(t, a, cdlxMsg("e2", "cust-1", cdlxEvNoID))
				if s, _ := f.counts(); s != 2 {
					t.Fatalf("%d sessions, want 2", s)
				}
			}
		})
	}
}

func TestCardlyticsBatching(t *testing.T) {
	f := newFakeCDLX(t, cardlyticsAuthSession)
	a := newCDLXAdapter(t, f)
	m1 := cdlxMsg("m1", "cust-1", cdlxEvNoID, cdlxEvWithID)
	m2 := cdlxMsg("m2", "cust-1", cdlxEvNoID)
	bad := &delivery.Message{ID: "m3", Route: "cardlytics/client-events", CustomerID: "cust-1", Body: []byte(`{"clientEvents":[`)}
	evil := cdlxMsg("m4", "cust-1\r\nX-Evil: 1", cdlxEvNoID)
	for m, want := range map[*delivery.Message]string{m1: "cust-1 2", m2: "cust-1 1", cdlxMsg("o", "cust-2", cdlxEvNoID): "cust-2 1",
		evil: " 1", cdlxMsg("long", strings.Repeat("c", cardlyticsMaxCustomerID+1), cdlxEvNoID): " 1"} {
		if k, w := a.BatchKey(m); fmt.Sprint(k, " ", w) != want {
			t.Errorf("BatchKey(%s) = %q, %d; want %q", m.ID, k, w, want)
		}
	}
	if a.MaxBatchWeight() != 50 || a.Provider() != Cardlytics {
		t.Errorf("MaxBatchWeight %d, Provider %q", a.MaxBatchWeight(), a.Provider())
	}

	res := cdlxDeliverAll(t, a, m1, bad, m2, evil)
	if res[0] != nil || res[2] != nil {
		t.Fatalf("results %v: want m1 and m2 delivered", res)
	}
	if !delivery.IsPermanent(res[1]) || !errors.Is(res[1], errCardlyticsBody) {
		t.Errorf("unparseable body: %v, want Permanent errCardlyticsBody", res[1])
	}
	if !delivery.IsPermanent(res[3]) || !errors.Is(res[3], errCardlyticsCustomer) {
		t.Errorf("customer id with CR LF: %v, want Permanent errCardlyticsCustomer", res[3])
	}
	evs := f.requests(cardlyticsEventsPath)
	if len(evs) != 1 {
		t.Fatalf("%d clientEvent calls, want 1 for one customer", len(evs))
	}
	cdlxWantHeader(t, evs[0], "X-CDLX-Request-Id", "m1")
	cdlxJSONEqual(t, "merged body", evs[0].Body, map[string]any{"clientEvents": []any{
		cdlxWithID(cdlxEvNoID, cdlxDerivedID("m1", 0)), cdlxWithID(cdlxEvWithID, cdlxGivenID),
		cdlxWithID(cdlxEvNoID, cdlxDerivedID("m2", 0))}})

	// A batch that breaks the contract: the other customer's event waits, unjudged.
	if res := cdlxDeliverAll(t, a, m2, cdlxMsg("o", "cust-2", cdlxEvNoID)); res[0] != nil ||
		!errors.Is(res[1], errCardlyticsBatch) || delivery.IsPermanent(res[1]) {
		t.Errorf("mixed customers: %v", res)
	}
	// One request's fate is every event's in it.
	f.script(cardlyticsEventsPath, cdlxEcho(500))
	for i, err := range cdlxDeliverAll(t, a, m1, m2) {
		if err == nil || delivery.IsPermanent(err) || delivery.StatusOf(err) != 500 {
			t.Errorf("event %d of a failed request: %v", i, err)
		}
	}
}

func TestCardlyticsFailures(t *testing.T) {
	const ss, ev = cardlyticsSessionPath, cardlyticsEventsPath
	for _, tc := range []struct {
		name, mode, path, mention string
		reply                     func(int, cdlxReq) cdlxResp
		status                    int
		permanent                 bool
		delay                     time.Duration
	}{
		{"startSession bearer 500: wrong client_id/secret", cardlyticsAuthBearer, ss, "client_id/secret", cdlxEcho(500), 500, false, 0},
		{"startSession 400: not enrolled", cardlyticsAuthSession, ss, "not enrolled", cdlxReply(400, `{"message":"User is not enrolled"}`), 400, true, 0},
		{"startSession 400 echoing the secret", cardlyticsAuthBearer, ss, "not enrolled", cdlxEcho(400), 400, true, 0},
		{"startSession 403: config fault", cardlyticsAuthSession, ss, "tls_cert_file", cdlxEcho(403), 403, false, 0},
		{"startSession 503", cardlyticsAuthSession, ss, "startSession", cdlxEcho(503, "Retry-After", "3"), 503, false, 3 * time.Second},
		{"startSession 2xx without a token", cardlyticsAuthBearer, ss, "no usable token", cdlxReply(200, `{"tokn":"`+cdlxToken(1)+`"}`), 200, false, 0},
		{"clientEvent 400", cardlyticsAuthBearer, ev, "clientEvent", cdlxEcho(400), 400, true, 0},
		{"clientEvent 403: certificate or IP allow-list", cardlyticsAuthSession, ev, "IP allow-list", cdlxEcho(403), 403, false, 0},
		{"clientEvent 301: base_url moved", cardlyticsAuthBearer, ev, "base_url", cdlxEcho(301, "Location", "https://elsewhere.example/v2/"), 301, false, 0},
		{"clientEvent 404", cardlyticsAuthBearer, ev, "clientEvent", cdlxEcho(404), 404, true, 0},
		{"clientEvent 405", cardlyticsAuthBearer, ev, "clientEvent", cdlxEcho(405), 405, true, 0},
		{"clientEvent 503 Retry-After 3", cardlyticsAuthBearer, ev, "clientEvent", cdlxEcho(503, "Retry-After", "3"), 503, false, 3 * time.Second},
		{"clientEvent 429", cardlyticsAuthSession, ev, "clientEvent", cdlxEcho(429), 429, false, 0},
		{"clientEvent 408", cardlyticsAuthBearer, ev, "clientEvent", cdlxEcho(408), 408, false, 0},
		{"clientEvent 500", cardlyticsAuthBearer, ev, "clientEvent", cdlxEcho(500), 500, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeCDLX(t, tc.mode)
			f.script(tc.path, tc.reply)
			a := newCDLXAdapter(t, f)
			for range 2 { // the same event, then its retry
				err := cdlxDeliver(t, a, cdlxMsg("e", "cust-1", cdlxEvNoID))
				if d, _ := delivery.RetryDelay(err); err == nil || delivery.StatusOf(err) != tc.status || delivery.IsPermanent(err) != tc.permanent ||
					d != tc.delay || !strings.Contains(err.Error(), tc.mention) {
					t.Fatalf("got %v (permanent %v, delay %v), want status %d, permanent %v, delay %v, mentioning %q",
						err, delivery.IsPermanent(err), d, tc.status, tc.permanent, tc.delay, tc.mention)
				}
			}
			evs := f.requests(cardlyticsEventsPath)
			if tc.path == ss && len(evs) != 0 {
				t.Errorf("%d event calls without a session", len(evs))
			}
			if tc.path == ev { // the retry resent the same body: deterministic clientEventIds
				if len(evs) != 2 || !bytes.Equal(evs[0].Body, evs[1].Body) {
					t.Fatalf("the retry sent another body:\n%s\n%s", evs[0].Body, evs[1].Body)
				}
				cdlxJSONEqual(t, "clientEvent body", evs[1].Body, map[string]any{"clientEvents": []any{cdlxWithID(cdlxEvNoID, cdlxDerivedID("e", 0))}})
			}
		})
	}
}

func TestCardlyticsSessionCacheBounded(t *testing.T) {
	clk, n := &cdlxClock{}, 0 // n: sessions started
	s := newCardlyticsSessions(clk.Now, func(context.Context, string) (string, time.Duration, error) { n++; return cdlxToken(n), time.Hour, nil }, 3)
	get := func(c string) string { tok, _ := s.get(context.Background(), c); return tok }
	for i := range 5 {
		clk.Add(int64(time.Second))
		get("c" + strconv.Itoa(i))
	}
	if s.len() != 3 || get("c4") != cdlxToken(5) || n != 5 {
		t.Fatalf("%d cached sessions after %d starts: want the cap 3, the newest kept", s.len(), n)
	}
	s.drop("c4", "stale-token") // a token another worker already replaced
	if get("c4") != cdlxToken(5) {
		t.Errorf("dropping a stale token removed the current one")
	}
	if s.drop("c4", cdlxToken(5)); get("c4") != cdlxToken(6) {
		t.Errorf("after drop: want a new session")
	}
}

// cdlxEventIDs returns the clientEventIds of a clientEvent request body.
func cdlxEventIDs(t *testing.T, body []byte) []string {
	t.Helper()
	var req struct {
		ClientEvents []struct {
			ClientEventID string `json:"clientEventId"`
		} `json:"clientEvents"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		t.Errorf("clientEvent body %s: %v", body, err)
	}
	ids := make([]string, len(req.ClientEvents))
	for i, ev := range req.ClientEvents {
		ids[i] = ev.ClientEventID
	}
	return ids
}

// cdlxBadID is the clientEventId of the n-th marked event of TestCardlyticsSplitsRefusedBatch.
func cdlxBadID(n int) string { return fmt.Sprintf("bad00000-0000-4000-8000-%012d", n) }

// cdlxSplitBound is the most clientEvent requests a batch of n messages with bad marked
// ones may cost: one, plus two per halving for each bad one.
func cdlxSplitBound(n, bad int) int {
	depth := 0
	for 1<<depth < n {
		depth++
	}
	return 1 + bad*2*depth
}

// One customer's 50 messages share a request; the fake refuses (400, without naming the
// event) any request holding a marked event. Only the marked messages are dead-lettered,
// every other one is delivered exactly once, within the request bound.
func TestCardlyticsSplitsRefusedBatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  []int // indexes of the marked messages
	}{
		{"one bad event", []int{17}},
		{"one bad event first", []int{0}},
		{"one bad event last", []int{49}},
		{"two bad events", []int{3, 40}},
		{"two bad neighbours", []int{24, 25}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeCDLX(t, cardlyticsAuthBearer)
			var mu sync.Mutex
			delivered := map[string]int{} // clientEventId: times answered 200
			f.script(cardlyticsEventsPath, func(_ int, r cdlxReq) cdlxResp {
				ids := cdlxEventIDs(t, r.Body)
				for _, id := range ids {
					if strings.HasPrefix(id, "bad") {
						return cdlxResp{Status: 400, Body: `{"message":"Bad Request"}`}
					}
				}
				mu.Lock()
				for _, id := range ids {
					delivered[id]++
				}
				mu.Unlock()
				return cdlxResp{Status: 200, Body: `{"requestId":"` + r.Header.Get("X-CDLX-Request-Id") + `"}`}
			})
			a := newCDLXAdapter(t, f)
			batch := make([]*delivery.Message, cardlyticsMaxEvents)
			for i := range batch {
				batch[i] = cdlxMsg("m"+strconv.Itoa(i), "cust-1", cdlxEvNoID)
			}
			for n, i := range tc.bad {
				batch[i] = cdlxMsg(batch[i].ID, "cust-1", `{"clientEventId":"`+cdlxBadID(n)+`",`+cdlxEvNoID[1:])
			}
			res := cdlxDeliverAll(t, a, batch...)
			for i, err := range res {
				if slices.Contains(tc.bad, i) {
					if !delivery.IsPermanent(err) || delivery.StatusOf(err) != 400 {
						t.Errorf("marked message %d: %v, want Permanent 400", i, err)
					}
					continue
				}
				if id := cdlxDerivedID(batch[i].ID, 0); err != nil || delivered[id] != 1 {
					t.Errorf("message %d: %v, delivered %d times; want delivered once", i, err, delivered[id])
				}
			}
			evs := f.requests(cardlyticsEventsPath)
			if bound := cdlxSplitBound(len(batch), len(tc.bad)); len(evs) > bound {
				t.Errorf("%d clientEvent requests, want at most %d", len(evs), bound)
			}
			if s, _ := f.counts(); s != 1 {
				t.Errorf("%d sessions, want 1", s)
			}
			// Each request is traced by its own first message.
			for _, r := range evs {
				if first := cdlxEventIDs(t, r.Body); len(first) > 0 && !strings.HasPrefix(first[0], "bad") &&
					first[0] != cdlxDerivedID(r.Header.Get("X-CDLX-Request-Id"), 0) {
					t.Errorf("X-CDLX-Request-Id %q is not the request's first message", r.Header.Get("X-CDLX-Request-Id"))
				}
			}
		})
	}
}

// Splitting stops at a reply that is not a refusal of the content: it applies to the
// whole half, as it would to the whole batch.
func TestCardlyticsSplitStops(t *testing.T) {
	for _, tc := range []struct {
		name     string
		half     cdlxResp // the reply to a split request holding the marked event
		requests int
		check    func(error) bool
	}{
		{"503 on the half", cdlxResp{Status: 503, Header: map[string]string{"Retry-After": "3"}}, 3, func(err error) bool {
			d, _ := delivery.RetryDelay(err)
			return !delivery.IsPermanent(err) && delivery.StatusOf(err) == 503 && d == 3*time.Second
		}},
		{"429 on the half", cdlxResp{Status: 429}, 3, func(err error) bool {
			return !delivery.IsPermanent(err) && delivery.StatusOf(err) == 429
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeCDLX(t, cardlyticsAuthBearer)
			f.script(cardlyticsEventsPath, func(n int, r cdlxReq) cdlxResp {
				if !slices.Contains(cdlxEventIDs(t, r.Body), cdlxBadID(0)) {
					return cdlxResp{Status: 200, Body: `{}`}
				}
				if n == 1 {
					return cdlxResp{Status: 400, Body: `{}`}
				}
				return tc.half
			})
			a := newCDLXAdapter(t, f)
			batch := make([]*delivery.Message, 10)
			for i := range batch {
				batch[i] = cdlxMsg("m"+strconv.Itoa(i), "cust-1", cdlxEvNoID)
			}
			batch[2] = cdlxMsg("m2", "cust-1", `{"clientEventId":"`+cdlxBadID(0)+`",`+cdlxEvNoID[1:])
			res := cdlxDeliverAll(t, a, batch...)
			for i, err := range res {
				if i < 5 && !tc.check(err) || i >= 5 && err != nil {
					t.Errorf("message %d: %v", i, err)
				}
			}
			if _, e := f.counts(); e != tc.requests {
				t.Errorf("%d clientEvent requests, want %d", e, tc.requests)
			}
		})
	}

	// A refusal that is not about the content (404: base_url or path) is not split.
	f := newFakeCDLX(t, cardlyticsAuthBearer)
	f.script(cardlyticsEventsPath, cdlxReply(404, `{}`))
	a := newCDLXAdapter(t, f)
	res := cdlxDeliverAll(t, a, cdlxMsg("a", "cust-1", cdlxEvNoID), cdlxMsg("b", "cust-1", cdlxEvNoID), cdlxMsg("c", "cust-1", cdlxEvNoID))
	for i, err := range res {
		if !delivery.IsPermanent(err) || delivery.StatusOf(err) != 404 {
			t.Errorf("message %d: %v, want Permanent 404", i, err)
		}
	}
	if _, e := f.counts(); e != 1 {
		t.Errorf("%d clientEvent requests for a 404, want 1", e)
	}
}

// The startSession reply's token member is session_token_field, the only one read. A
// reply without it is retryable, and its error lists the reply's member names (never
// their values) and the setting to change.
func TestCardlyticsSessionTokenField(t *testing.T) {
	for _, tc := range []struct {
		name, mode, reply, field string
		ok                       bool
		mention                  []string // in the error
	}{
		{"bearer, the token under another name, set", cardlyticsAuthBearer,
			`{"bearerToken":"%s","tokenType":"Bearer-canary","expiresIn":900}`, "bearerToken", true, nil},
		{"session, the token under another name, set", cardlyticsAuthSession,
			`{"jwt":"%s"}`, "jwt", true, nil},
		{"bearer, the token under another name, default", cardlyticsAuthBearer,
			`{"bearerToken":"%s","tokenType":"Bearer-canary","expiresIn":900}`, "", false,
			[]string{`no member "token"`, `"bearerToken", "tokenType", "expiresIn"`, "session_token_field"}},
		{"bearer, no fallback to another usual name", cardlyticsAuthBearer,
			`{"accessToken":"%s"}`, "", false, []string{`"accessToken"`, "session_token_field"}},
		{"session, no fallback to token", cardlyticsAuthSession,
			`{"token":"%s"}`, "", false, []string{`no member "sessionToken"`, `"token"`, "session_token_field"}},
		{"the member is not a string", cardlyticsAuthBearer,
			`{"token":{"value":"%s"}}`, "", false, []string{`member "token"`, "session_token_field"}},
		{"the member is empty", cardlyticsAuthBearer,
			`{"data":"%s","token":""}`, "", false, []string{`member "token"`, "session_token_field"}},
		{"not an object", cardlyticsAuthBearer, `["%s"]`, "", false, []string{"not a JSON object"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeCDLX(t, tc.mode)
			f.script(cardlyticsSessionPath, func(n int, _ cdlxReq) cdlxResp {
				return cdlxResp{Status: 200, Body: fmt.Sprintf(tc.reply, cdlxToken(n))}
			})
			a := newCDLXAdapter(t, f, func(c *CardlyticsConfig) { c.SessionTokenField = tc.field })
			err := cdlxDeliver(t, a, cdlxMsg("e", "cust-1", cdlxEvNoID)) // no "canary" in the error
			_, events := f.counts()
			if tc.ok {
				if err != nil || events != 1 {
					t.Fatalf("got %v after %d clientEvent calls, want delivered", err, events)
				}
				hdr := map[string]string{cardlyticsAuthBearer: "Authorization", cardlyticsAuthSession: "X-CDLX-Session-Token"}[tc.mode]
				want := map[string]string{cardlyticsAuthBearer: "Bearer ", cardlyticsAuthSession: ""}[tc.mode] + cdlxToken(1)
				cdlxWantHeader(t, f.requests(cardlyticsEventsPath)[0], hdr, want)
				return
			}
			if err == nil || delivery.IsPermanent(err) || delivery.StatusOf(err) != 200 || events != 0 {
				t.Fatalf("got %v (permanent %v) after %d clientEvent calls, want a retryable error with status 200 and no call",
					err, delivery.IsPermanent(err), events)
			}
			for _, m := range append(tc.mention, "no usable token") {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("%q does not mention %q", err, m)
				}
			}
			if strings.Contains(err.Error(), "900") {
				t.Errorf("%q quotes a value of the reply", err)
			}
		})
	}
}

// session_token_field is checked after its default: blank is refused, by config and by
// the adapter.
func TestCardlyticsSessionTokenFieldConfig(t *testing.T) {
	for field, want := range map[string]string{
		`""`:          "", // the default
		"accessToken": "",
		`"   "`:       "providers.cardlytics.session_token_field must name",
	} {
		_, err := config.Parse([]byte(`
admin: {listen: "127.0.0.1:9090", token: "admin-token-0123456789"}
providers:
  cardlytics: {base_url: "http://127.0.0.1:8443", client_id: id, secret: s, session_token_field: `+field+`}
`), nil, Specs())
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("session_token_field %s: %v, want %q", field, err, want)
		}
		unquoted, uerr := strconv.Unquote(field)
		if uerr != nil {
			unquoted = field
		}
		c := &CardlyticsConfig{Delivery: config.Delivery{BaseURL: "http://127.0.0.1:8443"},
			ClientID: "id", Secret: "s", SessionTokenField: unquoted}
		if _, err := newCardlyticsAdapter(c, nil); (err != nil) != (want != "") {
			t.Errorf("session_token_field %s: adapter: %v", field, err)
		}
	}
	for auth, want := range map[string]string{cardlyticsAuthBearer: "token", cardlyticsAuthSession: "sessionToken"} {
		c := &CardlyticsConfig{Auth: auth}
		if c.SetDefaults(); c.tokenField() != want {
			t.Errorf("auth %s: default session_token_field %q, want %q", auth, c.tokenField(), want)
		}
	}
}
