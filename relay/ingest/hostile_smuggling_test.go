package ingest_test

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Request smuggling against the fasthttp listener, over raw TCP on 127.0.0.1. Every case
// hides a second request (a BannerFlex event with a unique campaignId marker) inside
// what one reading of the framing headers takes for the body of an outer request. The
// relay may answer the outer request, but the hidden request must never be
// processed: no second reply on the connection, and no queued entry with its marker.
// Since the relay refuses ambiguous framing outright (framing.go), the outer request
// gets a 400 in every case here.

const smuggleBanner = "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f"

// bfEvent is a valid BannerFlex event body with the given campaign marker.
func bfEvent(campaign string) string {
	return `{"bannerId":"` + smuggleBanner + `","event":"impression","campaignId":"bnrflx-` + campaign + `"}`
}

// hiddenRequest is the smuggled request: complete, valid, with a key, on its own the
// relay would queue it.
func hiddenRequest(marker string) string {
	body := bfEvent(marker)
	return "POST /v1/bannerflex/banner-events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Relay-Key: " + shopKey +
		"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// chunk frames s as one chunk.
func chunk(s string) string { return strconv.FormatInt(int64(len(s)), 16) + "\r\n" + s + "\r\n" }

// smuggle is one attack: framing header lines and the bytes after the header block.
// inBody marks the cases where the hidden request is plainly inside a body framed by
// Content-Length alone: the outer request gets its 400 and the connection may stay open.
// Every other case has framing some HTTP parser reads differently from fasthttp, and must
// get exactly one 400 (413 or 501 would do) and the connection closed.
type smuggle struct {
	name    string
	framing string // header lines, each ending in CRLF
	rest    string // everything after the blank line
	inBody  bool
}

// smuggleCases builds every attack for one pair of markers: outer is the outer event's
// campaign (valid if the server reads the framing one way), hidden the smuggled one's.
func smuggleCases(outer, hidden string) []smuggle {
	ob, hr := bfEvent(outer), hiddenRequest(hidden)
	// CL.TE: Content-Length covers everything; chunked ends after the outer body, so a
	// server reading chunked sees the hidden request next on the connection.
	clte := chunk(ob) + "0\r\n\r\n" + hr
	cl := func(n int) string { return "Content-Length: " + strconv.Itoa(n) + "\r\n" }
	// TE.CL: the chunk holds the hidden request; Content-Length covers only the chunk-size
	// line, so a server reading Content-Length sees the hidden request next.
	sizeLine := strconv.FormatInt(int64(len(hr)), 16) + "\r\n"
	tecl := sizeLine + hr + "\r\n0\r\n\r\n"
	var out []smuggle
	for _, te := range []struct{ name, line string }{
		{"chunked", "Transfer-Encoding: chunked\r\n"},
		{"trailing space", "Transfer-Encoding: chunked \r\n"},
		{"tab", "Transfer-Encoding:\tchunked\r\n"},
		{"upper case", "TRANSFER-ENCODING: CHUNKED\r\n"},
		{"xchunked", "Transfer-Encoding: xchunked\r\n"},
		{"chunked, identity", "Transfer-Encoding: chunked, identity\r\n"},
		{"identity, chunked", "Transfer-Encoding: identity, chunked\r\n"},
		{"space before colon", "Transfer-Encoding : chunked\r\n"},
		{"obs-fold", "X-Pad: a\r\n Transfer-Encoding: chunked\r\n"},
		{"obs-fold value", "Transfer-Encoding:\r\n chunked\r\n"},
		{"vertical tab", "Transfer-Encoding:\x0bchunked\r\n"},
		{"quoted", "Transfer-Encoding: \"chunked\"\r\n"},
		{"two lines", "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n"},
		{"bare LF", "X-Pad: a\nTransfer-Encoding: chunked\r\n"},
	} {
		out = append(out,
			smuggle{"CL.TE " + te.name, cl(len(clte)) + te.line, clte, false},
			smuggle{"TE.CL " + te.name, te.line + cl(len(sizeLine)), tecl, false})
	}
	twoCL := ob + hr
	return append(out,
		smuggle{"CL.TE identity", cl(len(clte)) + "Transfer-Encoding: identity\r\n", clte, false},
		smuggle{"two Content-Lengths, short first", cl(len(ob)) + cl(len(twoCL)), twoCL, false},
		smuggle{"two Content-Lengths, long first", cl(len(twoCL)) + cl(len(ob)), twoCL, false},
		smuggle{"Content-Length list", "Content-Length: " + strconv.Itoa(len(ob)) + ", " + strconv.Itoa(len(twoCL)) + "\r\n", twoCL, false},
		smuggle{"Content-Length with sign", "Content-Length: +" + strconv.Itoa(len(ob)) + "\r\n", twoCL, false},
		smuggle{"chunk size with 0x", "Transfer-Encoding: chunked\r\n", "0x" + tecl, false},
		smuggle{"chunk size overflow", "Transfer-Encoding: chunked\r\n", "10000000000000000" + tecl, false},
		smuggle{"negative chunk size", "Transfer-Encoding: chunked\r\n", "-" + tecl, false},
		// The hidden request is the outer body itself: framed by Content-Length, it is
		// only ever a body (not JSON: 400)...
		smuggle{"request inside a body", cl(len(hr)), hr, true},
		// ...and inside a JSON string, escaped: still only a body (a field the schema
		// refuses: 400).
		smuggle{"request inside a JSON string", cl(len(withNote(ob, hr))), withNote(ob, hr), true},
	)
}

// withNote returns the event ob with a "note" member holding s as a JSON string.
func withNote(ob, s string) string {
	q := strconv.Quote(s) // Go's quoting of this ASCII text is valid JSON
	return strings.TrimSuffix(ob, "}") + `,"note":` + q + `}`
}

func TestHostileRequestSmuggling(t *testing.T) {
	r := startRelay(t)
	cases := smuggleCases("outer-0", "smuggled-0")
	for i := range cases {
		outer, hidden := "outer-"+strconv.Itoa(i), "smuggled-"+strconv.Itoa(i)
		c := smuggleCases(outer, hidden)[i]
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conn := r.dial(t)
			head := "POST /v1/bannerflex/banner-events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Relay-Key: " + shopKey +
				"\r\nContent-Type: application/json\r\n" + c.framing + "\r\n"
			if _, err := io.WriteString(conn, head+c.rest); err != nil {
				t.Fatal(err)
			}
			replies, closed := readReplies(conn, 700*time.Millisecond)
			var got []string
			for _, rep := range replies {
				got = append(got, fmt.Sprintf("%d %.100s", rep.status, rep.body))
			}
			switch {
			case len(replies) != 1:
				t.Errorf("%d replies on one connection, want one (a second means the hidden request was served): %q", len(replies), got)
			case replies[0].status != 400 && replies[0].status != 413 && replies[0].status != 501:
				t.Errorf("reply %q, want 400", got)
			case !c.inBody && !closed:
				t.Errorf("reply %q, but the connection was left open: what follows would be read as a request", got)
			}
			for _, e := range r.entries(t, "bannerflex") {
				if strings.Contains(e["body"].(string), "bnrflx-"+hidden+`"`) {
					t.Errorf("the hidden request was queued: %v", e)
				}
			}
			t.Logf("replies %q, closed %v", got, closed)
		})
	}
	t.Cleanup(func() {
		for _, e := range r.entries(t, "bannerflex") {
			if strings.Contains(e["body"].(string), "smuggled") {
				t.Errorf("a hidden request was queued: %v", e)
			}
		}
		r.healthy(t, "smuggling attempts")
	})
}

