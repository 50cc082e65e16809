package ingest

import (
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/eventrelay/relay/relay/queue"
	"github.com/eventrelay/relay/strictjson"
)

// The Brevo SDK mirror: Brevo's official SDKs reach the relay by changing their base URL
// to <relay>[path_prefix]/brevo/v3. The two event paths feed the brevo/events route with
// its validation; the SDK's api-key header carries a relay client token (never Brevo's
// key, which the relay attaches upstream), and replies and errors take the shapes the
// SDK expects: 204 without a body for one event, Brevo's batch summary, and
// {"code":...,"message":...} errors.
const (
	brevoMirrorEvents = "/brevo/v3/events"
	brevoMirrorBatch  = "/brevo/v3/events/batch"
	// brevoMirrorRoute is the operation the mirror feeds.
	brevoMirrorRoute = "brevo/events"
	// Route labels of relay_ingest_requests_total for the mirror paths.
	labelBrevoMirror      = "brevo/v3/events"
	labelBrevoMirrorBatch = "brevo/v3/events/batch"
)

// brevoMirrorPath returns the metrics label of a mirror path, "" for any other path.
func brevoMirrorPath(path []byte) string {
	switch string(path) {
	case brevoMirrorEvents:
		return labelBrevoMirror
	case brevoMirrorBatch:
		return labelBrevoMirrorBatch
	}
	return ""
}

// handleBrevoMirror serves one mirror request; label is brevoMirrorPath's.
func (s *Server) handleBrevoMirror(ctx *fasthttp.RequestCtx, label string) {
	err := s.serveBrevoMirror(ctx, label == labelBrevoMirrorBatch)
	if err != nil {
		writeBrevoError(ctx, err)
	}
	s.metrics.request(label, ctx.Response.StatusCode())
	s.logRequest(ctx, label, err)
}

func (s *Server) serveBrevoMirror(ctx *fasthttp.RequestCtx, batch bool) *apiError {
	if s.brevo == nil {
		return &apiError{status: fasthttp.StatusNotFound, code: codeNotFound,
			message: "Brevo v3 events are not enabled on this relay (providers.brevo.api_key)"}
	}
	if !ctx.IsPost() {
		// No OPTIONS: the SDK runs on servers; a browser gets no CORS headers here.
		ctx.Response.Header.Set("Allow", "POST")
		return &apiError{status: fasthttp.StatusMethodNotAllowed, code: codeMethod, message: "use POST"}
	}
	c := &caller{}
	if aerr := s.authenticateAPIKey(ctx, c); aerr != nil {
		return aerr
	}
	if !c.may(s.brevo.Route) {
		return forbiddenRoute(s.brevo.Route)
	}
	if aerr := checkContentType(ctx); aerr != nil {
		return aerr
	}
	tree, aerr := parseBody(ctx, "")
	if aerr != nil {
		return aerr
	}
	key := ctx.Request.Header.Peek("Idempotency-Key")
	if len(key) > 0 {
		if aerr := checkClientKey(key); aerr != nil {
			return aerr
		}
	}
	if batch {
		return s.brevoMirrorBatch(ctx, c, tree, string(key))
	}
	// The mirror serves client tokens only, which sites' filters and consent never drop.
	var p pending
	if _, aerr := s.event(ctx, c, s.brevo, tree, "", &p.msg, nil); aerr != nil {
		return aerr
	}
	p.src = queue.RelayID
	if len(key) > 0 {
		p.msg.ID, p.src = string(key), queue.ClientID
	}
	if aerr := s.enqueueOne(&p.msg, p.src); aerr != nil {
		return aerr
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent) // what Brevo answers for one event
	return nil
}

