package ingest_test

// The hostile-input suite ("Prove the guarantees"): every test talks to a real ingest
// listener on 127.0.0.1 over a real redis-server, most of them through raw TCP so that
// nothing a well-behaved HTTP client would fix up hides a fault. ingest_test.go already
// covers the plain refusals (413 with Content-Length, invalid UTF-8, case-variant
// duplicate keys, 40-deep nesting, "campaignId":"1", the basic Origin tricks, spoofed
// X-Forwarded-For from an untrusted peer); this file covers what a hostile client does
// beyond them. Smuggling is in hostile_smuggling_test.go, the limiter's memory bound
// under an address flood in hostile_internal_test.go.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventrelay/relay/config"
)

// addr is the relay's host:port.
func (r *testRelay) addr() string { return strings.TrimPrefix(r.url, "http://") }

// dial opens a raw TCP connection to the relay; the test closes it at the end.
func (r *testRelay) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", r.addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// rawReply is one HTTP response read off a raw connection.
type rawReply struct {
	status int
	header http.Header
	body   string
}

// readReplies reads every response the server writes on c until it closes the
// connection, a read fails, or wait passes; it reports whether the server closed it.
func readReplies(c net.Conn, wait time.Duration) (replies []rawReply, closed bool) {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	br := bufio.NewReader(c)
	for {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			timeout := errors.As(err, &ne) && ne.Timeout()
			return replies, !timeout
		}
		b, err := io.ReadAll(res.Body)
		_ = res.Body.Close()
		replies = append(replies, rawReply{status: res.StatusCode, header: res.Header, body: string(b)})
		if err != nil {
			return replies, true
		}
	}
}

// rawRequest is the text of a POST with the given extra header lines (each ending in
// CRLF) and body, framed by Content-Length, on a connection the server is asked to close
// after replying.
func rawRequest(path, headers, body string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n" + headers +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// wantJSONError fails unless the reply is status with a JSON error body of code.
func wantJSONError(t *testing.T, what string, status int, ct, body string, wantStatus int, code string) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("%s: status %d, want %d: %s", what, status, wantStatus, body)
		return
	}
	if ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	e := decode[refused](t, body)
	if e.OK || e.Error.Code != code || e.Error.Message == "" {
		t.Errorf("%s: reply %s, want code %q", what, body, code)
	}
}

// healthy fails unless the relay still answers a normal request at once.
func (r *testRelay) healthy(t *testing.T, what string) {
	t.Helper()
	start := time.Now()
	res := r.do(t, req{path: "/v1/ens/click", body: ensBody, header: bearer(backend)})
	if res.status != http.StatusAccepted || time.Since(start) > time.Second {
		t.Fatalf("after %s: normal request got %d after %v: %s", what, res.status, time.Since(start), res.body)
	}
}

