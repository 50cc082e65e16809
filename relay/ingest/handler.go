package ingest

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/providers"
	"github.com/eventrelay/relay/relay/queue"
	"github.com/eventrelay/relay/strictjson"
)

// caller is who sent a request: exactly one of site and client is set.
type caller struct {
	site   *site
	client *client
	// origin is the request's Origin, empty when absent. It is the request's own bytes,
	// valid only while the handler runs (fasthttp recycles them).
	origin []byte
	ip     netip.Addr
	ipText string // ip as stored with each event, formatted once per request
	// token caches the verified identity token of a site request; tokenRead is set once
	// the request was looked at, so a request without a token is not read twice.
	token     *verifiedToken
	tokenRead bool
	// consent caches the request's consent (sites with consent: required).
	consent *consentState
}

func (c *caller) may(route string) bool {
	if c.client != nil {
		_, ok := c.client.routes[route]
		return ok
	}
	_, ok := c.site.routes[route]
	return ok
}

func (c *caller) source() string {
	if c.client != nil {
		return c.client.source
	}
	return c.site.source
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	if ambiguousFraming(&ctx.Request.Header) {
		ctx.SetConnectionClose()
		writeError(ctx, errAmbiguousFraming)
		s.metrics.request("unknown", fasthttp.StatusBadRequest)
		return
	}
	// Routing is on path, server.path_prefix already removed: a handler dispatched here
	// (the SDK file, the Brevo mirror, any other non-/v1 path) is served under the prefix
	// for free.
	path, ok := s.publicPath(ctx.Path())
	if !ok {
		s.notFound(ctx)
		return
	}
	if string(path) == SDKPath {
		s.serveSDK(ctx)
		return
	}
	if label := brevoMirrorPath(path); label != "" {
		s.handleBrevoMirror(ctx, label)
		return
	}
	op := s.routes[string(path)]
	label := "unknown"
	switch {
	case op != nil:
		label = op.Route
	case string(path) == batchPath:
		label = "batch"
	default:
		s.notFound(ctx)
		return
	}
	ctx.Response.Header.SetCanonical(headerVary, valueOrigin)
	err := s.serve(ctx, op)
	if err != nil {
		writeError(ctx, err)
	}
	s.metrics.request(label, ctx.Response.StatusCode())
	s.logRequest(ctx, label, err)
}

func (s *Server) notFound(ctx *fasthttp.RequestCtx) {
	writeError(ctx, &apiError{status: fasthttp.StatusNotFound, code: codeNotFound, message: "no such route"})
	s.metrics.request("unknown", fasthttp.StatusNotFound)
}

// logRequest writes one line per request: refusals at Info (5xx at Warn), accepted
// requests at Debug. The production logger samples each message (100 a second, then one
// in 100), so a flood cannot turn logging into the bottleneck; Check keeps a disabled
// level free.
func (s *Server) logRequest(ctx *fasthttp.RequestCtx, route string, err *apiError) {
	level := zap.DebugLevel
	switch {
	case err == nil:
	case err.status >= 500:
		level = zap.WarnLevel
	default:
		level = zap.InfoLevel
	}
	ce := s.log.Check(level, "request")
	if ce == nil {
		return
	}
	fields := []zap.Field{zap.String("route", route), zap.Int("status", ctx.Response.StatusCode()),
		zap.Duration("took", time.Since(ctx.Time()))}
	if err != nil {
		fields = append(fields, zap.String("code", err.code), zap.String("field", truncate(err.field)))
	}
	ce.Write(fields...)
}

