package ingest

import (
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/providers"
)

// Reasons a site's event is answered 202 but never queued: the mark in the reply's
// "filtered" object and the reason label of relay_events_filtered_total.
const (
	reasonDeny       = "deny"        // its name matches sites[].events.deny
	reasonNotAllowed = "not_allowed" // sites[].events.allow is set and its name matches none
	reasonConsent    = "consent"     // consent: required and its purpose is not granted
)

// nameFilter is a site's compiled events filter: exact names in sets, prefixes (patterns
// ending in "*") in lists. Deny wins over allow; an empty allow lets every name through.
type nameFilter struct {
	allow, deny             map[string]struct{}
	allowPrefix, denyPrefix []string
	// restrict is set when allow has patterns: names must match one.
	restrict bool
}

// newNameFilter compiles f (validated by config), nil when f has no pattern.
func newNameFilter(f config.EventFilter) *nameFilter {
	if len(f.Allow) == 0 && len(f.Deny) == 0 {
		return nil
	}
	nf := &nameFilter{restrict: len(f.Allow) > 0}
	nf.allow, nf.allowPrefix = compilePatterns(f.Allow)
	nf.deny, nf.denyPrefix = compilePatterns(f.Deny)
	return nf
}

func compilePatterns(patterns []string) (exact map[string]struct{}, prefixes []string) {
	exact = make(map[string]struct{}, len(patterns))
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			prefixes = append(prefixes, prefix)
		} else {
			exact[p] = struct{}{}
		}
	}
	return exact, prefixes
}

func matches(name string, exact map[string]struct{}, prefixes []string) bool {
	if _, ok := exact[name]; ok {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// reason returns why name is filtered, "" when it passes.
func (f *nameFilter) reason(name string) string {
	switch {
	case matches(name, f.deny, f.denyPrefix):
		return reasonDeny
	case f.restrict && !matches(name, f.allow, f.allowPrefix):
		return reasonNotAllowed
	}
	return ""
}

// reasonAll decides for an event carrying names (a Cardlytics request carries one per
// clientEvents item): it is filtered as a whole when any name is, so a denied name never
// reaches the provider; deny outranks not_allowed. An event without names passes.
func (f *nameFilter) reasonAll(names []string) string {
	out := ""
	for _, n := range names {
		switch f.reason(n) {
		case reasonDeny:
			return reasonDeny
		case reasonNotAllowed:
			out = reasonNotAllowed
		}
	}
	return out
}

// dropReason decides whether a validated event of a site is dropped instead of queued,
// and why ("" keeps it): the site's event filter first, then consent. Clients (backends)
// are not subject to site filters.
func (s *Server) dropReason(ctx *fasthttp.RequestCtx, c *caller, op *providers.Op, ev *providers.Event) (string, *apiError) {
	st := c.site
	if st == nil {
		return "", nil
	}
	var cs *consentState
	if st.consentRequired {
		// Read first, so a malformed statement or token is refused whatever the filter
		// decides: the same request never gets 202 or 400 depending on its event's name.
		var aerr *apiError
		if cs, aerr = s.consent(ctx, c); aerr != nil {
			return "", aerr
		}
	}
	if st.filter != nil {
		if r := st.filter.reasonAll(op.EventNames(&ev.Body)); r != "" {
			return r, nil
		}
	}
	if cs != nil && !cs.granted(st.purposes[op.Route]) {
		return reasonConsent, nil
	}
	return "", nil
}

// exportFilterZeros exports relay_events_filtered_total as 0 for every reason that can
// happen to a route a site may use: deny and not_allowed where the site filters and the
// route has event names, consent where the site requires it.
func (s *Server) exportFilterZeros(ops []*providers.Op) {
	for _, st := range s.callers.sites {
		for _, op := range ops {
			if _, ok := st.routes[op.Route]; !ok {
				continue
			}
			if st.filter != nil && op.HasNames() {
				if len(st.filter.deny) > 0 || len(st.filter.denyPrefix) > 0 {
					s.metrics.filteredZero(st.name, op.Route, reasonDeny)
				}
				if st.filter.restrict {
					s.metrics.filteredZero(st.name, op.Route, reasonNotAllowed)
				}
			}
			if st.consentRequired {
				s.metrics.filteredZero(st.name, op.Route, reasonConsent)
			}
		}
	}
}
