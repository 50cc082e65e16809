package providers

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/delivery"
)

// Header injection from stored events, checked on the wire: a fake upstream on
// 127.0.0.1 records every request byte for byte (not through net/http, which would
// normalise what it reads), and the tests assert that CR, LF and NUL in an event's
// strings stay escaped inside the JSON body, that no header beyond the adapter's own ever
// reaches the upstream, and that a value bound for a header that holds a control
// character is refused (Permanent) before any byte is sent. The ingest side (such values
// never get queued) is relay/ingest/hostile_test.go.

// injHostile holds every character that could end a header line or a request, as JSON
// escapes: the stored body is valid JSON that ingest accepted.
const injHostile = `a\r\nX-Injected: 1\r\n\r\nPOST /evil HTTP/1.1\r\nHost: evil\u0000\nX-Also: 1\u2028z`

// injHostileText is injHostile unescaped.
const injHostileText = "a\r\nX-Injected: 1\r\n\r\nPOST /evil HTTP/1.1\r\nHost: evil\x00\nX-Also: 1\u2028z"

// injRequest is one request as it arrived: the raw header block and the body.
type injRequest struct {
	head string
	path string
	body []byte
}

// injFake is an HTTP/1.1 upstream over raw TCP that records requests verbatim and answers
// reply(path) (200 {"ok":true} when nil).
type injFake struct {
	ln    net.Listener
	mu    sync.Mutex
	reqs  []injRequest
	conns []net.Conn
	reply func(path string) (int, string)
}

func newInjFake(t *testing.T, reply func(path string) (int, string)) *injFake {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &injFake{ln: ln, reply: reply}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			go f.serve(c)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.conns {
			_ = c.Close()
		}
	})
	return f
}

func (f *injFake) URL() string { return "http://" + f.ln.Addr().String() }

func (f *injFake) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if line == "\r\n" || line == "\n" {
				break
			}
		}
		h := head.String()
		n := 0
		for _, line := range strings.Split(h, "\r\n") {
			if name, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(name, "Content-Length") {
				n, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		path := ""
		if fields := strings.Fields(strings.SplitN(h, "\r\n", 2)[0]); len(fields) == 3 {
			path = fields[1]
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, injRequest{head: h, path: path, body: body})
		f.mu.Unlock()
		status, rb := 200, `{"ok":true}`
		if f.reply != nil {
			status, rb = f.reply(path)
		}
		if _, err := fmt.Fprintf(c, "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", status, len(rb), rb); err != nil {
			return
		}
	}
}

func (f *injFake) got() []injRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]injRequest(nil), f.reqs...)
}

// injHeaders parses a raw header block strictly: the request line, then lines of a token
// name, a colon and a value of visible ASCII, spaces and tabs, each ending in CRLF. Any
// other byte (a bare CR or LF, NUL) or a name not in allowed (case-insensitive) fails.
func injHeaders(t *testing.T, r injRequest, allowed ...string) map[string]string {
	t.Helper()
	block, ok := strings.CutSuffix(r.head, "\r\n\r\n")
	if !ok {
		t.Fatalf("header block does not end in CRLF CRLF: %q", r.head)
	}
	lines := strings.Split(block, "\r\n")
	if want := "POST " + r.path + " HTTP/1.1"; lines[0] != want || !strings.HasPrefix(r.path, "/") {
		t.Errorf("request line %q, want %q", lines[0], want)
	}
	out := map[string]string{}
	for _, line := range lines[1:] {
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsFunc(name, func(c rune) bool {
			return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-')
		}) {
			t.Errorf("not a header line: %q (in %q)", line, r.head)
			continue
		}
		if strings.ContainsFunc(value, func(c rune) bool { return (c < 0x20 && c != '\t') || c >= 0x7f }) {
			t.Errorf("header %s carries a control or 8-bit character: %q", name, value)
		}
		known := false
		for _, a := range allowed {
			known = known || strings.EqualFold(a, name)
		}
		if !known {
			t.Errorf("unexpected header %q upstream (allowed: %v)", line, allowed)
		}
		if _, dup := out[strings.ToLower(name)]; dup {
			t.Errorf("header %s sent twice", name)
		}
		out[strings.ToLower(name)] = strings.TrimSpace(value)
	}
	return out
}

// injBodyOK fails unless the body is JSON without a raw control character.
func injBodyOK(t *testing.T, body []byte) map[string]any {
	t.Helper()
	if strings.ContainsAny(string(body), "\r\n\x00") {
		t.Errorf("body carries a raw CR, LF or NUL: %q", body)
	}
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return v
}

// injBase are the headers every request may carry besides the adapter's own.
var injBase = []string{"Host", "Content-Type", "Content-Length", "User-Agent"}

