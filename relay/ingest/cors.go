package ingest

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/eventrelay/relay/providers"
)

const (
	corsMethods = "POST, OPTIONS"
	corsHeaders = "Content-Type, X-Relay-Key, X-Relay-Identity, Idempotency-Key, X-Relay-Consent"
)

// errSeveralOrigins refuses a request with more than one Origin header, which no browser
// sends: the relay would check one while an intermediary might act on another.
var errSeveralOrigins = &apiError{status: fasthttp.StatusForbidden, code: codeForbidden,
	message: "more than one Origin header"}

// requestOrigin returns the request's Origin, empty when it has none; ok is false when
// it has several. The bytes are the request's: valid only while the handler runs.
func requestOrigin(h *fasthttp.RequestHeader) (origin []byte, ok bool) {
	switch all := h.PeekAll(fasthttp.HeaderOrigin); len(all) {
	case 0:
		return nil, true
	case 1:
		return all[0], true
	default:
		return nil, false
	}
}

// Header names and values set on most responses, in fasthttp's canonical form so that
// setting them skips the normalizing copy.
var (
	headerAllowOrigin   = []byte("Access-Control-Allow-Origin")
	headerExposeHeaders = []byte("Access-Control-Expose-Headers")
	headerVary          = []byte("Vary")
	valueRetryAfter     = []byte("Retry-After")
	valueOrigin         = []byte("Origin")
)

// allowOrigin marks a response readable by origin, which the caller has already checked
// against the site's list: never "*", never an unchecked echo.
func allowOrigin(ctx *fasthttp.RequestCtx, origin []byte) {
	h := &ctx.Response.Header
	h.SetCanonical(headerAllowOrigin, origin)
	h.SetCanonical(headerExposeHeaders, valueRetryAfter)
}

// preflight answers OPTIONS. With a key (query ?key=, since preflights carry no custom
// headers) the origin must be one of that site's and the route one it may use; without a
// key, the origin must belong to some site allowed to use the route.
func (s *Server) preflight(ctx *fasthttp.RequestCtx, op *providers.Op) *apiError {
	origin, ok := requestOrigin(&ctx.Request.Header)
	if !ok {
		return errSeveralOrigins
	}
	method := ctx.Request.Header.Peek("Access-Control-Request-Method")
	if len(origin) == 0 || !bytes.Equal(method, []byte("POST")) {
		return &apiError{status: fasthttp.StatusForbidden, code: codeForbidden, message: "not a CORS preflight for POST"}
	}
	allowed := false
	if key := ctx.QueryArgs().Peek("key"); len(key) > 0 {
		if st := s.callers.sites[string(key)]; st != nil {
			_, okOrigin := st.origins[string(origin)]
			okRoute := op == nil
			if op != nil {
				_, okRoute = st.routes[op.Route]
			}
			allowed = okOrigin && okRoute
		}
	} else {
		route := "batch"
		if op != nil {
			route = op.Route
		}
		if op == nil {
			for _, origins := range s.callers.anyOrigin {
				if _, ok := origins[string(origin)]; ok {
					allowed = true
					break
				}
			}
		} else {
			_, allowed = s.callers.anyOrigin[route][string(origin)]
		}
	}
	if !allowed {
		return &apiError{status: fasthttp.StatusForbidden, code: codeForbidden, message: "origin not allowed"}
	}
	allowOrigin(ctx, origin)
	h := &ctx.Response.Header
	h.Set("Access-Control-Allow-Methods", corsMethods)
	h.Set("Access-Control-Allow-Headers", corsHeaders)
	h.Set("Access-Control-Max-Age", s.corsMaxAge)
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}
