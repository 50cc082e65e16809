package providers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/strictjson"
)

// Cardlytics outbound side (docs/providers.md, "Cardlytics"): mutual TLS, a session token per
// customer (cardlytics_session.go), then POST /v2/events/clientEvent with the
// clientEvents of one customer's messages merged into one request.

const (
	cardlyticsEventsPath = "/v2/events/clientEvent"
	// cardlyticsRoute is the one ingest route this adapter serves.
	cardlyticsRoute = "cardlytics/client-events"

	cardlyticsAuthBearer  = "bearer"
	cardlyticsAuthSession = "session"

	// cardlyticsEventIDSpace is the UUID namespace of the clientEventIds the relay derives
	// for events sent without one: uuid.NewSHA1(space, "<relay event id>/<index in the
	// message's clientEvents>"). Deterministic, so a retry resends the same ids and the
	// upstream can deduplicate (Guarantee 4). Never change it: events being retried
	// across a deploy would get new ids. (A random v4 UUID, chosen once for this relay.)
	cardlyticsEventIDSpace = "5b0e3c1e-7d4a-4f2b-9a65-2c8f1d7e40b3"

	// cardlyticsDefaultTimeout applies when the config leaves timeout unset (its default
	// is the same).
	cardlyticsDefaultTimeout = 10 * time.Second
)

// Errors for events the adapter refuses before any request; wrapped, test with errors.Is.
var (
	// errCardlyticsCustomer: the customer id cannot travel as a header. Ingest validated
	// it; this is defence in depth against a tampered or legacy stream entry.
	errCardlyticsCustomer = errors.New("cardlytics: customer id must be 1 to " +
		strconv.Itoa(cardlyticsMaxCustomerID) + " visible ASCII characters")
	// errCardlyticsBody: the stored body is not a usable {"clientEvents":[...]}.
	errCardlyticsBody = errors.New("cardlytics: stored event body unusable")
	// errCardlyticsBatch: the forwarder handed over a batch that breaks the Adapter
	// contract (two customers, or more than cardlyticsMaxEvents clientEvents). The extra
	// events are not sent now, and not dead-lettered: they were never judged.
	errCardlyticsBatch = errors.New("cardlytics: event not sent: batch mixes customers or exceeds " +
		strconv.Itoa(cardlyticsMaxEvents) + " clientEvents")
)

var _ delivery.Adapter = (*cardlyticsAdapter)(nil)

// cardlyticsAdapter delivers Cardlytics client events. Immutable after construction except
// for the session cache, which is safe for concurrent workers.
type cardlyticsAdapter struct {
	log *zap.Logger
	tr  *Transport
	// base is base_url without a trailing slash.
	base string
	// auth is cardlyticsAuthBearer or cardlyticsAuthSession.
	auth string
	// tokenField is the startSession reply member that carries the token
	// (session_token_field).
	tokenField                    string
	clientID, secret, institution string
	idSpace                       uuid.UUID
	// now is the clock of token expiry and Retry-After dates; tests replace it.
	now      func() time.Time
	sessions *cardlyticsSessions
}

// newCardlyticsAdapter builds the adapter: loads the client certificate for mutual TLS and
// the optional CA bundle the server is verified against.
func newCardlyticsAdapter(cfg *CardlyticsConfig, log *zap.Logger) (delivery.Adapter, error) {
	if cfg == nil {
		return nil, errors.New("no configuration")
	}
	if log == nil {
		log = zap.NewNop()
	}
	a := &cardlyticsAdapter{
		log:         log,
		base:        strings.TrimRight(cfg.BaseURL, "/"),
		auth:        cfg.Auth,
		clientID:    cfg.ClientID,
		secret:      cfg.Secret,
		institution: cfg.InstitutionID,
		idSpace:     uuid.MustParse(cardlyticsEventIDSpace),
		now:         time.Now,
	}
	if a.auth == "" {
		a.auth = cardlyticsAuthBearer // the config default
	}
	a.tokenField = (&CardlyticsConfig{Auth: a.auth, SessionTokenField: cfg.SessionTokenField}).tokenField()
	switch {
	case a.base == "":
		return nil, errors.New("base_url is required (Cardlytics has no public default)")
	case a.auth != cardlyticsAuthBearer && a.auth != cardlyticsAuthSession:
		return nil, fmt.Errorf("auth %q must be bearer or session", a.auth)
	case a.auth == cardlyticsAuthBearer && (a.clientID == "" || a.secret == ""):
		return nil, errors.New("client_id and secret are required for auth bearer")
	case strings.TrimSpace(a.tokenField) == "":
		return nil, errors.New("session_token_field must name the startSession reply member that carries the token")
	case a.institution != "" && !visibleASCII(a.institution):
		// It is a header on every startSession: refused here, once, rather than as a
		// Permanent error that would dead-letter every event.
		return nil, errors.New("institution_id must be printable ASCII without spaces")
	}
	tlsConf, err := cardlyticsTLS(cfg)
	if err != nil {
		return nil, err
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = cardlyticsDefaultTimeout
	}
	a.tr = NewTransport(TransportOptions{
		Timeout:  timeout,
		MaxConns: max(cfg.Workers, 1),
		TLS:      tlsConf,
		Secrets:  []string{cfg.Secret, cfg.ClientID},
	})
	// The closure reads a.now at call time, so a test's clock applies to the cache too.
	a.sessions = newCardlyticsSessions(func() time.Time { return a.now() }, a.startSession, cardlyticsMaxSessions)
	return a, nil
}