// TestHostileBodySize: a body over server.max_body_bytes (4096 here) is refused with a
// JSON 413 however it is framed, the server stops reading it, and stays healthy.
func TestHostileBodySize(t *testing.T) {
	r := startRelay(t)

	t.Run("Content-Length announces 100 MiB", func(t *testing.T) {
		// Only the headers are sent: the refusal must come from the announced length,
		// without waiting for (or buffering) the body.
		c := r.dial(t)
		start := time.Now()
		fmt.Fprintf(c, "POST /v1/ens/click HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Relay-Key: %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"campaignId\":1,", shopKey, 100<<20)
		replies, closed := readReplies(c, 3*time.Second)
		if len(replies) != 1 || time.Since(start) > 2*time.Second {
			t.Fatalf("%d replies after %v, want one 413 at once", len(replies), time.Since(start))
		}
		wantJSONError(t, "100 MiB Content-Length", replies[0].status, replies[0].header.Get("Content-Type"), replies[0].body, 413, "body_too_large")
		if !closed {
			t.Error("connection left open after a 413: the rest of the body would be read as a request")
		}
	})

	t.Run("one chunk announcing 4 GiB", func(t *testing.T) {
		c := r.dial(t)
		fmt.Fprintf(c, "POST /v1/ens/click HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Relay-Key: %s\r\n"+
			"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\n{\"campaignId\":1,", shopKey)
		replies, closed := readReplies(c, 3*time.Second)
		if len(replies) != 1 || !closed {
			t.Fatalf("%d replies (closed %v), want one 413 and the connection closed", len(replies), closed)
		}
		wantJSONError(t, "4 GiB chunk", replies[0].status, replies[0].header.Get("Content-Type"), replies[0].body, 413, "body_too_large")
	})

	t.Run("endless chunked body", func(t *testing.T) {
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c := r.dial(t)
		fmt.Fprintf(c, "POST /v1/ens/click HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Relay-Key: %s\r\n"+
			"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", shopKey)
		// The writer sends 1 KiB chunks of a JSON string until the server hangs up, for
		// 5 s at most; the reader waits for the reply meanwhile.
		chunk := "400\r\n" + strings.Repeat("a", 1024) + "\r\n"
		start := time.Now()
		var written int64
		writerDone := make(chan error, 1)
		go func() {
			_, _ = io.WriteString(c, "5\r\n[\"aaa\r\n")
			for time.Since(start) < 5*time.Second {
				_ = c.SetWriteDeadline(time.Now().Add(time.Second))
				n, err := io.WriteString(c, chunk)
				written += int64(n)
				if err != nil {
					writerDone <- err
					return
				}
			}
			writerDone <- nil
		}()
		replies, closed := readReplies(c, 4*time.Second)
		took := time.Since(start)
		err := <-writerDone
		if len(replies) != 1 {
			t.Fatalf("%d replies within %v (closed %v), want one 413", len(replies), took, closed)
		}
		wantJSONError(t, "endless chunked", replies[0].status, replies[0].header.Get("Content-Type"), replies[0].body, 413, "body_too_large")
		if !closed || took > 2*time.Second {
			t.Errorf("connection closed %v after %v, want closed at once", closed, took)
		}
		if err == nil {
			t.Errorf("the server was still taking the body after 5 s (%d bytes)", written)
		}
		// What the client managed to push is bounded by socket buffers, not by time.
		if written > 32<<20 {
			t.Errorf("the server read %d bytes of a body capped at 4096", written)
		}
		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 16<<20 {
			t.Errorf("heap grew by %d bytes during an endless body", grew)
		}
		t.Logf("413 after %v; the client wrote %d bytes before the server hung up (%v)", took, written, err)
	})
	r.healthy(t, "oversize bodies")
	for _, p := range []string{"ens", "bannerflex"} {
		if n := len(r.entries(t, p)); n > 1 {
			t.Errorf("%d %s entries, want only the health check's", n, p)
		}
	}
}