// brevoMirrorBatch validates every event before any is queued, like /v1/batch. The body
// is {"events":[...]} or, as older SDKs send it, a bare array. With an Idempotency-Key K,
// event i gets the id brevo-batch:K:i, so an SDK retry of the whole batch queues nothing
// twice; no client may choose an id with that prefix (clientEventID), so no one-event
// key is taken for a batch event's duplicate, and i, digits only, keeps the ids of
// different keys apart.
func (s *Server) brevoMirrorBatch(ctx *fasthttp.RequestCtx, c *caller, tree strictjson.Value, key string) *apiError {
	bad := func(code, field, msg string) *apiError {
		return &apiError{status: fasthttp.StatusBadRequest, code: code, field: field, message: msg}
	}
	events, at := &tree, ""
	switch tree.Kind {
	case strictjson.Array:
	case strictjson.Object:
		for _, m := range tree.Members {
			if m.Key != "events" {
				return bad("unknown_field", m.Key, m.Key+" is not a known field")
			}
		}
		if events = tree.Get("events"); events == nil {
			return bad("missing_field", "events", "events is required")
		}
		at = "events"
	default:
		return bad(codeInvalidField, "", "body must be {\"events\":[...]} or an array of events")
	}
	switch {
	case events.Kind != strictjson.Array:
		return bad(codeInvalidField, at, "events must be an array")
	case len(events.Items) == 0:
		return bad("missing_field", at, "events must not be empty")
	case len(events.Items) > s.maxBatch:
		return bad(codeInvalidField, at, "events holds more than "+strconv.Itoa(s.maxBatch)+" items")
	}
	msgs := make([]pending, len(events.Items))
	for i := range events.Items {
		item := at + "[" + strconv.Itoa(i) + "]"
		var aerr *apiError
		if msgs[i].dropped, aerr = s.event(ctx, c, s.brevo, events.Items[i], item, &msgs[i].msg, nil); aerr != nil {
			return aerr
		}
		msgs[i].src = queue.RelayID
		if key != "" {
			id := derivedIDPrefix + key + ":" + strconv.Itoa(i)
			if !validEventID([]byte(id)) {
				return bad(codeInvalidField, "Idempotency-Key",
					"Idempotency-Key is too long for this batch: "+id+" exceeds 128 characters")
			}
			msgs[i].msg.ID, msgs[i].src = id, queue.ClientID
		}
	}
	if _, _, aerr := s.enqueueAll(c, msgs); aerr != nil {
		return aerr
	}
	n := strconv.Itoa(len(msgs))
	ctx.SetStatusCode(fasthttp.StatusAccepted)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"status":"success","total_events":` + n + `,"successful_events":` + n +
		`,"failed_events":0,"errors":[]}`)
	return nil
}

// authenticateAPIKey resolves the client whose token is in the api-key header (where the
// SDK puts its key) and refuses it from a browser, as on every client-token route.
func (s *Server) authenticateAPIKey(ctx *fasthttp.RequestCtx, c *caller) *apiError {
	h := &ctx.Request.Header
	origin, ok := requestOrigin(h)
	if !ok {
		return errSeveralOrigins
	}
	c.origin, c.ip = origin, s.clientAddr(ctx)
	c.ipText = c.ip.String()
	token := h.Peek("api-key")
	if len(token) == 0 {
		return &apiError{status: fasthttp.StatusUnauthorized, code: codeUnauthorized,
			message: "missing api-key header: set the SDK's apiKey to a relay client token"}
	}
	if c.client = s.callers.clientByToken(token); c.client == nil {
		return &apiError{status: fasthttp.StatusUnauthorized, code: codeUnauthorized,
			message: "api-key is not a known relay client token"}
	}
	if len(c.origin) > 0 {
		return &apiError{status: fasthttp.StatusForbidden, code: codeForbidden,
			message: "client tokens are secret and must not be sent from a browser (request has Origin)"}
	}
	return nil
}

// brevoCodes maps the relay's error codes onto Brevo's ("invalid_parameter", ...).
var brevoCodes = map[string]string{
	"missing_field":  "missing_parameter",
	codeUnauthorized: "unauthorized",
	codeForbidden:    "permission_denied",
	codeNotFound:     "document_not_found",
	codeMethod:       "method_not_allowed",
	codeTooLarge:     "out_of_range",
	codeUnavailable:  "service_unavailable",
}

// writeBrevoError writes e in Brevo's error shape, {"code":"...","message":"..."}; the
// field, when there is one, leads the message. Retry-After is kept.
func writeBrevoError(ctx *fasthttp.RequestCtx, e *apiError) {
	ctx.SetStatusCode(e.status)
	ctx.SetContentType("application/json")
	if e.retryAfter > 0 {
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	code, ok := brevoCodes[e.code]
	if !ok {
		code = "invalid_parameter"
	}
	msg := e.message
	if e.field != "" && !strings.HasPrefix(msg, e.field) {
		msg = truncate(e.field) + ": " + msg
	}
	if len(msg) > maxMessage {
		msg = msg[:maxMessage] + "…"
	}
	b := append([]byte(`{"code":`), strictjson.AppendString(nil, code)...)
	b = append(b, `,"message":`...)
	b = strictjson.AppendString(b, msg)
	b = append(b, '}')
	ctx.SetBody(b)
}
