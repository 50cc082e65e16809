package ingest

import (
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/relay/queue"
	"github.com/eventrelay/relay/strictjson"
)

// pending is one validated event of a batch and who chose its id.
type pending struct {
	msg delivery.Message
	src queue.IDSource
	// dropped is why the site's filter or consent drops it (never queued), "" to queue it.
	dropped string
}

// batch validates every item of a /v1/batch body before any is queued (all-or-nothing):
// {"events":[{"route":"ens/click","body":{...},"id":"optional-idempotency-id"}, ...]}.
func (s *Server) batch(ctx *fasthttp.RequestCtx, c *caller, tree strictjson.Value) ([]pending, *apiError) {
	bad := func(code, field, msg string) *apiError {
		return &apiError{status: fasthttp.StatusBadRequest, code: code, field: field, message: msg}
	}
	if tree.Kind != strictjson.Object {
		return nil, bad(codeInvalidField, "", "body must be a JSON object with an events array")
	}
	for _, m := range tree.Members {
		if m.Key != "events" {
			return nil, bad("unknown_field", m.Key, m.Key+" is not a known field")
		}
	}
	events := tree.Get("events")
	switch {
	case events == nil:
		return nil, bad("missing_field", "events", "events is required")
	case events.Kind != strictjson.Array:
		return nil, bad(codeInvalidField, "events", "events must be an array")
	case len(events.Items) == 0:
		return nil, bad("missing_field", "events", "events must not be empty")
	case len(events.Items) > s.maxBatch:
		return nil, bad(codeInvalidField, "events", "events holds more than "+strconv.Itoa(s.maxBatch)+" items")
	}
	msgs := make([]pending, 0, len(events.Items))
	seen := make(map[string]struct{}, len(events.Items))
	for i := range events.Items {
		item := &events.Items[i]
		at := "events[" + strconv.Itoa(i) + "]"
		if item.Kind != strictjson.Object {
			return nil, bad(codeInvalidField, at, at+" must be an object")
		}
		for _, m := range item.Members {
			if m.Key != "route" && m.Key != "body" && m.Key != "id" {
				return nil, bad("unknown_field", at+"."+m.Key, at+"."+m.Key+" is not a known field")
			}
		}
		route := item.Get("route")
		if route == nil || route.Kind != strictjson.String {
			return nil, bad("missing_field", at+".route", at+".route is required (e.g. \"ens/click\")")
		}
		op := s.routes["/v1/"+route.Str]
		if op == nil {
			return nil, bad(codeInvalidField, at+".route", at+".route is not an enabled route")
		}
		if !c.may(op.Route) {
			return nil, itemRefusal(forbiddenRoute(op.Route), at)
		}
		body := item.Get("body")
		if body == nil {
			return nil, bad("missing_field", at+".body", at+".body is required")
		}
		var m pending
		var aerr *apiError
		if m.dropped, aerr = s.event(ctx, c, op, *body, at+".body", &m.msg, nil); aerr != nil {
			return nil, itemRefusal(aerr, at)
		}
		if id := item.Get("id"); id != nil {
			if id.Kind != strictjson.String || !clientEventID([]byte(id.Str)) {
				return nil, bad(codeInvalidField, at+".id", at+".id"+msgClientID)
			}
			if _, dup := seen[id.Str]; dup {
				return nil, bad(codeInvalidField, at+".id", at+".id repeats an earlier item's id")
			}
			seen[id.Str] = struct{}{}
			m.msg.ID, m.src = id.Str, queue.ClientID
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// itemRefusal names the batch item at in a refusal of that item, so a client (the SDK)
// can drop that one item and resend the rest: a refusal without a field, or naming
// "route", is about the item's route (identity_required, a route the caller may not
// use or that needs an identity) and gets at.route; one naming something outside the
// item (a header such as X-Relay-Customer-Id) gets at, its message still saying what is
// missing. A refusal already naming a path inside the item is kept, and so is a wide
// one: a bad identity token or consent statement refuses the whole request.
func itemRefusal(aerr *apiError, at string) *apiError {
	if aerr.wide || aerr.field == at || strings.HasPrefix(aerr.field, at+".") || strings.HasPrefix(aerr.field, at+"[") {
		return aerr
	}
	e := *aerr // never change a refusal the caller may share
	switch e.field {
	case "", "route":
		e.field = at + ".route"
	default:
		e.field, e.message = at, at+": "+e.message
	}
	return &e
}