// cardlyticsTLS is the client TLS config: TLS 1.2 or later, the server verified against
// tls_ca_file or the system roots (never skipped), and the client certificate when
// configured (config allows none only for a plain-http loopback fake).
func cardlyticsTLS(cfg *CardlyticsConfig) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case cfg.TLSCertFile != "" && cfg.TLSKeyFile != "":
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			// crypto/tls errors describe PEM blocks, never key material.
			return nil, fmt.Errorf("tls_cert_file %q and tls_key_file %q: %w", cfg.TLSCertFile, cfg.TLSKeyFile, err)
		}
		// Always send it: with Certificates alone, crypto/tls sends nothing when the
		// server's list of acceptable CAs does not name the issuer (an intermediate left
		// out of the file), and the failure would look like a server fault.
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	case cfg.TLSCertFile != "" || cfg.TLSKeyFile != "":
		return nil, errors.New("tls_cert_file and tls_key_file go together")
	}
	if cfg.TLSCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca_file %q holds no PEM certificate", cfg.TLSCAFile)
		}
		c.RootCAs = pool
	}
	return c, nil
}

// Provider implements Adapter.
func (a *cardlyticsAdapter) Provider() string { return Cardlytics }

// MaxBatchWeight implements Adapter: at most 50 clientEvents per request (the maximum is
// undocumented; 50 is the relay's own cap, also enforced at ingest).
func (a *cardlyticsAdapter) MaxBatchWeight() int { return cardlyticsMaxEvents }

// BatchKey implements Adapter: one customer per request (the session token is the
// customer's), weighted by the message's number of clientEvents. A message whose customer
// id is unusable is sent alone (and refused by Deliver).
func (a *cardlyticsAdapter) BatchKey(m *delivery.Message) (string, int) {
	n := 1
	if v, err := strictjson.Parse(m.Body, 0); err == nil {
		if list := v.Get("clientEvents"); list != nil && list.Kind == strictjson.Array && len(list.Items) > 0 {
			n = len(list.Items)
		}
	}
	if cardlyticsCheckCustomer(m.CustomerID) != nil {
		return "", n
	}
	return m.CustomerID, n
}

// Deliver implements Adapter: one clientEvent request carrying the clientEvents of every
// usable message of batch, in order. Messages refused before sending (route, customer id,
// body) get their own Permanent error; all the others share the request's fate, except
// when the request is refused for its content (cardlyticsSplitStatus): Cardlytics does
// not say which event is at fault, so the messages are split in halves and each half is
// sent again (deliverParts) until the refused messages stand alone.
//
// X-CDLX-Request-Id is the relay event id of the first message in the request: Cardlytics
// echoes it as requestId, so a request can be traced to an event (and through it, the
// request's other events are the batch's).
func (a *cardlyticsAdapter) Deliver(ctx context.Context, batch []*delivery.Message) []error {
	out := make([]error, len(batch))
	var (
		customer string
		weight   int
		parts    []cardlyticsPart
	)
	for i, m := range batch {
		// Like every adapter: an event of another route has another body schema, and
		// sending it as client events would be a guess.
		if m.Route != cardlyticsRoute {
			out[i] = unknownRoute(m)
			continue
		}
		if err := cardlyticsCheckCustomer(m.CustomerID); err != nil {
			out[i] = err
			continue
		}
		evs, err := a.clientEvents(m)
		if err != nil {
			out[i] = err
			continue
		}
		if customer == "" {
			customer = m.CustomerID
		}
		if m.CustomerID != customer || weight+len(evs) > cardlyticsMaxEvents {
			out[i] = errCardlyticsBatch
			continue
		}
		weight += len(evs)
		parts = append(parts, cardlyticsPart{index: i, id: m.ID, events: evs})
	}
	if len(parts) > 0 {
		a.deliverParts(ctx, customer, parts, out)
	}
	return out
}