// serve runs one request; op is nil for /v1/batch.
func (s *Server) serve(ctx *fasthttp.RequestCtx, op *providers.Op) *apiError {
	if ctx.IsOptions() {
		return s.preflight(ctx, op)
	}
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST, OPTIONS")
		return &apiError{status: fasthttp.StatusMethodNotAllowed, code: codeMethod, message: "use POST"}
	}
	c := &caller{} // does not escape: on the stack
	if aerr := s.authenticate(ctx, c); aerr != nil {
		return aerr
	}
	if c.site != nil && len(c.origin) > 0 {
		allowOrigin(ctx, c.origin)
	}
	if op != nil && !c.may(op.Route) {
		return forbiddenRoute(op.Route)
	}
	if c.site != nil {
		ok, wait := s.limiter.allow(limiterKey{site: c.site.index, ip: c.ip.As16()}, c.site.limit, c.site.burst, s.now())
		if !ok {
			return &apiError{status: fasthttp.StatusTooManyRequests, code: codeRateLimited,
				message: "too many requests from this address", retryAfter: wait}
		}
	}
	if aerr := checkContentType(ctx); aerr != nil {
		return aerr
	}
	whole := "" // what a refusal about the whole document names
	if op == nil {
		whole = "events" // the SDK then sends smaller batches (docs/api.md)
	}
	tree, aerr := parseBody(ctx, whole)
	if aerr != nil {
		return aerr
	}
	if op == nil {
		msgs, aerr := s.batch(ctx, c, tree)
		if aerr != nil {
			return aerr
		}
		ids, dropped, aerr := s.enqueueAll(c, msgs)
		if aerr != nil {
			return aerr
		}
		writeAccepted(ctx, ids, dropped)
		return nil
	}
	// One event, the hot path: its message and re-encoded body are pooled, since the
	// queue copies what it keeps (Enqueuer must not retain m).
	sc := s.scratch.Get().(*scratch)
	defer s.putScratch(sc)
	m := &sc.msg
	dropped, aerr := s.event(ctx, c, op, tree, "", m, sc.body[:0])
	if aerr != nil {
		return aerr
	}
	sc.body = m.Body[:0]
	src := queue.RelayID
	if key := ctx.Request.Header.Peek("Idempotency-Key"); len(key) > 0 {
		if aerr := checkClientKey(key); aerr != nil {
			return aerr
		}
		m.ID, src = string(key), queue.ClientID
	}
	ids := [1]string{m.ID} // does not escape
	if dropped != "" {
		s.metrics.filteredEvent(c.site.name, op.Route, dropped)
		writeAccepted(ctx, ids[:], []string{dropped})
		return nil
	}
	if aerr := s.enqueueOne(m, src); aerr != nil {
		return aerr
	}
	writeAccepted(ctx, ids[:], nil)
	return nil
}

// scratch is the pooled per-request state of a one-event request.
type scratch struct {
	msg  delivery.Message
	body []byte
}

// putScratch pools sc without what belongs to the request (strings) or is too large to
// keep around.
func (s *Server) putScratch(sc *scratch) {
	body := sc.body
	if cap(body) > 16<<10 {
		body = nil
	}
	*sc = scratch{body: body[:0]}
	s.scratch.Put(sc)
}

// authenticate resolves the caller, into c, from a client token or a site key and checks
// Origin.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx, c *caller) *apiError {
	h := &ctx.Request.Header
	origin, ok := requestOrigin(h)
	if !ok {
		return errSeveralOrigins
	}
	c.origin, c.ip = origin, s.clientAddr(ctx)
	c.ipText = c.ip.String()
	if auth := h.Peek("Authorization"); len(auth) > 0 {
		token, ok := bearerToken(auth)
		if !ok {
			return &apiError{status: fasthttp.StatusUnauthorized, code: codeUnauthorized,
				message: "Authorization must be \"Bearer <client token>\""}
		}
		if c.client = s.callers.clientByToken(token); c.client == nil {
			return &apiError{status: fasthttp.StatusUnauthorized, code: codeUnauthorized, message: "unknown client token"}
		}
		if len(c.origin) > 0 {
			// A browser is holding a backend secret: refuse it so the leak is noticed.
			return &apiError{status: fasthttp.StatusForbidden, code: codeForbidden,
				message: "client tokens are secret and must not be sent from a browser (request has Origin)"}
		}
		return nil
	}
	key := h.Peek("X-Relay-Key")
	if len(key) == 0 {
		key = ctx.QueryArgs().Peek("key")
	}
	if len(key) == 0 {
		return &apiError{status: fasthttp.StatusUnauthorized, code: codeUnauthorized,
			message: "missing site key (X-Relay-Key header or key query parameter) or client token"}
	}
	if c.site = s.callers.sites[string(key)]; c.site == nil {
		return &apiError{status: fasthttp.StatusUnauthorized, code: codeUnauthorized, message: "unknown site key"}
	}
	if len(c.origin) > 0 {
		if _, ok := c.site.origins[string(c.origin)]; !ok {
			return &apiError{status: fasthttp.StatusForbidden, code: codeForbidden, message: "origin not allowed for this site key"}
		}
	}
	return nil
}