// TestHostileSlowloris: with server.read_timeout 1s, connections that trickle their
// headers (or body) a byte every 500 ms are closed within about the timeout, and 50 of
// them do not keep a normal client from being served at once.
func TestHostileSlowloris(t *testing.T) {
	const readTimeout = time.Second
	r := startRelayWith(t, func(c *config.Config) { c.Server.ReadTimeout = readTimeout })
	const slow = 50
	type result struct {
		lived time.Duration
		sent  int
		why   string
	}
	results := make(chan result, slow)
	// ended counts slow connections that are over (closed, answered or given up).
	var ended atomic.Int32
	report := func(r result) {
		ended.Add(1)
		results <- r
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range slow {
		c := r.dial(t)
		// Most trickle the headers; every fifth sends whole headers and trickles the body.
		text := rawRequest("/v1/ens/click", "X-Relay-Key: "+shopKey+"\r\nX-Pad: "+strings.Repeat("p", 64)+"\r\n", ensBody)
		prefix := ""
		if i%5 == 4 {
			cut := strings.Index(text, "\r\n\r\n") + 4
			prefix, text = text[:cut], text[cut:]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			closed := make(chan string, 1)
			go func() {
				// The server closes the connection, or answers 408 and closes it.
				replies, gone := readReplies(c, 5*time.Second)
				switch {
				case len(replies) > 0:
					closed <- fmt.Sprintf("answered %d", replies[0].status)
				case gone:
					closed <- "closed"
				default:
					closed <- "still open"
				}
			}()
			sent := 0
			if prefix != "" {
				if _, err := io.WriteString(c, prefix); err != nil {
					report(result{time.Since(start), sent, "write: " + err.Error()})
					return
				}
			}
			tick := time.NewTicker(500 * time.Millisecond)
			defer tick.Stop()
			for ; sent < len(text); sent++ {
				select {
				case why := <-closed:
					report(result{time.Since(start), sent, why})
					return
				case <-ctx.Done():
					report(result{time.Since(start), sent, "test deadline"})
					return
				case <-tick.C:
				}
				if _, err := c.Write([]byte{text[sent]}); err != nil {
					why := <-closed
					report(result{time.Since(start), sent, why + " (write failed)"})
					return
				}
			}
			report(result{time.Since(start), sent, "sent it all"})
		}()
	}
	// Meanwhile, normal clients are served at once: while every slow connection is still
	// open (none has ended), not after the read timeout freed them. The slow connections
	// were all dialled before the first normal one, and the listener accepts in order.
	for range 3 {
		start := time.Now()
		res := r.do(t, req{path: "/v1/ens/click", body: ensBody, header: shop()})
		if res.status != http.StatusAccepted || ended.Load() != 0 {
			t.Fatalf("with %d slow connections open, a normal request got %d after %v, when %d slow connections had ended",
				slow, res.status, time.Since(start), ended.Load())
		}
	}
	wg.Wait()
	close(results)
	var longest time.Duration
	for res := range results {
		longest = max(longest, res.lived)
		if res.lived > readTimeout+time.Second || !strings.HasPrefix(res.why, "closed") && !strings.HasPrefix(res.why, "answered 408") {
			t.Errorf("slow connection lived %v after %d bytes: %s; want closed within ~%v", res.lived, res.sent, res.why, readTimeout)
		}
	}
	t.Logf("longest slow connection: %v", longest)
	r.healthy(t, "slowloris")
	if n := len(r.entries(t, "ens")); n != 4 {
		t.Errorf("%d ens entries, want the 4 normal requests only", n)
	}
}

// TestHostileHeadersAndJSON: oversized headers, nesting at and past the limit, duplicate
// keys in every disguise, fields that try to redirect an event, malformed UTF-8 and
// out-of-range numbers are all refused with the documented JSON error, and nothing is
// queued.
func TestHostileHeadersAndJSON(t *testing.T) {
	r := startRelay(t)
	key := map[string]string{"X-Relay-Key": shopKey}
	nest := func(n int) string { // n levels in all: the body object and n-1 arrays
		return `{"campaignId":1,"placement":"p","x":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}`
	}
	bf := func(extra string) string {
		return `{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","event":"impression"` + extra + `}`
	}
	cases := []struct {
		name, path, body, code, field string
	}{
		{"33 levels", "/v1/ens/click", nest(33), "too_deep", "x" + strings.Repeat("[0]", 31)},
		{"2000 levels", "/v1/ens/click", `{"x":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}`, "too_deep", "x" + strings.Repeat("[0]", 31)},
		{"2000 levels, unclosed", "/v1/ens/click", strings.Repeat(`{"a":`, 800), "too_deep", strings.TrimSuffix(strings.Repeat("a.", 32), ".")},
		{"32 levels is not too deep", "/v1/ens/click", nest(32), "unknown_field", "x"},
		{"exact duplicate", "/v1/ens/click", `{"campaignId":1,"placement":"a","campaignId":2}`, "duplicate_key", "campaignId"},
		{"upper-case duplicate", "/v1/ens/click", `{"campaignId":1,"placement":"a","CAMPAIGNID":2}`, "duplicate_key", "CAMPAIGNID"},
		{"escaped duplicate", "/v1/ens/click", `{"campaignId":1,"placement":"a","campaign\u0049d":2}`, "duplicate_key", "campaignId"},
		{"escaped case-variant duplicate", "/v1/ens/click", `{"campaignId":1,"placement":"a","\u0063ampaignID":2}`, "duplicate_key", "campaignID"},
		{"nested duplicate", "/v1/batch", `{"events":[{"route":"ens/click","body":{"campaignId":1,"placement":"a","Placement":"b"}}]}`, "duplicate_key", "events[0].body.Placement"},
		{"api_key", "/v1/ens/click", `{"campaignId":1,"placement":"a","api_key":"k"}`, "unknown_field", "api_key"},
		{"url", "/v1/ens/click", `{"campaignId":1,"placement":"a","url":"http://127.0.0.1:9/x"}`, "unknown_field", "url"},
		{"destination", "/v1/bannerflex/banner-events", bf(`,"destination":"http://127.0.0.1:9/"`), "unknown_field", "destination"},
		{"url in a batch item", "/v1/batch", `{"events":[{"route":"ens/click","url":"http://127.0.0.1:9/"}]}`, "unknown_field", "events[0].url"},
		{"api_key in a batch body", "/v1/batch", `{"events":[{"route":"ens/click","body":{"campaignId":1,"placement":"a","api_key":"k"}}]}`, "unknown_field", "events[0].body.api_key"},
		{"overlong UTF-8", "/v1/ens/click", "{\"campaignId\":1,\"placement\":\"\xc0\xaf\"}", "invalid_json", ""},
		{"UTF-8 surrogate", "/v1/ens/click", "{\"campaignId\":1,\"placement\":\"\xed\xa0\x80\"}", "invalid_json", ""},
		{"truncated UTF-8", "/v1/ens/click", "{\"campaignId\":1,\"placement\":\"\xe2\x82\"}", "invalid_json", ""},
		{"invalid UTF-8 in a key", "/v1/ens/click", "{\"campaignId\":1,\"placement\":\"a\",\"\xff\":1}", "invalid_json", ""},
		{"1e309", "/v1/ens/click", `{"campaignId":1e309,"placement":"a"}`, "invalid_field", "campaignId"},
		{"-1e309", "/v1/ens/click", `{"campaignId":-1e309,"placement":"a"}`, "invalid_field", "campaignId"},
		{"1e309 anywhere", "/v1/linkrunner/capture-event", `{"event_name":"e","event_data":{"amount":1e309},"user_id":"u"}`, "invalid_field", "event_data.amount"},
		{"number as string", "/v1/bannerflex/banner-events", bf(`,"campaignId":1`), "invalid_field", "campaignId"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := key
			if strings.Contains(c.path, "linkrunner") {
				h = bearer(backend)
			}
			start := time.Now()
			res := r.do(t, req{path: c.path, body: c.body, header: h})
			wantJSONError(t, c.name, res.status, res.header.Get("Content-Type"), res.body, 400, c.code)
			if e := decode[refused](t, res.body); e.Error.Field != c.field {
				t.Errorf("field %q, want %q (%s)", e.Error.Field, c.field, res.body)
			}
			if took := time.Since(start); took > time.Second {
				t.Errorf("took %v", took)
			}
		})
	}

	t.Run("16 KiB of headers", func(t *testing.T) {
		// Over raw connections: an HTTP client still writing its headers when the relay
		// answers and closes may see a reset instead of the reply.
		for _, h := range []string{
			"X-Pad: " + strings.Repeat("a", 16<<10),
			"Cookie: " + strings.Repeat("c=1; ", 16<<10/5),
		} {
			c := r.dial(t)
			_, _ = io.WriteString(c, rawRequest("/v1/ens/click", "X-Relay-Key: "+shopKey+"\r\n"+h+"\r\n", ensBody))
			replies, _ := readReplies(c, 3*time.Second)
			if len(replies) != 1 {
				t.Fatalf("%d replies to a 16 KiB header, want one 431", len(replies))
			}
			wantJSONError(t, "16 KiB header", replies[0].status, replies[0].header.Get("Content-Type"), replies[0].body, 431, "headers_too_large")
		}
		// Many small header lines add up the same way.
		c := r.dial(t)
		var lines strings.Builder
		for i := range 1024 {
			fmt.Fprintf(&lines, "X-H%d: %s\r\n", i, strings.Repeat("v", 10))
		}
		_, _ = io.WriteString(c, rawRequest("/v1/ens/click", "X-Relay-Key: "+shopKey+"\r\n"+lines.String(), ensBody))
		replies, closed := readReplies(c, 3*time.Second)
		if len(replies) != 1 || !closed {
			t.Fatalf("%d replies (closed %v), want one 431", len(replies), closed)
		}
		wantJSONError(t, "1024 header lines", replies[0].status, replies[0].header.Get("Content-Type"), replies[0].body, 431, "headers_too_large")
	})
	r.healthy(t, "hostile headers and JSON")
	for _, p := range []string{"ens", "linkrunner", "brevo", "bannerflex", "cardlytics"} {
		want := map[string]int{"ens": 1}[p]
		if n := len(r.entries(t, p)); n != want {
			t.Errorf("%d %s entries, want %d", n, p, want)
		}
	}
}

