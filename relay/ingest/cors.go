package ingest

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"eventrelay/providers"
)

const (
	corsMethods = "POST, OPTIONS"
	corsHeaders = "Content-Type, X-Relay-Key, X-Relay-Identity, Idempotency-Key"
)

// errSeveralOrigins refuses a request with more than one Origin header, which no browser
// sends: the relay would check one while an intermediary might act on another.
var errSeveralOrigins = &apiError{status: fasthttp.StatusForbidden, code: codeForbidden,
	message: "more than one Origin header"}

// requestOrigin returns the request's Origin, "" when it has none; ok is false when it
// has several.
func requestOrigin(h *fasthttp.RequestHeader) (origin string, ok bool) {
	switch all := h.PeekAll(fasthttp.HeaderOrigin); len(all) {
	case 0:
		return "", true
	case 1:
		return string(all[0]), true
	default:
		return "", false
	}
}

// allowOrigin marks a response readable by origin, which the caller has already checked
// against the site's list: never "*", never an unchecked echo.
func allowOrigin(ctx *fasthttp.RequestCtx, origin string) {
	h := &ctx.Response.Header
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", "Retry-After")
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
	if origin == "" || !bytes.Equal(method, []byte("POST")) {
		return &apiError{status: fasthttp.StatusForbidden, code: codeForbidden, message: "not a CORS preflight for POST"}
	}
	allowed := false
	if key := ctx.QueryArgs().Peek("key"); len(key) > 0 {
		if st := s.callers.sites[string(key)]; st != nil {
			_, okOrigin := st.origins[origin]
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
				if _, ok := origins[origin]; ok {
					allowed = true
					break
				}
			}
		} else {
			_, allowed = s.callers.anyOrigin[route][origin]
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