func TestNoHeaderInjectionFromStoredEvents(t *testing.T) {
	settings := func(base string) config.Delivery {
		return config.Delivery{BaseURL: base, Workers: 1, Timeout: 2 * time.Second}
	}
	const ensKey, lrKey, brevoKey = "ens-inj-canary-0001", "lr-inj-canary-0002", "xkeysib-inj-canary-0003"
	cases := []struct {
		name   string
		build  func(base string) delivery.Adapter
		msg    *delivery.Message
		header string // the adapter's own header
		value  string
		// find returns the hostile string as delivered.
		find func(body map[string]any) any
	}{{
		name: "ens/click",
		build: func(b string) delivery.Adapter {
			return newENSAdapter(&ENSConfig{Delivery: settings(b), APIKey: ensKey})
		},
		// Country and User-Agent are filled upstream from the event's metadata: hostile
		// ones must not get through either.
		msg: &delivery.Message{ID: "evt-inj-1", Route: "ens/click", Country: "US\r\nX-Evil: 1",
			UserAgent: "Mozilla/5.0 (iPhone)\r\nX-Evil: 1", Body: []byte(`{"campaignId":1,"placement":"` + injHostile + `"}`)},
		header: "Authorization", value: "Bearer " + ensKey,
		find: func(b map[string]any) any { return b["placement"] },
	}, {
		name: "linkrunner/capture-payment",
		build: func(b string) delivery.Adapter {
			return newLinkrunnerAdapter(&LinkrunnerConfig{Delivery: settings(b), ServerKey: lrKey})
		},
		msg: &delivery.Message{ID: "evt-inj-2", Route: "linkrunner/capture-payment",
			Body: []byte(`{"user_id":"` + injHostile + `","amount":1,"type":"FIRST_PAYMENT","status":"PAYMENT_COMPLETED"}`)},
		header: "linkrunner-key", value: lrKey,
		find: func(b map[string]any) any { return b["user_id"] },
	}, {
		name: "brevo/events",
		build: func(b string) delivery.Adapter {
			return newBrevoAdapter(&BrevoConfig{Delivery: settings(b), APIKey: brevoKey, MAKey: "ma-inj-canary-0004", TrackerURL: "http://127.0.0.1:9"})
		},
		msg: &delivery.Message{ID: "evt-inj-3", Route: "brevo/events",
			Body: []byte(`{"event_name":"e","identifiers":{"email_id":"jane@example.com"},"event_properties":{"note":"` + injHostile + `"}}`)},
		header: "api-key", value: brevoKey,
		find: func(b map[string]any) any { return b["event_properties"].(map[string]any)["note"] },
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newInjFake(t, nil)
			res := c.build(f.URL()).Deliver(context.Background(), []*delivery.Message{c.msg})
			if len(res) != 1 || res[0] != nil {
				t.Fatalf("Deliver: %v", res)
			}
			reqs := f.got()
			if len(reqs) != 1 {
				t.Fatalf("%d requests upstream, want 1", len(reqs))
			}
			allowed := append(slices.Clone(injBase), c.header)
			if strings.HasPrefix(c.name, "brevo/") {
				allowed = append(allowed, "accept") // as Brevo's documents show
			}
			h := injHeaders(t, reqs[0], allowed...)
			if h[strings.ToLower(c.header)] != c.value {
				t.Errorf("%s = %q, want %q", c.header, h[strings.ToLower(c.header)], c.value)
			}
			body := injBodyOK(t, reqs[0].body)
			if got := c.find(body); got != injHostileText {
				t.Errorf("the string arrived as %q, want %q", got, injHostileText)
			}
			if c.name == "ens/click" && (body["location"] != nil || body["device"] != "mobile") {
				t.Errorf("location %v, device %v: want no location from a hostile country, device from the UA's tokens", body["location"], body["device"])
			}
		})
	}
}