// TestHostileHugeArrays: arrays that fill the body limit (the production default,
// 64 KiB) with as many elements as fit are judged by the schema quickly, all-or-nothing,
// and never queued in part.
func TestHostileHugeArrays(t *testing.T) {
	const limit = 65536
	r := startRelayWith(t, func(c *config.Config) { c.Server.MaxBodyBytes = limit })
	// fill is prefix, then item repeated (comma-separated) as often as fits, then suffix.
	fill := func(prefix, item, suffix string) string {
		n := (limit - len(prefix) - len(suffix) + 1) / (len(item) + 1)
		return prefix + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + suffix
	}
	item := `{"route":"ens/click","body":` + ensBody + `}`
	cdlxEvent := cdlxBody[len(`{"clientEvents":[`) : len(cdlxBody)-2]
	cases := []struct {
		name, path, body string
		header           map[string]string
		status           int
		code, field      string
	}{
		// Over strictjson.MaxValues: refused by the pre-pass where the cap is reached, before
		// the tree costs a hundred times the body (the 10001st value).
		{"zeros in an unknown field", "/v1/ens/click", fill(`{"campaignId":1,"placement":"a","x":[`, "0", `]}`),
			shop(), 400, "invalid_json", "x[9996]"},
		// In a batch the cap is about the whole body: named "events", so the SDK halves its
		// batches instead of dropping the item where the count happened to cross it.
		{"empty objects as a batch", "/v1/batch", fill(`{"events":[`, "{}", `]}`), shop(), 400, "invalid_json", "events"},
		{"empty arrays as a batch", "/v1/batch", fill(`{"events":[`, "[]", `]}`), shop(), 400, "invalid_json", "events"},
		{"as many events as fit in a batch", "/v1/batch", fill(`{"events":[`, item, `]}`), shop(), 400, "invalid_field", "events"},
		{"100 events, the batch limit", "/v1/batch", `{"events":[` + strings.TrimSuffix(strings.Repeat(item+",", 100), ",") + `]}`,
			shop(), 202, "", ""},
		{"101 events", "/v1/batch", `{"events":[` + strings.TrimSuffix(strings.Repeat(item+",", 101), ",") + `]}`,
			shop(), 400, "invalid_field", "events"},
		{"strings in linkrunner event_data", "/v1/linkrunner/capture-event",
			fill(`{"event_name":"e","user_id":"u","event_data":{"list":[`, `"x"`, `]}}`),
			bearer(backend), 0, "", ""}, // per schema: 202 or 400, either at once
		{"nulls in linkrunner event_data", "/v1/linkrunner/capture-event",
			fill(`{"event_name":"e","user_id":"u","event_data":{"list":[`, `null`, `]}}`), bearer(backend), 0, "", ""},
		{"cardlytics events", "/v1/cardlytics/client-events", fill(`{"clientEvents":[`, cdlxEvent, `]}`),
			map[string]string{"Authorization": "Bearer " + backend, "X-Relay-Customer-Id": "cust-1"}, 400, "invalid_field", "clientEvents"},
		{"brevo identifiers", "/v1/brevo/events", fill(`{"event_name":"e","identifiers":{"email_id":"a@example.com"},"event_properties":{"l":[`, `1`, `]}}`),
			bearer(backend), 0, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if len(c.body) > limit {
				t.Fatalf("test body of %d bytes is over the limit", len(c.body))
			}
			start := time.Now()
			res := r.do(t, req{path: c.path, body: c.body, header: c.header})
			took := time.Since(start)
			if took > time.Second {
				t.Errorf("took %v", took)
			}
			switch {
			case c.status == 0 && res.status != 202 && res.status != 400:
				t.Errorf("status %d, want 202 or 400: %s", res.status, res.body)
			case c.status != 0 && res.status != c.status:
				t.Errorf("status %d, want %d: %.300s", res.status, c.status, res.body)
			case c.code != "":
				if e := decode[refused](t, res.body); e.Error.Code != c.code || e.Error.Field != c.field {
					t.Errorf("reply %.300s, want %s at %q", res.body, c.code, c.field)
				}
			}
			t.Logf("%d bytes: %d after %v: %.120s", len(c.body), res.status, took, res.body)
		})
	}
	if n := len(r.entries(t, "ens")); n != 100 {
		t.Errorf("%d ens entries, want the 100 of the one batch at the limit", n)
	}
	if n := len(r.entries(t, "cardlytics")); n != 0 {
		t.Errorf("%d cardlytics entries, want none", n)
	}
}