func bearerToken(auth []byte) ([]byte, bool) {
	const prefix = "bearer "
	if len(auth) <= len(prefix) || !strings.EqualFold(string(auth[:len(prefix)]), prefix) {
		return nil, false
	}
	return bytes.TrimSpace(auth[len(prefix):]), true
}

func forbiddenRoute(route string) *apiError {
	return &apiError{status: fasthttp.StatusForbidden, code: codeForbidden, field: "route",
		message: "route " + route + " is not allowed for this caller"}
}

// parseBody parses the request body strictly; a refusal names the field at fault. A
// refusal about the whole document (over strictjson.MaxValues, where the count crossing
// the cap says nothing about that member) names whole instead when it is not "": on
// /v1/batch a path into an item would make the SDK drop a valid item.
func parseBody(ctx *fasthttp.RequestCtx, whole string) (strictjson.Value, *apiError) {
	tree, err := strictjson.Parse(ctx.PostBody(), strictjson.DefaultMaxDepth)
	if err != nil {
		var je *strictjson.Error
		if errors.As(err, &je) {
			field := je.Path
			if whole != "" && errors.Is(err, strictjson.ErrTooManyValues) {
				field = whole
			}
			return strictjson.Value{}, &apiError{status: fasthttp.StatusBadRequest, code: je.Code, field: field, message: je.Message}
		}
		return strictjson.Value{}, &apiError{status: fasthttp.StatusBadRequest, code: strictjson.CodeInvalidJSON, message: "invalid JSON"}
	}
	return tree, nil
}

// checkContentType accepts application/json and text/plain (what sendBeacon sends), with
// an optional UTF-8 charset, and no content encoding.
func checkContentType(ctx *fasthttp.RequestCtx) *apiError {
	ct := ctx.Request.Header.ContentType()
	media, params, _ := bytes.Cut(ct, []byte(";"))
	media = bytes.TrimSpace(media)
	ok := bytes.EqualFold(media, []byte("application/json")) || bytes.EqualFold(media, []byte("text/plain"))
	// Every parameter is read: a charset after another parameter counts too.
	for ok && len(params) > 0 {
		var param []byte
		param, params, _ = bytes.Cut(params, []byte(";"))
		name, val, _ := bytes.Cut(bytes.TrimSpace(param), []byte("="))
		if bytes.EqualFold(bytes.TrimSpace(name), []byte("charset")) {
			v := bytes.Trim(bytes.TrimSpace(val), `"`)
			ok = bytes.EqualFold(v, []byte("utf-8")) || bytes.EqualFold(v, []byte("utf8"))
		}
	}
	if !ok {
		return &apiError{status: fasthttp.StatusUnsupportedMediaType, code: codeUnsupportedType,
			message: "Content-Type must be application/json or text/plain (UTF-8)"}
	}
	if enc := ctx.Request.Header.ContentEncoding(); len(enc) > 0 && !bytes.EqualFold(enc, []byte("identity")) {
		return &apiError{status: fasthttp.StatusUnsupportedMediaType, code: codeUnsupportedType,
			message: "Content-Encoding is not supported"}
	}
	return nil
}

