package ingest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"
	"golang.org/x/time/rate"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/providers"
)

// site is a configured site key, resolved for the hot path.
type site struct {
	index int
	name  string
	// source is what events of this site store as their src: "site:<name>".
	source  string
	origins map[string]struct{}
	// routes the site may use (money routes only when listed explicitly).
	routes         map[string]struct{}
	identitySecret []byte
	trustIdentity  bool
	// revenue lets the site send revenue in events of other routes (providers.Event.Revenue).
	revenue bool
	limit   rate.Limit
	burst   int
	// filter is the compiled sites[].events, nil when it has no pattern.
	filter *nameFilter
	// consentRequired: events need their route's purpose granted (sites[].consent).
	consentRequired bool
	// purposes is the purpose of every enabled route, sites[].purposes applied.
	purposes map[string]string
}

// client is a backend with a secret token, kept only as a hash so comparison does not
// leak the token's length.
type client struct {
	name string
	// source is what events of this client store as their src: "client:<name>".
	source    string
	tokenHash [sha256.Size]byte
	routes    map[string]struct{}
}

// callers resolves keys and tokens to sites and clients.
type callers struct {
	sites   map[string]*site // by public key
	clients []*client
	// anyOrigin is every origin of any site, for preflights that carry no key.
	anyOrigin map[string]map[string]struct{} // route -> origins
}

func newCallers(cfg *config.Config, ops []*providers.Op) *callers {
	enabled := make(map[string]*providers.Op, len(ops))
	for _, op := range ops {
		enabled[op.Route] = op
	}
	c := &callers{sites: map[string]*site{}, anyOrigin: map[string]map[string]struct{}{}}
	for i, sc := range cfg.Sites {
		s := &site{
			index: i, name: sc.Name, source: "site:" + sc.Name,
			origins:       set(sc.Origins),
			routes:        map[string]struct{}{},
			trustIdentity: sc.TrustClientIdentity,
			revenue:       sc.Revenue,
			limit:         rate.Limit(sc.RateLimit.PerIP),
			burst:         sc.RateLimit.Burst,
			filter:        newNameFilter(sc.Events),
			purposes:      make(map[string]string, len(ops)),
		}
		s.consentRequired = sc.Consent == config.ConsentRequired
		for _, op := range ops {
			s.purposes[op.Route] = op.Purpose
			if p, ok := sc.Purposes[op.Route]; ok {
				s.purposes[op.Route] = p
			}
		}
		if sc.IdentitySecret != "" {
			s.identitySecret = []byte(sc.IdentitySecret)
		}
		if len(sc.Routes) > 0 {
			for _, r := range sc.Routes {
				if enabled[r] != nil {
					s.routes[r] = struct{}{}
				}
			}
		} else {
			for _, op := range ops {
				if !op.Money { // money routes only when listed explicitly
					s.routes[op.Route] = struct{}{}
				}
			}
		}
		for r := range s.routes {
			if c.anyOrigin[r] == nil {
				c.anyOrigin[r] = map[string]struct{}{}
			}
			for o := range s.origins {
				c.anyOrigin[r][o] = struct{}{}
			}
		}
		c.sites[sc.Key] = s
	}
	for _, cc := range cfg.Clients {
		cl := &client{name: cc.Name, source: "client:" + cc.Name, tokenHash: sha256.Sum256([]byte(cc.Token)), routes: map[string]struct{}{}}
		if len(cc.Routes) > 0 {
			cl.routes = set(cc.Routes)
		} else {
			for _, op := range ops {
				cl.routes[op.Route] = struct{}{}
			}
		}
		c.clients = append(c.clients, cl)
	}
	return c
}

func set(list []string) map[string]struct{} {
	m := make(map[string]struct{}, len(list))
	for _, s := range list {
		m[s] = struct{}{}
	}
	return m
}

// clientByToken compares the token against every client in constant time (per client),
// visiting all of them so the time does not tell which one matched.
func (c *callers) clientByToken(token []byte) *client {
	h := sha256.Sum256(token)
	var found *client
	for _, cl := range c.clients {
		if subtle.ConstantTimeCompare(h[:], cl.tokenHash[:]) == 1 {
			found = cl
		}
	}
	return found
}

// identityClaims are the claims of an X-Relay-Identity token.
type identityClaims struct {
	Email      string `json:"email,omitempty"`
	CustomerID string `json:"customer_id,omitempty"`
	// Consent is the user's consent per purpose (parseConsentClaim).
	Consent json.RawMessage `json:"consent,omitempty"`
	jwt.RegisteredClaims
}

var errIdentity = errors.New("invalid identity token")

// verifiedToken is what a verified identity token states.
type verifiedToken struct {
	id providers.Identity
	// consent is the consent claim, nil when the token has none.
	consent consentSet
}

// token returns the request's verified identity token (X-Relay-Identity or ?identity=),
// verified once per request; nil when the request has none. Only sites with an
// identity_secret have tokens.
func (s *Server) token(ctx *fasthttp.RequestCtx, c *caller) (*verifiedToken, *apiError) {
	if c.token != nil || c.tokenRead {
		return c.token, nil
	}
	raw := ctx.Request.Header.Peek("X-Relay-Identity")
	if len(raw) == 0 {
		raw = ctx.QueryArgs().Peek("identity")
	}
	c.tokenRead = true
	if len(raw) == 0 {
		return nil, nil
	}
	tok, err := c.site.verifyIdentity(string(raw), s.now())
	if err != nil {
		// The token applies to every item of a batch: refused for the whole request.
		return nil, &apiError{status: fasthttp.StatusUnauthorized, code: codeInvalidIdentity, message: err.Error(), wide: true}
	}
	c.token = &tok
	return c.token, nil
}

// verifyIdentity checks an HS256 identity token signed with the site's secret; exp is
// required. Its consent claim is read only where the site requires consent: with
// consent: none nothing depends on it, so its shape does not matter. The error never
// includes the token.
func (s *site) verifyIdentity(token string, now time.Time) (verifiedToken, error) {
	var claims identityClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return s.identitySecret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(30*time.Second),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	if err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			return verifiedToken{}, fmt.Errorf("%w: expired", errIdentity)
		case errors.Is(err, jwt.ErrTokenSignatureInvalid):
			return verifiedToken{}, fmt.Errorf("%w: bad signature", errIdentity)
		case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
			return verifiedToken{}, fmt.Errorf("%w: exp is required", errIdentity)
		default:
			return verifiedToken{}, fmt.Errorf("%w: must be an HS256 JWT signed with the site's identity_secret", errIdentity)
		}
	}
	out := verifiedToken{id: providers.Identity{UserID: claims.Subject, Email: claims.Email, CustomerID: claims.CustomerID, Signed: true}}
	if s.consentRequired && len(claims.Consent) > 0 && string(claims.Consent) != "null" {
		if out.consent, err = parseConsentClaim(claims.Consent); err != nil {
			return verifiedToken{}, fmt.Errorf("%w: claim consent %s", errIdentity, err.Error())
		}
	}
	return out, nil
}