// TestHostileControlCharacters: CR, LF and NUL sent escaped inside JSON strings stay
// escaped inside the stored JSON body (never raw bytes a header or log line could
// carry), and every way of putting them in X-Relay-Customer-Id, the value that becomes
// an upstream header, is refused before anything is queued. The upstream side (no header
// can be injected from a stored event) is providers/injection_test.go.
func TestHostileControlCharacters(t *testing.T) {
	r := startRelay(t)
	hostile := `a\r\nX-Injected: 1\r\n\r\nGET / HTTP/1.1\u0000b\u2028c`
	res := r.do(t, req{path: "/v1/linkrunner/capture-event", header: bearer(backend),
		body: `{"event_name":"e","event_data":{"note":"` + hostile + `"},"user_id":"user-1"}`})
	if res.status != http.StatusAccepted {
		t.Fatalf("escaped control characters in a free-form string: %d %s", res.status, res.body)
	}
	e := r.entries(t, "linkrunner")
	if len(e) != 1 {
		t.Fatalf("%d entries", len(e))
	}
	stored := e[0]["body"].(string)
	if strings.ContainsAny(stored, "\r\n\x00") {
		t.Errorf("stored body holds raw control characters: %q", stored)
	}
	var got struct {
		EventData struct{ Note string } `json:"event_data"`
	}
	if err := json.Unmarshal([]byte(stored), &got); err != nil || got.EventData.Note != "a\r\nX-Injected: 1\r\n\r\nGET / HTTP/1.1\x00b\u2028c" {
		t.Errorf("stored body %q does not keep the string (%v)", stored, err)
	}
	for k, v := range e[0] {
		if s, ok := v.(string); ok && k != "body" && strings.ContainsAny(s, "\r\n\x00") {
			t.Errorf("entry field %s holds a control character: %q", k, s)
		}
	}
	// Raw control bytes inside a JSON string are not JSON.
	for _, raw := range []string{"\r\n", "\x00", "\n"} {
		res := r.do(t, req{path: "/v1/linkrunner/capture-event", header: bearer(backend),
			body: `{"event_name":"e","event_data":{"note":"a` + raw + `b"},"user_id":"user-1"}`})
		wantJSONError(t, fmt.Sprintf("raw %q in a string", raw), res.status, res.header.Get("Content-Type"), res.body, 400, "invalid_json")
	}
	// Identity values that become upstream headers refuse them in every form: the
	// Cardlytics customer header, over raw TCP (a client can send what net/http would
	// not: bare CR, bare LF, NUL, obs-fold, other controls, 8-bit bytes)...
	for _, value := range []string{
		"cust-1\rX-Evil: 1", "cust-1\nX-Evil: 1", "cust-1\x00X-Evil: 1", "cust-1\r\n X-Evil: 1",
		"cust-1\r\n\tX-Evil: 1", "cust-1%0d%0aX-Evil:%201", "cust-1\tX-Evil: 1", "cust 1", "cust-1\x7f",
		"cust-1\x1b", "cust-\xc3\xa9", "cust-\xff",
	} {
		c := r.dial(t)
		_, _ = io.WriteString(c, rawRequest("/v1/cardlytics/client-events",
			"Authorization: Bearer "+backend+"\r\nX-Relay-Customer-Id: "+value+"\r\n", cdlxBody))
		replies, _ := readReplies(c, 2*time.Second)
		switch {
		case len(replies) != 1:
			t.Errorf("customer header %q: %d replies, want one", value, len(replies))
		case replies[0].status == 400:
		case replies[0].status == 202 && value == "cust-1\nX-Evil: 1":
			// A bare LF ends a header line (RFC 9112 lets a recipient accept it): the
			// customer is "cust-1" and X-Evil a header of its own, which goes nowhere.
			e := r.entries(t, "cardlytics")
			if len(e) != 1 || e[0]["customer"] != "cust-1" {
				t.Errorf("customer header %q: stored %v", value, e)
			}
			if err := r.rdb.Del(context.Background(), "t:{cardlytics}:events").Err(); err != nil {
				t.Fatal(err)
			}
		default:
			t.Errorf("customer header %q: %d %s, want 400", value, replies[0].status, replies[0].body)
		}
	}
	// ...and the customer_id claim of a signed identity token.
	tok := identityToken(t, idSecret, jwt.MapClaims{"sub": "u", "customer_id": "cust-1\r\nX-Evil: 1",
		"exp": time.Now().Add(time.Hour).Unix()}, jwt.SigningMethodHS256)
	res = r.do(t, req{path: "/v1/cardlytics/client-events", body: cdlxBody,
		header: map[string]string{"X-Relay-Key": idKey, "Origin": idOrigin, "X-Relay-Identity": tok}})
	wantJSONError(t, "customer_id claim with CR LF", res.status, res.header.Get("Content-Type"), res.body, 400, "invalid_field")
	if n := len(r.entries(t, "cardlytics")); n != 0 {
		t.Errorf("%d cardlytics entries queued with a hostile customer id", n)
	}
	// The relay's own reply never echoes a control character from the request either.
	res = r.do(t, req{path: "/v1/ens/click", header: map[string]string{"X-Relay-Key": shopKey},
		body: `{"campaignId":1,"placement":"a","x\r\nSet-Cookie: a=b":1}`})
	if res.status != 400 || len(res.header.Values("Set-Cookie")) != 0 || strings.ContainsAny(res.body, "\r\n") {
		t.Errorf("unknown field named with CR LF: %d %v %q", res.status, res.header, res.body)
	}
}