// cardlyticsPart is one message's share of a clientEvent request: its index in the batch
// (and so in Deliver's results), its relay event id and its clientEvents.
type cardlyticsPart struct {
	index  int
	id     string
	events []strictjson.Value
}

// deliverParts sends the clientEvents of parts (one customer's) in one request and
// records its outcome in out for each part. When a request of more than one part is
// refused for its content (cardlyticsSplit), the parts are split in halves and each half
// is delivered the same way, recursively: a refused event ends up alone in its request,
// and only it gets the refusal (Permanent), while every other part gets its own half's
// outcome. Each halving costs two requests, so isolating one bad part among n costs at
// most 2·⌈log2 n⌉ requests beyond the first (12 for 50). Any other outcome (delivered,
// retryable, a refusal that is not about the content) applies to every part of the
// request, as it would without splitting; so does the refusal of a single part.
func (a *cardlyticsAdapter) deliverParts(ctx context.Context, customer string, parts []cardlyticsPart, out []error) {
	var items []strictjson.Value
	for _, p := range parts {
		items = append(items, p.events...)
	}
	body := strictjson.ObjectValue(strictjson.Member{Key: "clientEvents",
		Value: strictjson.Value{Kind: strictjson.Array, Items: items}})
	err := a.send(ctx, customer, parts[0].id, body.AppendJSON(nil))
	if len(parts) > 1 && cardlyticsSplit(err) {
		a.log.Debug("clientEvent refused a merged request: splitting it",
			zap.Int("events", len(parts)), zap.Int("status", delivery.StatusOf(err)))
		half := len(parts) / 2
		a.deliverParts(ctx, customer, parts[:half], out)
		a.deliverParts(ctx, customer, parts[half:], out)
		return
	}
	for _, p := range parts {
		out[p.index] = err
	}
}

// cardlyticsSplit reports whether err is a refusal of a request's content, which may be
// the fault of one event only: a Permanent reply with a cardlyticsSplitStatus.
func cardlyticsSplit(err error) bool {
	return err != nil && delivery.IsPermanent(err) && slices.Contains(cardlyticsSplitStatus, delivery.StatusOf(err))
}

// cardlyticsSplitStatus are the permanent statuses that judge a request's body, so that a
// smaller request may pass: 400 (an invalid event), 409 (a conflicting one, e.g. a
// clientEventId already used), 413 (too large), 422. The other permanent statuses (403,
// 404, 405, ...) concern the endpoint or the relay's access, the same for any subset of
// the events: splitting would only multiply the requests.
var cardlyticsSplitStatus = []int{400, 409, 413, 422}

// cardlyticsCheckCustomer refuses customer ids that are unsafe as a header value: empty,
// longer than ingest allows, or with anything but visible ASCII (control characters
// above all: header injection).
func cardlyticsCheckCustomer(c string) error {
	if c == "" || len(c) > cardlyticsMaxCustomerID || !visibleASCII(c) {
		return delivery.Permanent(errCardlyticsCustomer)
	}
	return nil
}

// clientEvents returns m's clientEvents, each with a clientEventId: the one sent, or one
// derived from m.ID and the event's index (see cardlyticsEventIDSpace).
func (a *cardlyticsAdapter) clientEvents(m *delivery.Message) ([]strictjson.Value, error) {
	v, err := strictjson.Parse(m.Body, 0)
	if err != nil {
		// strictjson messages give a byte offset and a reason, never the content.
		return nil, delivery.Permanent(fmt.Errorf("%w: %v", errCardlyticsBody, err))
	}
	list := v.Get("clientEvents")
	if list == nil || list.Kind != strictjson.Array || len(list.Items) == 0 || len(list.Items) > cardlyticsMaxEvents {
		return nil, delivery.Permanent(fmt.Errorf("%w: clientEvents must be an array of 1 to %d events", errCardlyticsBody, cardlyticsMaxEvents))
	}
	for i := range list.Items {
		ev := &list.Items[i]
		if ev.Kind != strictjson.Object {
			return nil, delivery.Permanent(fmt.Errorf("%w: clientEvents[%d] is not an object", errCardlyticsBody, i))
		}
		switch id := ev.Get("clientEventId"); {
		case id != nil && id.Kind == strictjson.String && id.Str != "":
			// The client's own id is kept: it is what the client may dedupe on.
		case id == nil || id.Kind == strictjson.Null || id.Kind == strictjson.String:
			derived := uuid.NewSHA1(a.idSpace, []byte(m.ID+"/"+strconv.Itoa(i))).String()
			ev.Set("clientEventId", strictjson.StringValue(derived))
		default:
			return nil, delivery.Permanent(fmt.Errorf("%w: clientEvents[%d].clientEventId is not a string", errCardlyticsBody, i))
		}
	}
	return list.Items, nil
}

