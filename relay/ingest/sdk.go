package ingest

import (
	"bytes"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/sdk"
)

// SDKPath is where the browser SDK (package sdk) is served, by GET and HEAD.
const SDKPath = "/v1/relay.js"

// sdkCacheControl lets browsers and CDNs keep the script for an hour, then revalidate with
// its ETag: a relay upgrade reaches pages within the hour, and a page load costs no
// request to the relay meanwhile.
const sdkCacheControl = "public, max-age=3600"

// serveSDK answers GET and HEAD on SDKPath with the minified script, gzip-encoded when the
// client accepts it, and 304 when If-None-Match holds the representation's ETag. It needs
// no key and no CORS headers: a <script> tag loads it without CORS, and whether a page may
// load it is the page's Content-Security-Policy.
func (s *Server) serveSDK(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	if !ctx.IsGet() && !ctx.IsHead() {
		h.Set("Allow", "GET, HEAD")
		writeError(ctx, &apiError{status: fasthttp.StatusMethodNotAllowed, code: codeMethod, message: "use GET"})
		return
	}
	script, err := sdk.Served()
	if err != nil {
		// Cannot happen with the embedded source (sdk's tests build it); answer, never panic.
		s.log.Error("browser SDK unavailable", zap.Error(err))
		writeError(ctx, &apiError{status: fasthttp.StatusServiceUnavailable, code: codeUnavailable,
			message: "the browser SDK is unavailable", retryAfter: 60})
		return
	}
	body, tag := script.JS, script.ETag
	if ctx.Request.Header.HasAcceptEncoding("gzip") {
		body, tag = script.Gzip, script.GzipETag
		h.SetContentEncoding("gzip")
	}
	h.SetContentType("text/javascript; charset=utf-8")
	h.Set("ETag", tag)
	h.Set("Cache-Control", sdkCacheControl)
	h.Set("Vary", "Accept-Encoding")
	h.Set("X-Content-Type-Options", "nosniff")
	// Pages that isolate themselves (Cross-Origin-Embedder-Policy) may still load it.
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	if etagMatches(ctx.Request.Header.Peek("If-None-Match"), tag) {
		h.Del("Content-Encoding")
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	// For HEAD, fasthttp sends the Content-Length of body but not body itself.
	ctx.SetBody(body)
}

// etagMatches implements If-None-Match's weak comparison (RFC 9110 13.1.2): "*", or any
// listed tag equal to tag once a W/ prefix is removed.
func etagMatches(header []byte, tag string) bool {
	for len(header) > 0 {
		var item []byte
		item, header, _ = bytes.Cut(header, []byte(","))
		item = bytes.TrimPrefix(bytes.TrimSpace(item), []byte("W/"))
		if string(item) == "*" || string(item) == tag {
			return true
		}
	}
	return false
}
