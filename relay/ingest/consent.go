package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/eventrelay/relay/config"
)

// consentHeader states the user's consent per purpose: "ads=1,analytics=0". Beacons,
// which cannot set headers, send the same text in the query parameter consent.
const (
	consentHeader = "X-Relay-Consent"
	consentQuery  = "consent"
	// maxConsentPurposes caps the purposes one statement may list.
	maxConsentPurposes = 32
)

// consentSet is what one source states: purpose → granted. A purpose it does not
// mention is absent, which is neither a grant nor a refusal.
type consentSet map[string]bool

// parseConsent reads "purpose=1,purpose=0": purposes are config.IsPurpose names, values 1
// (granted) or 0 (refused), spaces around items allowed, each purpose at most once. An
// empty text states nothing.
func parseConsent(text []byte) (consentSet, error) {
	text = bytes.TrimSpace(text)
	if len(text) == 0 {
		return consentSet{}, nil
	}
	set := consentSet{}
	for item := range bytes.SplitSeq(text, []byte(",")) {
		name, val, ok := bytes.Cut(item, []byte("="))
		name, val = bytes.TrimSpace(name), bytes.TrimSpace(val)
		switch {
		case !ok || !config.IsPurpose(string(name)):
			return nil, errors.New(`must be a comma-separated list of purpose=1 or purpose=0 (e.g. "ads=1,analytics=0"), purposes of a-z 0-9 _ -`)
		case len(val) != 1 || (val[0] != '0' && val[0] != '1'):
			return nil, errors.New("value of " + string(name) + " must be 1 (granted) or 0 (refused)")
		}
		if _, dup := set[string(name)]; dup {
			return nil, errors.New(string(name) + " is stated twice")
		}
		if len(set) == maxConsentPurposes {
			return nil, errors.New("states more than " + strconv.Itoa(maxConsentPurposes) + " purposes")
		}
		set[string(name)] = val[0] == '1'
	}
	return set, nil
}

// parseConsentClaim reads the identity token's consent claim: the header's text, or an
// object of booleans ({"ads":true,"analytics":false}).
func parseConsentClaim(raw json.RawMessage) (consentSet, error) {
	var text string
	if err := json.Unmarshal(raw, &text); err == nil {
		return parseConsent([]byte(text))
	}
	var obj map[string]bool
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, errors.New(`must be a string ("ads=1,analytics=0") or an object of booleans`)
	}
	if len(obj) > maxConsentPurposes {
		return nil, errors.New("states more than " + strconv.Itoa(maxConsentPurposes) + " purposes")
	}
	for name := range obj {
		if !config.IsPurpose(name) {
			return nil, errors.New("purpose names must be 1 to 64 characters of a-z 0-9 _ -")
		}
	}
	return obj, nil
}

// consentState is the consent of one request, from both sources.
type consentState struct {
	stated consentSet // X-Relay-Consent or ?consent=
	token  consentSet // the verified identity token's consent claim
}

// granted reports whether purpose may be used: some source grants it and none refuses
// it. A refusal anywhere wins because consent can be withdrawn at any moment: the page's
// consent banner learns it before the site's backend mints a new token, and a page
// script cannot grant what the user's recorded choice in the signed token refuses.
func (cs *consentState) granted(purpose string) bool {
	h, hok := cs.stated[purpose]
	t, tok := cs.token[purpose]
	if (hok && !h) || (tok && !t) {
		return false
	}
	return h || t
}

// consent returns the request's consent, read once per request (a batch shares it). Only
// sites with consent: required read it: a malformed statement is refused (400) there,
// and ignored where nothing depends on it.
func (s *Server) consent(ctx *fasthttp.RequestCtx, c *caller) (*consentState, *apiError) {
	if c.consent != nil {
		return c.consent, nil
	}
	cs := &consentState{}
	field, text := consentHeader, ctx.Request.Header.Peek(consentHeader)
	if len(text) == 0 {
		field, text = consentQuery, ctx.QueryArgs().Peek(consentQuery)
	}
	if len(text) > 0 {
		set, err := parseConsent(text)
		if err != nil {
			return nil, &apiError{status: fasthttp.StatusBadRequest, code: codeInvalidField, field: field,
				message: field + " " + err.Error(), wide: true}
		}
		cs.stated = set
	}
	if c.site.identitySecret != nil {
		tok, aerr := s.token(ctx, c)
		if aerr != nil {
			return nil, aerr
		}
		if tok != nil {
			cs.token = tok.consent
		}
	}
	c.consent = cs
	return cs, nil
}