// TestPipeliningStillServed is the control for the smuggling cases: well-framed requests
// pipelined on one connection, chunked or not, are all served in order.
func TestPipeliningStillServed(t *testing.T) {
	r := startRelay(t)
	conn := r.dial(t)
	head := "POST /v1/bannerflex/banner-events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Relay-Key: " + shopKey +
		"\r\nContent-Type: application/json\r\n"
	one, two := bfEvent("pipelined-1"), bfEvent("pipelined-2")
	text := head + "Content-Length: " + strconv.Itoa(len(one)) + "\r\n\r\n" + one +
		head + "Transfer-Encoding: chunked\r\n\r\n" + chunk(two[:10]) + chunk(two[10:]) + "0\r\n\r\n" +
		strings.Replace(hiddenRequest("pipelined-3"), "\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1)
	if _, err := io.WriteString(conn, text); err != nil {
		t.Fatal(err)
	}
	replies, closed := readReplies(conn, 2*time.Second)
	if !closed {
		t.Error("Connection: close on the last request did not close the connection")
	}
	if len(replies) != 3 || replies[0].status != 202 || replies[1].status != 202 || replies[2].status != 202 {
		t.Fatalf("pipelined requests: %v", replies)
	}
	e := r.entries(t, "bannerflex")
	if len(e) != 3 || !strings.Contains(e[0]["body"].(string), "pipelined-1") || !strings.Contains(e[1]["body"].(string), "pipelined-2") {
		t.Fatalf("entries %v", e)
	}
}
