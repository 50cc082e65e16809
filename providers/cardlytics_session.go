package providers

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/strictjson"
)

// Cardlytics session tokens (docs/providers.md, "Cardlytics"): one per customer, started with
// POST /v2/session/startSession, cached until shortly before expiry, renewed on 401.

const (
	cardlyticsSessionPath = "/v2/session/startSession"
	// Token lifetimes when the reply does not state one: documented as one hour for
	// session tokens and 15 minutes for bearer tokens.
	cardlyticsSessionTTL = time.Hour
	cardlyticsBearerTTL  = 15 * time.Minute
	// cardlyticsRenewBefore: a token is not used in its last minute, so that a request
	// never leaves with a token that expires while it is in flight (which would cost a
	// 401 and a second request).
	cardlyticsRenewBefore = time.Minute
	// cardlyticsMaxTTL caps a lifetime the reply states: a broken reply must not pin a
	// token for days.
	cardlyticsMaxTTL = 24 * time.Hour
	// cardlyticsMaxSessions bounds the cache. Customers are unbounded; tokens of customers
	// not seen for a token lifetime are worthless anyway.
	cardlyticsMaxSessions = 10_000
	// cardlyticsMaxToken caps an accepted token (a JWT of a few hundred bytes in practice):
	// it travels as a header on every call.
	cardlyticsMaxToken = 8 << 10
)

// cardlyticsMaxFieldNames caps the member names a "no usable token" error lists, and
// cardlyticsMaxFieldName each name's length: the reply is the upstream's, not the relay's.
const (
	cardlyticsMaxFieldNames = 20
	cardlyticsMaxFieldName  = 64
)

// cardlyticsSession is one cached token.
type cardlyticsSession struct {
	token string
	// renewAt is expiry minus cardlyticsRenewBefore: from then on a new session is started.
	renewAt time.Time
}

// cardlyticsFlight is one startSession in progress; concurrent callers for the same
// customer wait for it instead of starting sessions of their own.
type cardlyticsFlight struct {
	done  chan struct{}
	token string
	err   error
}

// cardlyticsStartFunc starts a session for customer: the token and its lifetime.
type cardlyticsStartFunc func(ctx context.Context, customer string) (token string, ttl time.Duration, err error)

// cardlyticsSessions caches tokens per customer. Safe for concurrent workers.
type cardlyticsSessions struct {
	now   func() time.Time
	start cardlyticsStartFunc
	max   int

	mu       sync.Mutex
	cached   map[string]cardlyticsSession
	inflight map[string]*cardlyticsFlight
}

func newCardlyticsSessions(now func() time.Time, start cardlyticsStartFunc, maxEntries int) *cardlyticsSessions {
	return &cardlyticsSessions{
		now: now, start: start, max: max(maxEntries, 1),
		cached:   map[string]cardlyticsSession{},
		inflight: map[string]*cardlyticsFlight{},
	}
}

