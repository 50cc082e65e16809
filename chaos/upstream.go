package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventrelay/relay/internal/testpki"
)

// ---------------------------------------------------------------------------------------
// Fake upstreams

// Reply is what a fake upstream answers.
type Reply struct {
	Status int
	Header map[string]string
	Body   string
	// Delay is how long the fake waits before answering (a slow upstream). It waits the
	// whole delay even when the relay hangs up first, and then still counts the reply:
	// a real upstream would have processed the request.
	Delay time.Duration
	// Refuse names the events of a multi-event request the upstream refuses while it
	// accepts the others, id → the upstream's message: with Status 207 at Brevo's batch
	// path and no Body, the fake writes Brevo's batchEventsResponse naming their indexes.
	// Those ids are not delivered by this request; the others of a 2xx are.
	Refuse map[string]string
}

// Behavior decides the reply to one request; nil (or a zero Status) means the
// provider's normal success reply.
type Behavior func(h Hit) Reply

// Hit is one request a fake upstream received.
type Hit struct {
	// N is the request's index at this upstream, from 0.
	N int
	// At is when the request arrived (its body read).
	At time.Time
	// Done is when the reply was decided and written; zero while in flight.
	Done time.Time
	// Left is when the relay stopped waiting for this request, as far as the fake can
	// tell: the reply, or the relay hanging up (seen when the fake reads EOF, a little
	// late), whichever came first. Zero while it waits.
	Left time.Time
	Path string
	// IDs are the event ids found in the body (several for a batch or a merged request),
	// one per occurrence, in order.
	IDs []string
	// Refused are the ids of IDs the reply refused within a 2xx (a Brevo 207).
	Refused []string
	// Customer is the Cardlytics customer of the request (x-source-customer-id).
	Customer string
	// Malformed describes what was wrong with the request's ids: a Cardlytics message
	// whose clientEvents were not all in the request (torn apart), or that came with
	// another clientEventId than before.
	Malformed []string
	// Status is the reply's status; 0 while in flight.
	Status int
	// RetryAfter is the delay the reply asked for (Retry-After or x-sib-ratelimit-reset).
	RetryAfter time.Duration
	// Gone means the relay had hung up (timed out, or died) before the reply.
	Gone bool
	// Held means the request was held by HoldNext.
	Held bool
}

// OK reports whether the upstream accepted the request (2xx).
func (h Hit) OK() bool { return h.Status >= 200 && h.Status < 300 }

// Upstream is a fake provider on 127.0.0.1 that records every request by event id.
type Upstream struct {
	Provider string
	// PKI is the fake Cardlytics's certificates (mutual TLS, like the real one); nil for
	// the other providers, which are plain HTTP on loopback.
	PKI *testpki.PKI
	srv *httptest.Server
	// sessions are the Cardlytics session tokens issued, token → customer.
	sessions map[string]string
	// clientEventIDs are the clientEventIds seen per Cardlytics message, event id →
	// the first clientEventId: a redelivery must carry the same (Guarantee 4).
	clientEventIDs map[string]string

	mu      sync.Mutex
	hits    []*Hit
	behave  Behavior
	hold    *Held
	active  int // handlers running (including those whose relay hung up)
	closing chan struct{}
}

// NewUpstream starts a fake for provider; t.Cleanup closes it (releasing held requests).
func NewUpstream(t testing.TB, provider string) *Upstream {
	u := &Upstream{Provider: provider, closing: make(chan struct{}), sessions: map[string]string{},
		clientEventIDs: map[string]string{}}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	u.srv.Config.ReadHeaderTimeout = 10 * time.Second
	if provider == Cardlytics {
		u.PKI = testpki.New(t)
		u.srv.TLS = u.PKI.ServerTLS()
		u.srv.StartTLS()
	} else {
		u.srv.Start()
	}
	t.Cleanup(func() {
		close(u.closing)
		u.srv.CloseClientConnections()
		u.srv.Close()
	})
	return u
}

// NewUpstreams starts one fake per provider.
func NewUpstreams(t testing.TB, providers ...string) map[string]*Upstream {
	out := map[string]*Upstream{}
	for _, p := range providers {
		out[p] = NewUpstream(t, p)
	}
	return out
}

// URL is the fake's base URL (http://127.0.0.1:port; https for Cardlytics).
func (u *Upstream) URL() string { return u.srv.URL }

// SetBehavior replaces the reply policy (nil: always the normal success).
func (u *Upstream) SetBehavior(b Behavior) {
	u.mu.Lock()
	u.behave = b
	u.mu.Unlock()
}

// Held is a request held by HoldNext: Received yields it once it has arrived; the fake
// answers (with its behaviour) only after Release.
type Held struct {
	Received chan Hit
	release  chan struct{}
	once     sync.Once
}

// Release lets the held request be answered.
func (h *Held) Release() { h.once.Do(func() { close(h.release) }) }