// TestHostileMethodsAndContentTypes: anything but POST (and OPTIONS) is 405 with Allow;
// any content type but JSON or text/plain in UTF-8 is 415; both as JSON.
func TestHostileMethodsAndContentTypes(t *testing.T) {
	r := startRelay(t)
	for _, m := range []string{"GET", "PUT", "DELETE", "PATCH", "TRACE", "PROPFIND", "post"} {
		for _, path := range []string{"/v1/ens/click", "/v1/batch"} {
			res := r.do(t, req{method: m, path: path, body: ensBody, header: shop()})
			wantJSONError(t, m+" "+path, res.status, res.header.Get("Content-Type"), res.body, 405, "method_not_allowed")
			if res.header.Get("Allow") != "POST, OPTIONS" {
				t.Errorf("%s %s: Allow %q", m, path, res.header.Get("Allow"))
			}
		}
	}
	if res := r.do(t, req{method: "HEAD", path: "/v1/ens/click", header: shop()}); res.status != 405 {
		t.Errorf("HEAD: %d", res.status)
	}
	for _, ct := range []string{
		"", "application/xml", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded",
		"text/html", "application/json-patch+json", "application/jsonx", "text/plain-x", "application/javascript",
		"application/json; charset=utf-16", "text/plain;charset=UTF-16LE", "application/json; charset=\"latin1\"",
		"application/json; boundary=x; charset=utf-16", "text/plain; foo=bar; charset=iso-8859-1",
		"application/json; charset=utf-8; charset=utf-16", "application/json, text/html",
	} {
		h := map[string]string{"X-Relay-Key": shopKey, "Content-Type": ct}
		res := r.do(t, req{path: "/v1/ens/click", body: ensBody, header: h})
		wantJSONError(t, fmt.Sprintf("Content-Type %q", ct), res.status, res.header.Get("Content-Type"), res.body, 415, "unsupported_media_type")
	}
	for _, ct := range []string{"application/json", "APPLICATION/JSON", "text/plain;charset=UTF-8", "application/json; charset=\"utf-8\""} {
		h := map[string]string{"X-Relay-Key": shopKey, "Content-Type": ct}
		if res := r.do(t, req{path: "/v1/ens/click", body: ensBody, header: h}); res.status != 202 {
			t.Errorf("Content-Type %q: %d %s", ct, res.status, res.body)
		}
	}
	if n := len(r.entries(t, "ens")); n != 4 {
		t.Errorf("%d ens entries, want the 4 accepted content types", n)
	}
}