// event validates one event for op and stamps it into m, its re-encoded body appended to
// buf. path prefixes field names in errors (batch items). m owns all its bytes (but buf's,
// which are the caller's): nothing refers to ctx. dropped is the reason the site's event
// filter or consent drops the event (filter.go), "" when it is to be queued; a dropped
// event is stamped all the same, for its id.
func (s *Server) event(ctx *fasthttp.RequestCtx, c *caller, op *providers.Op, body strictjson.Value, path string,
	m *delivery.Message, buf []byte) (dropped string, _ *apiError) {
	id, aerr := s.identity(ctx, c, op)
	if aerr != nil {
		return "", aerr
	}
	ev, err := op.Validate(body, id)
	if err != nil {
		var fe *providers.FieldError
		if errors.As(err, &fe) {
			field := fe.Field
			msg := fe.Message
			if path != "" && !isHeaderName(field) {
				field = joinPath(path, field)
				msg = path + ": " + msg
			}
			return "", &apiError{status: fasthttp.StatusBadRequest, code: fe.Code, field: field, message: msg}
		}
		return "", &apiError{status: fasthttp.StatusBadRequest, code: codeInvalidField, field: path, message: "invalid event"}
	}
	if ev.Revenue != "" && c.site != nil && !c.site.revenue {
		// Revenue is money: a browser may report it only where the site says so.
		field := ev.Revenue
		if path != "" {
			field = joinPath(path, field)
		}
		return "", &apiError{status: fasthttp.StatusForbidden, code: codeForbidden, field: field,
			message: field + " is revenue: site " + c.site.name + " may not send it (site setting revenue: true)"}
	}
	if dropped, aerr = s.dropReason(ctx, c, op, &ev); aerr != nil {
		return "", aerr
	}
	*m = delivery.Message{
		ID:         uuid.NewString(),
		Provider:   op.Provider,
		Route:      op.Route,
		Body:       ev.Body.AppendJSON(buf),
		ReceivedAt: s.now(),
		ClientIP:   c.ipText,
		UserAgent:  userAgent(ctx),
		Country:    s.country(ctx),
		CustomerID: ev.CustomerID,
		Source:     c.source(),
	}
	return dropped, nil
}

// isHeaderName tells field names that are headers (Idempotency-Key, X-Relay-Customer-Id),
// which are not inside the batch item's body.
func isHeaderName(field string) bool { return strings.HasPrefix(field, "X-") }

func joinPath(prefix, field string) string {
	if field == "" {
		return prefix
	}
	if field[0] == '[' {
		return prefix + field
	}
	return prefix + "." + field
}

// maxUserAgent caps the stored User-Agent; longer ones carry nothing a provider needs.
const maxUserAgent = 512

func userAgent(ctx *fasthttp.RequestCtx) string {
	ua := ctx.Request.Header.UserAgent()
	if len(ua) > maxUserAgent {
		ua = ua[:maxUserAgent]
	}
	return string(ua)
}

// country returns the edge's geo header when it holds a two-character code and the TCP
// peer is a trusted proxy (server.trusted_proxies): only the edge may state the country;
// a client that reaches the relay directly could write any value.
func (s *Server) country(ctx *fasthttp.RequestCtx) string {
	if s.countryHeader == "" {
		return ""
	}
	if peer, _ := netip.AddrFromSlice(ctx.RemoteIP()); !s.proxies.trusted(peer) {
		return ""
	}
	v := ctx.Request.Header.Peek(s.countryHeader)
	if len(v) != 2 || !isAlnumUpper(v[0]) || !isAlnumUpper(v[1]) {
		return ""
	}
	return string(v)
}