// HoldNext holds the next request carrying an event id until Release (at most holdMax).
func (u *Upstream) HoldNext() *Held {
	h := &Held{Received: make(chan Hit, 1), release: make(chan struct{})}
	u.mu.Lock()
	u.hold = h
	u.mu.Unlock()
	return h
}

// normalReply is the provider's documented success.
func normalReply(provider string) Reply {
	switch provider {
	case ENS:
		return Reply{Status: 200, Body: `{"status":"success"}`}
	case Linkrunner:
		return Reply{Status: 201, Body: `{"msg":"ok","status":200,"data":null}`}
	case Brevo:
		return Reply{Status: 204}
	case Cardlytics:
		return Reply{Status: 200}
	default:
		return Reply{Status: 200, Body: `{"ok":true}`}
	}
}

func (u *Upstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	x := extract(r.URL.Path, body)
	h := &Hit{At: time.Now(), Path: r.URL.Path, IDs: x.ids, Malformed: x.malformed,
		Customer: r.Header.Get("x-source-customer-id")}

	u.mu.Lock()
	h.N = len(u.hits)
	u.hits = append(u.hits, h)
	for id, cid := range x.clientEventIDs {
		if old, ok := u.clientEventIDs[id]; !ok {
			u.clientEventIDs[id] = cid
		} else if old != cid {
			h.Malformed = append(h.Malformed, fmt.Sprintf("%s: clientEventId %s, before %s", id, cid, old))
		}
	}
	unauthorized := u.Provider == Cardlytics && r.URL.Path == cardlyticsEventsPath &&
		u.sessions[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")] != h.Customer
	behave := u.behave
	hold := u.hold
	if hold != nil && len(x.ids) > 0 {
		u.hold = nil
		h.Held = true
	} else {
		hold = nil
	}
	u.active++
	snapshot := *h
	u.mu.Unlock()

	// The relay waits until the reply or until it hangs up, whichever is first. The server
	// cancels the request's context when the connection closes (the body has been read,
	// so it is watching).
	var leaveOnce sync.Once
	leave := func() {
		leaveOnce.Do(func() {
			u.mu.Lock()
			h.Left = time.Now()
			u.mu.Unlock()
		})
	}
	stopWatch := context.AfterFunc(r.Context(), leave)
	defer func() {
		stopWatch()
		leave()
		u.mu.Lock()
		u.active--
		u.mu.Unlock()
	}()

	if hold != nil {
		hold.Received <- snapshot
		select {
		case <-hold.release:
		case <-u.closing:
		case <-time.After(holdMax):
		}
	}
	rep := Reply{}
	switch {
	case unauthorized:
		// Like Cardlytics: a token not issued for this customer (or none) is refused.
		rep = Reply{Status: 401, Body: `{"message":"Unauthorized"}`}
	case behave != nil:
		rep = behave(snapshot)
	}
	if rep.Status == 0 {
		d := rep.Delay
		rep = u.normal(r)
		rep.Delay = d
	}
	if rep.Body == "" && len(rep.Refuse) > 0 && (rep.Status == 207 || rep.Status == 400) {
		rep.Body = brevoBatchReply(x.ids, rep.Refuse)
	}
	if rep.Delay > 0 {
		t := time.NewTimer(rep.Delay)
		select {
		case <-t.C:
		case <-u.closing:
		}
		t.Stop()
	}
	var ra time.Duration
	for k, v := range rep.Header {
		if strings.EqualFold(k, "Retry-After") || strings.EqualFold(k, "x-sib-ratelimit-reset") {
			if s, err := strconv.ParseFloat(v, 64); err == nil {
				ra = time.Duration(s * float64(time.Second))
			}
		}
		w.Header().Set(k, v)
	}
	u.mu.Lock()
	h.Status, h.RetryAfter, h.Done = rep.Status, ra, time.Now()
	h.Gone = r.Context().Err() != nil
	for _, id := range x.ids {
		if _, ok := rep.Refuse[id]; ok {
			h.Refused = append(h.Refused, id)
		}
	}
	u.mu.Unlock()
	leave()
	if rep.Body != "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(rep.Status)
	_, _ = io.WriteString(w, rep.Body)
}

// Cardlytics paths.
const (
	cardlyticsSessionPath = "/v2/session/startSession"
	cardlyticsEventsPath  = "/v2/events/clientEvent"
)

// normal is the provider's documented success for request r. The fake Cardlytics issues
// a session token per startSession (bearer mode: {"token":...}), remembered for the
// customer, and echoes X-CDLX-Request-Id as requestId.
func (u *Upstream) normal(r *http.Request) Reply {
	if u.Provider != Cardlytics {
		return normalReply(u.Provider)
	}
	switch r.URL.Path {
	case cardlyticsSessionPath:
		var b [8]byte
		_, _ = rand.Read(b[:])
		token := "chaos-cdlx-token-" + hex.EncodeToString(b[:])
		u.mu.Lock()
		u.sessions[token] = r.Header.Get("x-source-customer-id")
		u.mu.Unlock()
		return Reply{Status: 200, Body: `{"token":"` + token + `"}`}
	case cardlyticsEventsPath:
		id, _ := json.Marshal(r.Header.Get("X-CDLX-Request-Id"))
		return Reply{Status: 200, Body: `{"requestId":` + string(id) + `}`}
	}
	return Reply{Status: 404, Body: `{"message":"no such path"}`}
}

// brevoBatchReply is Brevo's batchEventsResponse (the body of a 207 or a 400 to
// /v3/events/batch) for a request of ids of which refuse are refused: their 0-based
// indexes, grouped by message.
func brevoBatchReply(ids []string, refuse map[string]string) string {
	byMsg := map[string][]int{}
	var msgs []string
	failed := 0
	for i, id := range ids {
		msg, ok := refuse[id]
		if !ok {
			continue
		}
		if _, seen := byMsg[msg]; !seen {
			msgs = append(msgs, msg)
		}
		byMsg[msg] = append(byMsg[msg], i)
		failed++
	}
	type item struct {
		EventIndex []int  `json:"eventIndex"`
		Message    string `json:"message"`
	}
	rep := struct {
		Status     string `json:"status"`
		Total      int    `json:"total_events"`
		Successful int    `json:"successful_events"`
		Failed     int    `json:"failed_events"`
		Errors     []item `json:"errors"`
	}{Status: "partial_success", Total: len(ids), Successful: len(ids) - failed, Failed: failed}
	if failed == len(ids) {
		rep.Status = "failure"
	}
	for _, m := range msgs {
		rep.Errors = append(rep.Errors, item{EventIndex: byMsg[m], Message: m})
	}
	b, _ := json.Marshal(rep)
	return string(b)
}

// Hits returns a copy of every request so far.
func (u *Upstream) Hits() []Hit {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]Hit, len(u.hits))
	for i, h := range u.hits {
		out[i] = *h
	}
	return out
}