// send posts body for customer with a session token. On 401 (session expired, which
// Cardlytics does not distinguish from any other refusal of the token) it drops the
// token, starts a new session and retries once; a second 401 is a fault of the relay's
// setup, retryable so that it counts against the breaker.
func (a *cardlyticsAdapter) send(ctx context.Context, customer, requestID string, body []byte) error {
	token, err := a.sessions.get(ctx, customer)
	if err != nil {
		return err
	}
	reply, err := a.post(ctx, customer, requestID, token, body)
	if err != nil {
		return err
	}
	if reply.Status != 401 {
		return a.classify(reply, "clientEvent", token)
	}
	a.sessions.drop(customer, token)
	fresh, err := a.sessions.get(ctx, customer)
	if err != nil {
		return err
	}
	reply, err = a.post(ctx, customer, requestID, fresh, body)
	if err != nil {
		return err
	}
	if reply.Status != 401 {
		return a.classify(reply, "clientEvent", token, fresh)
	}
	a.sessions.drop(customer, fresh)
	a.log.Warn("clientEvent refused a fresh session token")
	return &delivery.HTTPError{Status: 401, Message: "cardlytics clientEvent refused a fresh session token: check providers.cardlytics " +
		a.credentialHint()}
}

// post makes one clientEvent request.
func (a *cardlyticsAdapter) post(ctx context.Context, customer, requestID, token string, body []byte) (*Reply, error) {
	req := &Request{URL: a.base + cardlyticsEventsPath, Body: body,
		Header: []Header{{Name: "X-CDLX-Request-Id", Value: requestID}}}
	if a.auth == cardlyticsAuthSession {
		req.Header = append(req.Header, Header{Name: "X-CDLX-Session-Token", Value: token})
	} else {
		req.Header = append(req.Header,
			Header{Name: "Authorization", Value: "Bearer " + token},
			Header{Name: "x-source-customer-id", Value: customer})
	}
	reply, err := a.tr.Do(ctx, req)
	if err != nil {
		return nil, wrapCardlytics("clientEvent", err)
	}
	return reply, nil
}

// classify reads a reply other than a 401 with the default rules, which match the
// provider's (2xx ok; 400, 404, 405 Permanent; 408, 429, 5xx retryable with
// Retry-After; 3xx retryable, base_url), after redacting the tokens used as well as the
// Transport's secrets: an upstream may echo them in an error body, and the excerpt goes
// into dead letters. A 403 is not the event's fault: Cardlytics refuses the relay's
// client certificate or source IP (its allow-list) with it, so it is retryable, counts
// against the breaker and names the settings to check.
func (a *cardlyticsAdapter) classify(reply *Reply, call string, tokens ...string) error {
	if reply.Status >= 200 && reply.Status < 300 {
		return nil
	}
	redacted := &Reply{Status: reply.Status, header: reply.header,
		Body: []byte(a.redactor(tokens...).Replace(string(reply.Body)))}
	if reply.Status == 403 {
		msg := "cardlytics " + call + ": 403: check providers.cardlytics TLS certificate (tls_cert_file, tls_key_file) / IP allow-list"
		if s := redacted.Snippet(); s != "" {
			msg += ": " + s
		}
		return &delivery.HTTPError{Status: 403, Message: msg}
	}
	err := Classify(redacted, a.now())
	var h *delivery.HTTPError
	if errors.As(err, &h) {
		h.Message = strings.TrimSuffix("cardlytics "+call+": "+h.Message, ": ")
	}
	return err
}

// snippet is a reply excerpt with secrets redacted (no token was sent with startSession).
func (a *cardlyticsAdapter) snippet(reply *Reply) string {
	return (&Reply{Body: []byte(a.redactor().Replace(string(reply.Body)))}).Snippet()
}

// redactor replaces the secret, the client id and the given tokens. Longest first: a
// strings.Replacer prefers earlier arguments at one position, and a secret that starts
// with a shorter one would otherwise leak its tail.
func (a *cardlyticsAdapter) redactor(tokens ...string) *strings.Replacer {
	secrets := append([]string{a.secret, a.clientID}, tokens...)
	slices.SortFunc(secrets, func(x, y string) int { return len(y) - len(x) })
	var pairs []string
	for _, s := range secrets {
		if s != "" {
			pairs = append(pairs, s, "[redacted]")
		}
	}
	return strings.NewReplacer(pairs...)
}

// wrapCardlytics names the call in a transport error, keeping what it wraps (Permanent,
// context errors) visible to errors.Is/As.
func wrapCardlytics(call string, err error) error {
	return fmt.Errorf("cardlytics %s: %w", call, err)
}