func TestNoHeaderInjectionCardlytics(t *testing.T) {
	const secret = "cdlx-inj-canary-secret-0005"
	f := newInjFake(t, func(path string) (int, string) {
		if path == cardlyticsSessionPath {
			return 200, `{"token":"inj-token-1"}`
		}
		return 200, `{"requestId":"r"}`
	})
	a, err := newCardlyticsAdapter(&CardlyticsConfig{Auth: cardlyticsAuthBearer, ClientID: "cdlx-inj-client", Secret: secret,
		Delivery: config.Delivery{BaseURL: f.URL(), Timeout: 2 * time.Second, Workers: 1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	event := `{"clientEventType":"AdImpression","clientEvent":"AdViewableImpression","clientEventTimestamp":"2023-03-11T08:00:00Z",` +
		`"clientEventMetadata":{"serveToken":"t","section":"` + injHostile + `","channel":"OLB"}}`
	msg := func(id, customer string) *delivery.Message {
		return &delivery.Message{ID: id, Provider: Cardlytics, Route: cardlyticsRoute, CustomerID: customer,
			Body: []byte(`{"clientEvents":[` + event + `]}`)}
	}
	deliver := func(m *delivery.Message) error {
		res := a.Deliver(context.Background(), []*delivery.Message{m})
		if len(res) != 1 {
			t.Fatalf("%d results for one event", len(res))
		}
		if res[0] != nil && strings.Contains(res[0].Error(), secret) {
			t.Errorf("the secret leaks in %q", res[0])
		}
		return res[0]
	}

	// A customer id that cannot be a header value is refused before anything is sent,
	// session start included.
	for _, customer := range []string{"cust-1\r\nX-Evil: 1", "cust-1\r", "cust-1\n", "cust-1\x00", "cust-1\t", "cust-1\x7f",
		" cust-1", "cust 1", "cust-\u00e9", ""} {
		if err := deliver(msg("evt-c", customer)); !delivery.IsPermanent(err) || !errors.Is(err, errCardlyticsCustomer) {
			t.Errorf("customer %q: %v, want Permanent %v", customer, err, errCardlyticsCustomer)
		}
	}
	if n := len(f.got()); n != 0 {
		t.Fatalf("%d requests upstream for refused customer ids", n)
	}
	if k, _ := a.BatchKey(msg("evt-c", "cust-1\r\nX-Evil: 1")); k != "" {
		t.Errorf("BatchKey of a hostile customer id = %q: it would be batched with others", k)
	}

	// An event id (it travels as X-CDLX-Request-Id) with a control character never reaches
	// the events endpoint, and is final.
	if err := deliver(msg("evt-1\r\nX-Evil: 1", "cust-1")); !delivery.IsPermanent(err) || !errors.Is(err, errHeaderValue) {
		t.Errorf("event id with CR LF: %v, want Permanent %v", err, errHeaderValue)
	}
	for _, r := range f.got() {
		if r.path != cardlyticsSessionPath {
			t.Errorf("a request reached %s for an event id with CR LF", r.path)
		}
	}

	// A good customer: hostile strings in the body stay escaped, headers are the adapter's.
	if err := deliver(msg("evt-good-1", "cust-1")); err != nil {
		t.Fatalf("good event: %v", err)
	}
	var events []injRequest
	for _, r := range f.got() {
		switch r.path {
		case cardlyticsSessionPath:
			h := injHeaders(t, r, append(injBase, "x-source-customer-id")...)
			if h["x-source-customer-id"] != "cust-1" {
				t.Errorf("startSession customer header %q", h["x-source-customer-id"])
			}
		case cardlyticsEventsPath:
			events = append(events, r)
		default:
			t.Errorf("request to %s", r.path)
		}
	}
	if len(events) != 1 {
		t.Fatalf("%d clientEvent requests, want 1", len(events))
	}
	h := injHeaders(t, events[0], append(injBase, "Authorization", "x-source-customer-id", "X-CDLX-Request-Id")...)
	if h["x-source-customer-id"] != "cust-1" || h["x-cdlx-request-id"] != "evt-good-1" || h["authorization"] != "Bearer inj-token-1" {
		t.Errorf("clientEvent headers %v", h)
	}
	body := injBodyOK(t, events[0].body)
	ev := body["clientEvents"].([]any)[0].(map[string]any)
	if got := ev["clientEventMetadata"].(map[string]any)["section"]; got != injHostileText {
		t.Errorf("section arrived as %q", got)
	}
}

// TestTransportRefusesControlCharactersInHeaders: the shared client refuses, before
// dialling, any header value with a control character, whoever built the request.
func TestTransportRefusesControlCharactersInHeaders(t *testing.T) {
	f := newInjFake(t, nil)
	tr := NewTransport(TransportOptions{Timeout: 2 * time.Second, MaxConns: 1})
	for _, v := range []string{"a\r\nX-Evil: 1", "a\rb", "a\nb", "a\x00b", "a\x7fb", "a\x1bb", "a\tb", "\r\n"} {
		_, err := tr.Do(context.Background(), &Request{URL: f.URL() + "/x", Header: []Header{{Name: "X-Value", Value: v}}, Body: []byte(`{}`)})
		if !delivery.IsPermanent(err) || !errors.Is(err, errHeaderValue) {
			t.Errorf("header value %q: %v, want Permanent %v", v, err, errHeaderValue)
		}
	}
	if n := len(f.got()); n != 0 {
		t.Fatalf("%d requests sent with control characters in a header", n)
	}
	// The control: a clean value goes through, exactly as given.
	if _, err := tr.Do(context.Background(), &Request{URL: f.URL() + "/x", Header: []Header{{Name: "X-Value", Value: "a b:c"}}, Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	reqs := f.got()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	if h := injHeaders(t, reqs[0], append(injBase, "X-Value")...); h["x-value"] != "a b:c" {
		t.Errorf("X-Value %q", h["x-value"])
	}
}