// Active is the number of requests still being answered (slow or held ones included).
func (u *Upstream) Active() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.active
}

// Deliveries maps every event id the upstream accepted to the times it accepted it.
func (u *Upstream) Deliveries() map[string][]time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := map[string][]time.Time{}
	for _, h := range u.hits {
		if h.OK() {
			for _, id := range h.IDs {
				if !slices.Contains(h.Refused, id) {
					out[id] = append(out[id], h.Done)
				}
			}
		}
	}
	return out
}

// Receipts maps every event id the upstream accepted to the arrival of the first request
// that delivered it: the upstream's receipt, for delivery latencies.
func (u *Upstream) Receipts() map[string]time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := map[string]time.Time{}
	for _, h := range u.hits {
		if !h.OK() {
			continue
		}
		for _, id := range h.IDs {
			if first, ok := out[id]; !slices.Contains(h.Refused, id) && (!ok || h.At.Before(first)) {
				out[id] = h.At
			}
		}
	}
	return out
}

// Malformed lists what was wrong with the ids of every request so far (Hit.Malformed).
func (u *Upstream) Malformed() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for _, h := range u.hits {
		for _, m := range h.Malformed {
			out = append(out, fmt.Sprintf("request %d: %s", h.N, m))
		}
	}
	return out
}

// MaxInFlight is the most requests the relay(s) had waiting at once among hits, each from
// its arrival until it Left, shortened by slack: the fake notices a hang-up only when it
// reads EOF, which may come a few milliseconds after the relay's next request. A request
// still waiting counts until now.
func MaxInFlight(hits []Hit, slack time.Duration) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	now := time.Now()
	for _, h := range hits {
		end := h.Left
		if end.IsZero() {
			end = now
		}
		end = end.Add(-slack)
		if !end.After(h.At) {
			continue
		}
		edges = append(edges, edge{h.At, 1}, edge{end, -1})
	}
	// Ends before starts at the same instant: touching intervals do not overlap.
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at.Equal(edges[j].at) {
			return edges[i].delta < edges[j].delta
		}
		return edges[i].at.Before(edges[j].at)
	})
	best, cur := 0, 0
	for _, e := range edges {
		cur += e.delta
		best = max(best, cur)
	}
	return best
}

// MaxRequestsPerWindow is the most requests that arrived at u within any window of
// length w (a sliding window over arrival times), counting only hits that arrived in
// [from, to).
func MaxRequestsPerWindow(hits []Hit, from, to time.Time, w time.Duration) int {
	var ts []time.Time
	for _, h := range hits {
		if !h.At.Before(from) && h.At.Before(to) {
			ts = append(ts, h.At)
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	best, j := 0, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= w {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}