// TestHostileOrigins: an Origin that is not byte-for-byte one of the key's site's
// origins is refused (403, no Access-Control-Allow-Origin), on the request itself and on
// its preflight; a client token never works from a browser.
func TestHostileOrigins(t *testing.T) {
	r := startRelay(t)
	origins := []string{
		"null", "NULL", shopOrig + ".evil.test", "https://evil.test", "http://shop.example.com",
		"https://shop.example.com:8443", "https://shop.example.com:443", "https://SHOP.example.com",
		"HTTPS://shop.example.com", "https://shop.example.com/", "https://shop.example.com/path",
		"https://shop.example.com.", "https://user@shop.example.com", "https://evil.test@shop.example.com",
		"https://shop.example.com, https://evil.test", "https://evil.test, " + shopOrig, "https://shop.example.com%2eevil.test",
		"https://xn--shp-sna.example.com", "https://sh\u00f6p.example.com", "https://shop.example.co",
		"https://hop.example.com", "ttps://shop.example.com", "//shop.example.com", "shop.example.com",
		"https://shop.example.com\\@evil.test", "*", idOrigin, "https://trust.example.com",
	}
	for _, o := range origins {
		res := r.do(t, req{path: "/v1/ens/click", body: ensBody, header: map[string]string{"X-Relay-Key": shopKey, "Origin": o}})
		wantJSONError(t, "Origin "+o, res.status, res.header.Get("Content-Type"), res.body, 403, "forbidden")
		if v := res.header.Values("Access-Control-Allow-Origin"); len(v) != 0 {
			t.Errorf("Origin %q: Access-Control-Allow-Origin %q on a refusal", o, v)
		}
		// Key in the query string (sendBeacon) is checked the same way.
		res = r.do(t, req{path: "/v1/ens/click?key=" + shopKey, body: ensBody, header: map[string]string{"Origin": o, "Content-Type": "text/plain"}})
		if res.status != 403 || len(res.header.Values("Access-Control-Allow-Origin")) != 0 {
			t.Errorf("beacon from %q: %d, ACAO %q", o, res.status, res.header.Values("Access-Control-Allow-Origin"))
		}
		pre := r.do(t, req{method: "OPTIONS", path: "/v1/ens/click?key=" + shopKey, header: map[string]string{
			"Origin": o, "Access-Control-Request-Method": "POST"}})
		if pre.status != 403 || len(pre.header.Values("Access-Control-Allow-Origin")) != 0 {
			t.Errorf("preflight from %q: %d, ACAO %q", o, pre.status, pre.header.Values("Access-Control-Allow-Origin"))
		}
	}
	// A valid origin of one site with another site's key.
	for _, c := range []struct{ key, origin string }{{idKey, shopOrig}, {trustKey, shopOrig}, {shopKey, "https://money.example.com"}} {
		res := r.do(t, req{path: "/v1/ens/click", body: ensBody, header: map[string]string{"X-Relay-Key": c.key, "Origin": c.origin}})
		if res.status != 403 || len(res.header.Values("Access-Control-Allow-Origin")) != 0 {
			t.Errorf("key %s from %s: %d, ACAO %q", c.key, c.origin, res.status, res.header.Values("Access-Control-Allow-Origin"))
		}
	}
	// A client token with any Origin, allowed ones included, on every kind of route.
	for _, o := range []string{shopOrig, "null", "https://evil.test"} {
		for _, c := range []struct{ path, body string }{{"/v1/ens/click", ensBody}, {"/v1/batch", `{"events":[{"route":"ens/click","body":` + ensBody + `}]}`},
			{"/v1/linkrunner/capture-event", lrEvent}} {
			res := r.do(t, req{path: c.path, body: c.body, header: map[string]string{"Authorization": "Bearer " + backend, "Origin": o}})
			wantJSONError(t, "token from "+o, res.status, res.header.Get("Content-Type"), res.body, 403, "forbidden")
			if len(res.header.Values("Access-Control-Allow-Origin")) != 0 {
				t.Errorf("token from %q: ACAO %q", o, res.header.Values("Access-Control-Allow-Origin"))
			}
		}
	}
	// Two Origin headers (no browser sends that): refused whichever comes first.
	for _, pair := range [][2]string{{shopOrig, "https://evil.test"}, {"https://evil.test", shopOrig}} {
		c := r.dial(t)
		_, _ = io.WriteString(c, rawRequest("/v1/ens/click", "X-Relay-Key: "+shopKey+"\r\nOrigin: "+pair[0]+"\r\nOrigin: "+pair[1]+"\r\n", ensBody))
		replies, _ := readReplies(c, 2*time.Second)
		if len(replies) != 1 || replies[0].status != 403 || len(replies[0].header.Values("Access-Control-Allow-Origin")) != 0 {
			t.Errorf("two Origin headers %q: %v", pair, replies)
		}
	}
	for _, p := range []string{"ens", "linkrunner"} {
		if n := len(r.entries(t, p)); n != 0 {
			t.Errorf("%d %s entries queued from refused origins", n, p)
		}
	}
}

