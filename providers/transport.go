package providers

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/eventrelay/relay/delivery"
)

// MaxReplyBytes caps how much of an upstream reply body is read: a reply is only ever
// classified, and an endless body must not exhaust memory.
const MaxReplyBytes = 64 << 10

// snippetBytes caps the reply excerpt kept in errors and dead letters.
const snippetBytes = 200

// Header is one request or reply header.
type Header struct{ Name, Value string }

// Request is one upstream POST with a JSON body.
type Request struct {
	URL    string
	Header []Header
	Body   []byte
}

// Reply is an upstream reply, read up to MaxReplyBytes.
type Reply struct {
	Status int
	Body   []byte
	header []Header
	redact *strings.Replacer
}

// Header returns the first value of reply header name (case-insensitive), or "".
func (r *Reply) Header(name string) string {
	for _, h := range r.header {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// Snippet is a short excerpt of the body, valid UTF-8, with the provider's secrets
// redacted: upstreams do echo credentials in error bodies.
func (r *Reply) Snippet() string { return excerpt(r.Body, r.redact) }

// excerpt shortens b to snippetBytes of valid UTF-8 without control characters, with the
// secrets in redact removed. Secrets are redacted before the cut: cutting first would leak
// the prefix of a secret that straddles the cut, which no longer matches the replacer.
func excerpt(b []byte, redact *strings.Replacer) string {
	s := string(bytes.TrimSpace(b))
	if redact != nil {
		s = redact.Replace(s)
	}
	if len(s) > snippetBytes {
		s = s[:snippetBytes]
	}
	s = strings.ToValidUTF8(s, "")
	return strings.Map(func(c rune) rune {
		if c < 0x20 || c == utf8.RuneError {
			return ' '
		}
		return c
	}, s)
}

// TransportOptions configure a provider's HTTP client.
type TransportOptions struct {
	// Timeout bounds one request, connect to last byte.
	Timeout time.Duration
	// MaxConns caps connections to the upstream (set it to the provider's workers).
	MaxConns int
	// TLS is the client TLS config (Cardlytics: client certificate); nil: system roots.
	TLS *tls.Config
	// Secrets are redacted from every reply excerpt and error.
	Secrets []string
}

// Transport is one provider's HTTP client: one shared fasthttp client with a hard
// timeout, a reply size cap, TLS verification and no redirects (fasthttp follows none
// unless asked) and no automatic retries (the forwarder decides about retries).
type Transport struct {
	client  *fasthttp.Client
	timeout time.Duration
	redact  *strings.Replacer
}

// NewTransport builds a Transport.
func NewTransport(o TransportOptions) *Transport {
	var pairs []string
	// Longest first: a Replacer prefers earlier arguments at one position, so a secret
	// that begins with a shorter one would otherwise leak its tail.
	secrets := slices.Clone(o.Secrets)
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, s := range secrets {
		if s != "" {
			pairs = append(pairs, s, "[redacted]")
		}
	}
	t := &Transport{timeout: o.Timeout}
	if len(pairs) > 0 {
		t.redact = strings.NewReplacer(pairs...)
	}
	t.client = &fasthttp.Client{
		Name:                      "event-relay",
		ReadTimeout:               o.Timeout,
		WriteTimeout:              o.Timeout,
		MaxConnWaitTimeout:        o.Timeout,
		MaxConnsPerHost:           max(o.MaxConns, 1),
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		StreamResponseBody:        true,
		DisablePathNormalizing:    true,
		TLSConfig:                 o.TLS,
		MaxIdleConnDuration:       30 * time.Second,
	}
	return t
}

// Redact removes the provider's secrets from s.
func (t *Transport) Redact(s string) string {
	if t.redact == nil {
		return s
	}
	return t.redact.Replace(s)
}

// errHeaderValue refuses header values that could inject headers upstream.
var errHeaderValue = errors.New("header value contains a control character")

// Do sends r as a POST with Content-Type application/json. The deadline is the earlier of
// ctx's and now+Timeout. A transport failure (connect, timeout, reset) returns an error,
// which is retryable; an HTTP reply of any status returns a Reply and nil.
func (t *Transport) Do(ctx context.Context, r *Request) (*Reply, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(r.URL)
	req.Header.SetContentType("application/json")
	for _, h := range r.Header {
		if strings.ContainsFunc(h.Value, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
			return nil, delivery.Permanent(fmt.Errorf("%s: %w", h.Name, errHeaderValue))
		}
		req.Header.Set(h.Name, h.Value)
	}
	req.SetBodyRaw(r.Body)
	deadline := time.Now().Add(t.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := t.client.DoDeadline(req, resp, deadline); err != nil {
		return nil, fmt.Errorf("upstream request failed: %s", t.Redact(err.Error()))
	}
	reply := &Reply{Status: resp.StatusCode(), redact: t.redact}
	for k, v := range resp.Header.All() {
		reply.header = append(reply.header, Header{Name: string(k), Value: string(v)})
	}
	var body []byte
	var err error
	if stream := resp.BodyStream(); stream != nil {
		body, err = io.ReadAll(io.LimitReader(stream, MaxReplyBytes))
		_ = resp.CloseBodyStream()
	} else {
		b := resp.Body()
		body = append([]byte(nil), b[:min(len(b), MaxReplyBytes)]...)
	}
	if err != nil && len(body) == 0 {
		// The status line arrived; the body broke off. The status still decides.
		body = nil
	}
	reply.Body = body
	return reply, nil
}
