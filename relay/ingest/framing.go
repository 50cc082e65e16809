package ingest

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// errAmbiguousFraming refuses a request whose framing another HTTP parser could read
// differently; see ambiguousFraming.
var errAmbiguousFraming = &apiError{status: fasthttp.StatusBadRequest, code: codeBadRequest,
	message: "ambiguous message framing (Transfer-Encoding with Content-Length, or a folded header line)"}

// ambiguousFraming reports a request whose body a proxy in front of the relay might
// frame differently from fasthttp, so that a request hidden in this one's body would be
// read as the next request on the connection (request smuggling):
//   - Transfer-Encoding together with Content-Length: fasthttp follows Transfer-Encoding
//     but keeps the connection open, where RFC 9112 (section 6.3) requires closing it;
//   - a header line folded onto a continuation line (obs-fold, RFC 9112 section 5.2):
//     fasthttp joins it to the line before, a proxy may read it as a header of its own.
//
// The caller refuses such a request and closes the connection, so nothing sent after it
// on that connection is ever read. It reads the raw header block, which is empty for a
// request that did not come off the wire.
func ambiguousFraming(h *fasthttp.RequestHeader) bool {
	raw := h.RawHeaders()
	te, cl := false, false
	for len(raw) > 0 {
		var line []byte
		line, raw, _ = bytes.Cut(raw, []byte("\n"))
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			return true
		}
		name, _, ok := bytes.Cut(line, []byte(":"))
		switch {
		case !ok:
		case bytes.EqualFold(name, []byte(fasthttp.HeaderTransferEncoding)):
			te = true
		case bytes.EqualFold(name, []byte(fasthttp.HeaderContentLength)):
			cl = true
		}
	}
	return te && cl
}