func isAlnumUpper(c byte) bool { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') }

// identity decides who the event is about, per the identity rules of docs/api.md.
func (s *Server) identity(ctx *fasthttp.RequestCtx, c *caller, op *providers.Op) (providers.Identity, *apiError) {
	if op.Identity == providers.ClaimNone {
		return providers.Identity{}, nil
	}
	customer := string(ctx.Request.Header.Peek("X-Relay-Customer-Id"))
	switch {
	case c.client != nil:
		return providers.Identity{CustomerID: customer}, nil
	case c.site.identitySecret != nil:
		tok, aerr := s.token(ctx, c)
		if aerr != nil {
			return providers.Identity{}, aerr
		}
		if tok == nil {
			return providers.Identity{}, &apiError{status: fasthttp.StatusUnauthorized, code: codeIdentityRequired,
				message: "route " + op.Route + " needs an identity token (X-Relay-Identity header or identity query parameter)"}
		}
		return tok.id, nil
	case c.site.trustIdentity:
		return providers.Identity{CustomerID: customer}, nil
	default:
		return providers.Identity{}, &apiError{status: fasthttp.StatusForbidden, code: codeForbidden, field: "route",
			message: "route " + op.Route + " needs an identity: the site has neither identity_secret nor trust_client_identity"}
	}
}

// derivedIDPrefix starts the ids the Brevo mirror derives for a batch's events
// (brevo-batch:<Idempotency-Key>:<i>). An id a client chooses may not start with it, so
// no one-event key or batch item id can equal a derived id and be taken for its
// duplicate (answered success, never queued).
const derivedIDPrefix = "brevo-batch:"

// clientEventID accepts an event id a client chooses: a valid id outside the derived ids.
func clientEventID(id []byte) bool {
	return validEventID(id) && !bytes.HasPrefix(id, []byte(derivedIDPrefix))
}

// msgClientID says what clientEventID accepts.
const msgClientID = " must be 1-128 characters of A-Z a-z 0-9 . _ : - not starting with " + derivedIDPrefix +
	" (reserved for the Brevo mirror's batch ids)"

// checkClientKey refuses an Idempotency-Key that is not a client event id.
func checkClientKey(key []byte) *apiError {
	if clientEventID(key) {
		return nil
	}
	return &apiError{status: fasthttp.StatusBadRequest, code: codeInvalidField, field: "Idempotency-Key",
		message: "Idempotency-Key" + msgClientID}
}

// validEventID accepts ids that are safe in Redis keys, logs and upstream headers.
func validEventID(id []byte) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for _, c := range id {
		ok := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// enqueueOne appends m durably; src says who chose its id.
func (s *Server) enqueueOne(m *delivery.Message, src queue.IDSource) *apiError {
	// The enqueuer answers within redis.enqueue_timeout by itself; a second deadline here
	// would only cost an allocation per request.
	if _, err := s.queue.Enqueue(s.base, m, src); err != nil {
		return unavailable(err)
	}
	s.metrics.enqueuedTo(m.Provider)
	return nil
}

// enqueueAll appends every message that is not dropped durably, concurrently so the group
// commit batches them, and answers with every id (the first id seen for a duplicate is
// the same id) and, when some were dropped, each id's drop reason ("" for queued ones).
func (s *Server) enqueueAll(c *caller, msgs []pending) (ids, dropped []string, _ *apiError) {
	ctx := s.base
	errs := make([]error, len(msgs))
	done := make(chan struct{}, len(msgs))
	n := 0
	for i := range msgs {
		if msgs[i].dropped != "" {
			continue
		}
		n++
		go func() {
			_, errs[i] = s.queue.Enqueue(ctx, &msgs[i].msg, msgs[i].src)
			done <- struct{}{}
		}()
	}
	for range n {
		<-done
	}
	var failed error
	for i := range msgs {
		switch {
		case errs[i] != nil:
			failed = errs[i]
		case msgs[i].dropped == "":
			s.metrics.enqueuedTo(msgs[i].msg.Provider)
		}
	}
	if failed != nil {
		return nil, nil, unavailable(failed)
	}
	ids = make([]string, len(msgs))
	for i := range msgs {
		ids[i] = msgs[i].msg.ID
		if r := msgs[i].dropped; r != "" {
			if dropped == nil {
				dropped = make([]string, len(msgs))
			}
			dropped[i] = r
			// Counted once the request is answered 202: a 503 is resent and would count twice.
			s.metrics.filteredEvent(c.site.name, msgs[i].msg.Route, r)
		}
	}
	return ids, dropped, nil
}

// unavailable is the 503 for an enqueue error.
func unavailable(err error) *apiError {
	retry := 1
	if errors.Is(err, queue.ErrOverHighWater) {
		retry = 30
	}
	return &apiError{status: fasthttp.StatusServiceUnavailable, code: codeUnavailable, retryAfter: retry,
		message: "the queue cannot take events right now; retry with the same Idempotency-Key"}
}
