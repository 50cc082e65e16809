package ingest

import (
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/eventrelay/relay/strictjson"
)

// Error codes of the ingest API beyond the validation codes of strictjson and providers.
const (
	codeNotFound         = "not_found"
	codeMethod           = "method_not_allowed"
	codeUnauthorized     = "unauthorized"
	codeForbidden        = "forbidden"
	codeRateLimited      = "rate_limited"
	codeTooLarge         = "body_too_large"
	codeUnsupportedType  = "unsupported_media_type"
	codeUnavailable      = "unavailable"
	codeIdentityRequired = "identity_required"
	codeInvalidIdentity  = "invalid_identity"
	codeHeaderTooLarge   = "headers_too_large"
	codeBadRequest       = "bad_request"
	codeInvalidField     = "invalid_field"
)

// maxMessage caps messages that may quote caller-supplied names.
const maxMessage = 200

// apiError is a refusal: status plus the body's error object.
type apiError struct {
	status  int
	code    string
	field   string
	message string
	// retryAfter, in whole seconds, is sent as Retry-After when > 0.
	retryAfter int
	// wide marks a refusal of the whole request (its identity token, its consent
	// statement), which a batch reports as it is instead of naming the item (itemRefusal).
	wide bool
}

func (e *apiError) Error() string { return e.message }

func writeError(ctx *fasthttp.RequestCtx, e *apiError) {
	ctx.SetStatusCode(e.status)
	ctx.SetContentType("application/json")
	if e.retryAfter > 0 {
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	msg := e.message
	if len(msg) > maxMessage {
		msg = msg[:maxMessage] + "…"
	}
	b := make([]byte, 0, 96+len(msg)+len(e.field))
	b = append(b, `{"ok":false,"error":{"code":`...)
	b = strictjson.AppendString(b, e.code)
	if e.field != "" {
		b = append(b, `,"field":`...)
		b = strictjson.AppendString(b, truncate(e.field))
	}
	b = append(b, `,"message":`...)
	b = strictjson.AppendString(b, msg)
	b = append(b, "}}"...)
	ctx.SetBody(b)
}

func truncate(s string) string {
	if len(s) > maxMessage {
		return s[:maxMessage] + "…"
	}
	return s
}

// writeAccepted answers 202 {"ok":true,"ids":[...]}. dropped is nil when every event was
// queued; otherwise it parallels ids, and each id with a reason is added to the object
// "filtered" ({"<id>":"deny"}): answered, never queued (docs/api.md, "Event filters").
func writeAccepted(ctx *fasthttp.RequestCtx, ids, dropped []string) {
	ctx.SetStatusCode(fasthttp.StatusAccepted)
	ctx.SetContentType("application/json")
	var one [128]byte // enough for one generated id: no allocation on the hot path
	buf := one[:0]
	buf = append(buf, `{"ok":true,"ids":[`...)
	for i, id := range ids {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strictjson.AppendString(buf, id)
	}
	buf = append(buf, ']')
	if dropped != nil {
		buf = append(buf, `,"filtered":{`...)
		first := true
		for i, r := range dropped {
			if r == "" {
				continue
			}
			if !first {
				buf = append(buf, ',')
			}
			first = false
			buf = strictjson.AppendString(buf, ids[i])
			buf = append(buf, ':')
			buf = strictjson.AppendString(buf, r)
		}
		buf = append(buf, '}')
	}
	buf = append(buf, '}')
	ctx.SetBody(buf) // copies
}