// TestHostileForwardedFor: behind a trusted proxy (127.0.0.0/8 here) the limiter keys on
// the rightmost address the proxies did not add, whatever the client wrote to the left of
// it, in one header line or in several.
func TestHostileForwardedFor(t *testing.T) {
	r := startRelayWith(t, func(c *config.Config) { c.Server.TrustedProxies = []string{"127.0.0.0/8"} })
	const client = "203.0.113.9"
	send := func(xff ...string) resp {
		hr, _ := http.NewRequest(http.MethodPost, r.url+"/v1/ens/click", strings.NewReader(ensBody))
		hr.Header.Set("Content-Type", "application/json")
		for k, v := range tight() {
			hr.Header.Set(k, v)
		}
		for _, v := range xff {
			hr.Header.Add("X-Forwarded-For", v)
		}
		res, err := httpClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return resp{status: res.StatusCode, header: res.Header, body: string(b)}
	}
	// The tight site allows a burst of 5 per address.
	for i := range 5 {
		if res := send(client); res.status != 202 {
			t.Fatalf("request %d from %s: %d %s", i, client, res.status, res.body)
		}
	}
	for _, xff := range [][]string{
		{client},
		{"198.51.100.1, " + client}, // the client's own left part is ignored
		{"198.51.100.2, " + client + ", 127.0.0.5"}, // a chain of trusted proxies is skipped
		{"198.51.100.3", client},                    // a proxy that appends a header line
		{"198.51.100.4", client + ", 127.0.0.9"},
		{"garbage, " + client},
	} {
		if res := send(xff...); res.status != http.StatusTooManyRequests {
			t.Errorf("X-Forwarded-For %q escaped %s's limit: %d", xff, client, res.status)
		}
	}
	// Another address behind the proxy has its own bucket, and it is what gets stored.
	if res := send("198.51.100.50, 203.0.113.10"); res.status != 202 {
		t.Fatalf("another client behind the proxy: %d %s", res.status, res.body)
	}
	e := r.entries(t, "ens")
	if len(e) != 6 || e[0]["ip"] != client || e[5]["ip"] != "203.0.113.10" {
		t.Errorf("stored client addresses: %v", e)
	}
	// Unparseable last entry: keyed on the proxy itself, never on a client-chosen value.
	for range 6 {
		send("198.51.100.60, not-an-ip")
	}
	if res := send("198.51.100.61, not-an-ip"); res.status != http.StatusTooManyRequests {
		t.Errorf("a malformed X-Forwarded-For is a fresh bucket each time: %d", res.status)
	}
}