// get returns a usable token for customer, starting a session when none is cached. Only
// one session per customer is started at a time; its result (token or error) is shared
// by every caller waiting for it. Errors are not cached: the next call tries again.
func (s *cardlyticsSessions) get(ctx context.Context, customer string) (token string, err error) {
	s.mu.Lock()
	if e, ok := s.cached[customer]; ok {
		if s.now().Before(e.renewAt) {
			s.mu.Unlock()
			return e.token, nil
		}
		delete(s.cached, customer)
	}
	if f, ok := s.inflight[customer]; ok {
		s.mu.Unlock()
		select {
		case <-f.done:
			return f.token, f.err
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	f := &cardlyticsFlight{done: make(chan struct{})}
	s.inflight[customer] = f
	s.mu.Unlock()

	// The lifetime counts from before the request: the upstream's clock started no later.
	issued := s.now()
	var ttl time.Duration
	// Deferred so that waiters are released and the flight removed even if start panics.
	defer func() {
		if f.err == nil && f.token == "" {
			f.err = errCardlyticsSessionAborted
		}
		s.mu.Lock()
		delete(s.inflight, customer)
		// A token too short-lived to be worth caching is used once, by this call and its
		// waiters.
		if f.err == nil && ttl > cardlyticsRenewBefore {
			s.store(customer, f.token, issued.Add(ttl-cardlyticsRenewBefore))
		}
		s.mu.Unlock()
		close(f.done)
		token, err = f.token, f.err
	}()
	f.token, ttl, f.err = s.start(ctx, customer)
	return f.token, f.err
}

// store caches token for customer until renewAt; s.mu must be held. When the cache is
// full it first drops renewable entries, then the ones due for renewal soonest (with one
// lifetime for all, the oldest). The scan is O(entries), paid only on an insert into a
// full cache, which follows a network round trip anyway.
func (s *cardlyticsSessions) store(customer, token string, renewAt time.Time) {
	if _, ok := s.cached[customer]; !ok && len(s.cached) >= s.max {
		now := s.now()
		for k, e := range s.cached {
			if !now.Before(e.renewAt) {
				delete(s.cached, k)
			}
		}
		for len(s.cached) >= s.max {
			var oldest string
			var at time.Time
			for k, e := range s.cached {
				if oldest == "" || e.renewAt.Before(at) {
					oldest, at = k, e.renewAt
				}
			}
			delete(s.cached, oldest)
		}
	}
	s.cached[customer] = cardlyticsSession{token: token, renewAt: renewAt}
}

// drop forgets customer's session, but only if it is still token: another worker may
// already have replaced a rejected token with a fresh one, which must survive.
func (s *cardlyticsSessions) drop(customer, token string) {
	s.mu.Lock()
	if e, ok := s.cached[customer]; ok && e.token == token {
		delete(s.cached, customer)
	}
	s.mu.Unlock()
}

// len returns the number of cached sessions (tests, metrics).
func (s *cardlyticsSessions) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.cached)
}

// cardlyticsNoToken describes a 2xx startSession reply without a usable token. Retryable
// (an HTTPError with the reply's status): the customer was accepted; the reply, or this
// relay's reading of it, is at fault.
const cardlyticsNoToken = "cardlytics startSession: the reply carries no usable token"

// errCardlyticsSessionAborted: a startSession that ended without a token or an error
// (a panic); its waiters get this rather than an empty token.
var errCardlyticsSessionAborted = errors.New("cardlytics startSession: aborted")

// startSession makes one startSession call for customer (cardlyticsStartFunc).
func (a *cardlyticsAdapter) startSession(ctx context.Context, customer string) (string, time.Duration, error) {
	req := &Request{URL: a.base + cardlyticsSessionPath}
	var body []byte
	if a.auth == cardlyticsAuthSession {
		body = append(body, `{"sourceCustomerId":`...)
		body = strictjson.AppendString(body, customer)
		body = append(body, `,"scopes":["api:customer"]}`...)
		if a.institution != "" {
			req.Header = append(req.Header, Header{Name: "X-CDLX-Institution-Id", Value: a.institution})
		}
	} else {
		req.Header = append(req.Header, Header{Name: "x-source-customer-id", Value: customer})
		body = append(body, `{"clientId":`...)
		body = strictjson.AppendString(body, a.clientID)
		body = append(body, `,"secret":`...)
		body = strictjson.AppendString(body, a.secret)
		body = append(body, '}')
	}
	req.Body = body
	reply, err := a.tr.Do(ctx, req)
	if err != nil {
		// Transport errors describe the connection, never the request: nothing to redact
		// beyond what the Transport already did.
		return "", 0, wrapCardlytics("startSession", err)
	}
	switch s := reply.Status; {
	case s >= 200 && s < 300:
		return a.sessionToken(reply)
	case s == 400:
		// Documented: "User is not enrolled in the program" / "User has no accounts".
		return "", 0, delivery.Permanent(&delivery.HTTPError{Status: s,
			Message: "cardlytics startSession refused the customer (not enrolled, or no accounts): " + a.snippet(reply)})
	case s == 401 || s == 403:
		a.log.Warn("startSession refused the relay's credentials", zap.Int("status", s))
		return "", 0, &delivery.HTTPError{Status: s, Message: "cardlytics startSession refused the relay: check providers.cardlytics " +
			a.credentialHint()}
	case s == 500 && a.auth == cardlyticsAuthBearer:
		// Documented: a wrong clientId or secret answers 500. Retryable (it counts against
		// the breaker, which stops the retries) but named as what it most likely is.
		a.log.Warn("startSession answered 500: wrong client_id/secret?")
		return "", 0, &delivery.HTTPError{Status: s, Message: "cardlytics startSession answered 500, its answer to a wrong clientId/secret: " +
			"check providers.cardlytics client_id/secret"}
	case s == 408 || s == 429 || s >= 500:
		return "", 0, a.classify(reply, "startSession")
	default:
		// 404, 405, 415...: the relay's request or base_url is wrong, not the event. Wait
		// for the fix rather than dead-letter every event.
		return "", 0, &delivery.HTTPError{Status: s, Message: "cardlytics startSession answered an unexpected status " +
			"(check providers.cardlytics base_url): " + a.snippet(reply)}
	}
}

// credentialHint names what to check when startSession refuses the relay.
func (a *cardlyticsAdapter) credentialHint() string {
	if a.auth == cardlyticsAuthSession {
		return "tls_cert_file/tls_key_file and institution_id"
	}
	return "client_id/secret and tls_cert_file/tls_key_file"
}

// sessionToken reads a 2xx startSession reply: the token from member a.tokenField
// (session_token_field), and its lifetime from
// "expiresIn"/"expires_in" (seconds) when present, else the documented one. The reply is
// never quoted in errors: it holds a token. Without a usable token, the error names the
// reply's members (names only) and the setting to change.
func (a *cardlyticsAdapter) sessionToken(reply *Reply) (string, time.Duration, error) {
	v, err := strictjson.Parse(reply.Body, 0)
	if err != nil || v.Kind != strictjson.Object {
		return "", 0, &delivery.HTTPError{Status: reply.Status, Message: cardlyticsNoToken + " (not a JSON object)"}
	}
	t := v.Get(a.tokenField)
	if t == nil {
		return "", 0, &delivery.HTTPError{Status: reply.Status, Message: cardlyticsNoToken + ": no member " +
			strconv.Quote(a.tokenField) + " (its members: " + a.memberNames(&v) + "); " +
			"set providers.cardlytics session_token_field to the one that carries the token"}
	}
	if t.Kind != strictjson.String || t.Str == "" || len(t.Str) > cardlyticsMaxToken || !visibleASCII(t.Str) {
		return "", 0, &delivery.HTTPError{Status: reply.Status, Message: cardlyticsNoToken + ": member " +
			strconv.Quote(a.tokenField) + " (providers.cardlytics session_token_field) is not a string of 1 to " +
			strconv.Itoa(cardlyticsMaxToken) + " visible ASCII characters"}
	}
	token := t.Str
	ttl := cardlyticsBearerTTL
	if a.auth == cardlyticsAuthSession {
		ttl = cardlyticsSessionTTL
	}
	for _, name := range []string{"expiresIn", "expires_in"} {
		e := v.Get(name)
		if e == nil || (e.Kind != strictjson.Number && e.Kind != strictjson.String) {
			continue
		}
		if secs, err := strconv.ParseFloat(e.Str, 64); err == nil && secs > 0 {
			ttl = time.Duration(min(secs, cardlyticsMaxTTL.Seconds()) * float64(time.Second))
		}
		break
	}
	return token, ttl, nil
}

// memberNames lists the names (never the values) of reply's members, for an error: in
// document order, quoted, each cut to cardlyticsMaxFieldName bytes, at most
// cardlyticsMaxFieldNames of them, with the relay's secrets redacted.
func (a *cardlyticsAdapter) memberNames(reply *strictjson.Value) string {
	if len(reply.Members) == 0 {
		return "none"
	}
	names := make([]string, 0, min(len(reply.Members), cardlyticsMaxFieldNames))
	for i, m := range reply.Members {
		if i == cardlyticsMaxFieldNames {
			names = append(names, "and "+strconv.Itoa(len(reply.Members)-i)+" more")
			break
		}
		name := m.Key
		if len(name) > cardlyticsMaxFieldName {
			name = strings.ToValidUTF8(name[:cardlyticsMaxFieldName], "") + "..."
		}
		names = append(names, strconv.QuoteToASCII(name))
	}
	return a.redactor().Replace(strings.Join(names, ", "))
}

// visibleASCII reports whether s is only printable ASCII without spaces: safe as an HTTP
// header value, with nothing a proxy would trim or fold.
func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
