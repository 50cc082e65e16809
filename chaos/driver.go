package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/eventrelay/relay/relay/queue"
)

// ---------------------------------------------------------------------------------------
// Load driver

// Route is one ingest route with a body that carries the event id where the upstream
// can see it.
type Route struct {
	Name     string // "ens/click"
	Provider string
	Body     func(id string) string
	// Customer, when set, is the Cardlytics customer of the event (X-Relay-Customer-Id).
	Customer func(id string) string
}

// cardlyticsCustomers is how many customers the driver spreads Cardlytics events over:
// few, so that one customer's events queue up and are merged into one request.
const cardlyticsCustomers = 3

// cardlyticsCustomer is id's customer.
func cardlyticsCustomer(id string) string {
	return fmt.Sprintf("chaos-cust-%d", hashID(id)%cardlyticsCustomers)
}

// cardlyticsBody is a message of the given clientEvents (AdImpression or AdInteraction
// names), the k-th carrying curationId "<id>/<k>/<n>" (package doc).
func cardlyticsBody(id string, events ...string) string {
	var b strings.Builder
	b.WriteString(`{"clientEvents":[`)
	for k, ev := range events {
		typ := "AdInteraction"
		if ev == "AdViewableImpression" {
			typ = "AdImpression"
		}
		if k > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"clientEventType":%q,"clientEvent":%q,"clientEventTimestamp":"2026-03-11T08:00:00Z",`+
			`"clientEventMetadata":{"serveToken":"91e471aed3c04b81bee792f23ad4859d","section":"LatestOffers",`+
			`"channel":"OLB","imageSlots":["logo"],"curationId":"%s/%d/%d","displayPosition":%d}}`, typ, ev, id, k, len(events), k)
	}
	b.WriteString(`]}`)
	return b.String()
}

// AllRoutes are the routes of the five providers, each with its id carrier.
var AllRoutes = []Route{
	{"ens/click", ENS, func(id string) string {
		return `{"campaignId":7,"placement":"p-` + id + `"}`
	}, nil},
	{"bannerflex/banner-events", BannerFlex, func(id string) string {
		return `{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","event":"click","campaignId":"bnrflx-` + id + `"}`
	}, nil},
	{"linkrunner/capture-event", Linkrunner, func(id string) string {
		return `{"event_name":"chaos_event","event_data":{"rid":"` + id + `","amount":1.5},"user_id":"chaos-user-1"}`
	}, nil},
	{"brevo/events", Brevo, func(id string) string {
		return `{"event_name":"chaos_event","identifiers":{"email_id":"chaos@example.com"},"event_properties":{"rid":"` + id + `"}}`
	}, nil},
	{"ens/impression", ENS, func(id string) string {
		return `{"campaignId":7,"placement":"p-` + id + `","location":"US","device":"mobile"}`
	}, nil},
	{"bannerflex/banner-events", BannerFlex, func(id string) string {
		return `{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","event":"impression","campaignId":"bnrflx-` + id + `"}`
	}, nil},
	// No payment_id: the relay fills in its event id (Guarantee 4).
	{"linkrunner/capture-payment", Linkrunner, func(string) string {
		return `{"user_id":"chaos-user-1","amount":9.99,"type":"FIRST_PAYMENT"}`
	}, nil},
	{"brevo/track-event", Brevo, func(id string) string {
		return `{"email":"chaos@example.com","event":"chaos_event","properties":{"rid":"` + id + `"}}`
	}, nil},
	// One clientEvent, and three in one message: the relay must keep a message's
	// clientEvents together in the request it merges.
	{"cardlytics/client-events", Cardlytics, func(id string) string {
		return cardlyticsBody(id, "AdViewableImpression")
	}, cardlyticsCustomer},
	{"cardlytics/client-events", Cardlytics, func(id string) string {
		return cardlyticsBody(id, "DisplayElementExpanded", "UrlLinkClicked", "ActivateOffer")
	}, cardlyticsCustomer},
}

// RoutesOf returns the routes of the given providers.
func RoutesOf(providers ...string) []Route {
	var out []Route
	for _, r := range AllRoutes {
		for _, p := range providers {
			if r.Provider == p {
				out = append(out, r)
			}
		}
	}
	return out
}

// Attempt is one ingest request the driver made.
type Attempt struct {
	ID     string
	Target string
	Start  time.Time
	Took   time.Duration
	// Status is the HTTP status, 0 when the request failed (connection refused, reset,
	// client timeout).
	Status int
}

// Driver sends a bounded, paced load of events with unique ids through the relays'
// ingest, resending after anything but a 202 with the same Idempotency-Key, and writes
// every 202 to the Ledger.
type Driver struct {
	Ledger  *Ledger
	Routes  []Route
	Targets []string
	// Rate is events per second, all routes together. Default 60.
	Rate float64
	// Workers bounds the events in flight. Default 6.
	Workers int
	// GiveUp bounds the resends of one event (then it is recorded as not accepted).
	// Default 60 s.
	GiveUp time.Duration
	// ClientTimeout bounds one ingest request. Default 3 s.
	ClientTimeout time.Duration

	tag        string
	clientOnce sync.Once
	client     *http.Client
	seq        atomic.Int64
	cancel     context.CancelFunc
	abort      chan struct{}
	aborted    sync.Once
	wg         sync.WaitGroup

	mu       sync.Mutex
	attempts []Attempt
}

// NewDriver returns a Driver with defaults and a random id tag; t.Cleanup aborts it.
func NewDriver(t testing.TB, l *Ledger, targets []string, routes []Route) *Driver {
	var b [3]byte
	_, _ = rand.Read(b[:])
	d := &Driver{Ledger: l, Routes: routes, Targets: targets, Rate: 60, Workers: 6, GiveUp: 60 * time.Second,
		ClientTimeout: 3 * time.Second, tag: "c" + hex.EncodeToString(b[:]), abort: make(chan struct{})}
	t.Cleanup(d.Abort)
	return d
}

func (d *Driver) httpClient() *http.Client {
	d.clientOnce.Do(func() {
		d.client = &http.Client{
			Timeout: d.ClientTimeout,
			Transport: &http.Transport{
				Proxy:               nil,
				DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
				MaxIdleConnsPerHost: d.Workers + 2,
				IdleConnTimeout:     5 * time.Second,
			},
		}
	})
	return d.client
}

// Start begins sending at Rate with Workers concurrent events until Stop.
func (d *Driver) Start() {
	d.httpClient()
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	lim := rate.NewLimiter(rate.Limit(d.Rate), 1)
	for range d.Workers {
		d.wg.Go(func() {
			for ctx.Err() == nil {
				if lim.Wait(ctx) != nil {
					return
				}
				n := d.seq.Add(1)
				d.Send(d.Routes[int(n-1)%len(d.Routes)], d.ID(n))
			}
		})
	}
}

// ID is the id of the n-th event.
func (d *Driver) ID(n int64) string { return fmt.Sprintf("%s-%06d", d.tag, n) }

// NextID reserves an id outside the paced load (for events a test sends itself).
func (d *Driver) NextID() string { return d.ID(d.seq.Add(1)) }

// Stop stops starting new events and waits for those in flight to be accepted or given
// up (bounded by GiveUp plus the client timeout).
func (d *Driver) Stop() {
	if d.cancel != nil {
		d.cancel()
	}
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d.GiveUp + d.ClientTimeout + 5*time.Second):
		d.Abort()
		<-done
	}
}

// Abort makes every event in flight give up at once (test cleanup).
func (d *Driver) Abort() {
	d.aborted.Do(func() { close(d.abort) })
	if d.cancel != nil {
		d.cancel()
	}
}

// Send posts one event until it is accepted, refused for good (4xx other than 408/429) or
// GiveUp passes, and records the outcome in the ledger. It returns the last status.
func (d *Driver) Send(r Route, id string) int {
	client := d.httpClient()
	body := r.Body(id)
	deadline := time.Now().Add(d.GiveUp)
	target := int(hashID(id))
	for try := 0; ; try++ {
		addr := d.Targets[(target+try)%len(d.Targets)]
		start := time.Now()
		status, retryAfter := d.post(client, addr, r, id, body)
		d.mu.Lock()
		d.attempts = append(d.attempts, Attempt{ID: id, Target: addr, Start: start, Took: time.Since(start), Status: status})
		d.mu.Unlock()
		switch {
		case status == 202:
			d.Ledger.Accept(r.Provider, r.Name, id, start, time.Now())
			return status
		case status >= 400 && status < 500 && status != 408 && status != 429:
			d.Ledger.Refuse(r.Provider, id, fmt.Sprintf("HTTP %d", status))
			return status
		}
		wait := time.Duration(min(try+1, 5)) * 100 * time.Millisecond
		if retryAfter > 0 {
			wait = min(retryAfter, time.Second)
		}
		wait += time.Duration(mrand.Int64N(int64(50 * time.Millisecond)))
		if time.Now().Add(wait).After(deadline) {
			d.Ledger.Refuse(r.Provider, id, fmt.Sprintf("gave up after %d tries (last status %d)", try+1, status))
			return status
		}
		select {
		case <-time.After(wait):
		case <-d.abort:
			d.Ledger.Refuse(r.Provider, id, "aborted")
			return status
		}
	}
}

func (d *Driver) post(client *http.Client, addr string, r Route, id, body string) (int, time.Duration) {
	req, err := http.NewRequest("POST", "http://"+addr+"/v1/"+r.Name, strings.NewReader(body))
	if err != nil {
		return 0, 0
	}
	if r.Customer != nil {
		req.Header.Set("X-Relay-Customer-Id", r.Customer(id))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+ClientToken)
	req.Header.Set("Idempotency-Key", id)
	res, err := client.Do(req)
	if err != nil {
		return 0, 0
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	var ra time.Duration
	if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && s > 0 {
		ra = time.Duration(s) * time.Second
	}
	return res.StatusCode, ra
}

func hashID(id string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return h
}

// Attempts returns every ingest request made so far.
func (d *Driver) Attempts() []Attempt {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Attempt(nil), d.attempts...)
}

// Sent is the number of events started so far.
func (d *Driver) Sent() int64 { return d.seq.Load() }

// ---------------------------------------------------------------------------------------
// Redis inspection

// Inspector reads the relay's Redis keys (prefix Prefix) for the checker and the bounds.
type Inspector struct {
	c redis.UniversalClient
}

// NewInspector connects to addr (host:port); t.Cleanup closes it.
func NewInspector(t testing.TB, addr string) *Inspector {
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DialTimeout: 500 * time.Millisecond,
		ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1, PoolSize: 4})
	t.Cleanup(func() { _ = c.Close() })
	return &Inspector{c: c}
}

// NewClusterInspector connects to a Redis Cluster through addrs (host:port, any nodes);
// t.Cleanup closes it. Every key of a provider is on one slot, so each read is one node's.
func NewClusterInspector(t testing.TB, addrs []string) *Inspector {
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Protocol: 2, DialTimeout: 500 * time.Millisecond,
		ReadTimeout: time.Second, WriteTimeout: time.Second, PoolSize: 4})
	t.Cleanup(func() { _ = c.Close() })
	return &Inspector{c: c}
}

func key(provider, suffix string) string { return Prefix + ":{" + provider + "}:" + suffix }

// DeadIDs maps the event ids in provider's dead-letter stream to their reasons.
func (in *Inspector) DeadIDs(ctx context.Context, provider string) (map[string]string, error) {
	out := map[string]string{}
	start := "-"
	for range 1000 { // bounded: 1000 pages of 1000
		msgs, err := in.c.XRangeN(ctx, key(provider, "dead"), start, "+", 1000).Result()
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			d := queue.DecodeDeadLetter(provider, m) // either stored format
			out[d.Message.ID] = d.Reason
		}
		if len(msgs) < 1000 {
			return out, nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
	return out, errors.New("dead-letter stream too long to read")
}

// Backlog is provider's undelivered entries in Redis: stream (ready and pending) plus
// retry set.
func (in *Inspector) Backlog(ctx context.Context, provider string) (int64, error) {
	pipe := in.c.Pipeline()
	xl := pipe.XLen(ctx, key(provider, "events"))
	zc := pipe.ZCard(ctx, key(provider, "retry"))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, err
	}
	return xl.Val() + zc.Val(), nil
}

// HeldBy is the number of entries pending (read, not acked) under the consumers of the
// relay process pid, over the given providers: what that process held when it died or
// stalled. Consumer names are "<host>-<pid>-<random>-f" (one per provider and relay).
func (in *Inspector) HeldBy(ctx context.Context, pid int, providers ...string) (int64, error) {
	var n int64
	mark := fmt.Sprintf("-%d-", pid)
	for _, p := range providers {
		x, err := in.c.XPending(ctx, key(p, "events"), "relay").Result()
		if err != nil {
			if strings.Contains(err.Error(), "NOGROUP") || errors.Is(err, redis.Nil) {
				continue
			}
			return 0, err
		}
		for consumer, c := range x.Consumers {
			if strings.Contains(consumer, mark) {
				n += c
			}
		}
	}
	return n, nil
}

// PendingIDs returns the entries pending under the consumers of the relay process pid,
// as "provider/stream id" → event id.
func (in *Inspector) PendingIDs(ctx context.Context, pid int, providers ...string) (map[string]string, error) {
	out := map[string]string{}
	mark := fmt.Sprintf("-%d-", pid)
	for _, p := range providers {
		stream := key(p, "events")
		x, err := in.c.XPending(ctx, stream, "relay").Result()
		if err != nil {
			if strings.Contains(err.Error(), "NOGROUP") || errors.Is(err, redis.Nil) {
				continue
			}
			return nil, err
		}
		for consumer, n := range x.Consumers {
			if !strings.Contains(consumer, mark) || n == 0 {
				continue
			}
			ps, err := in.c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: "relay",
				Start: "-", End: "+", Count: n + 100, Consumer: consumer}).Result()
			if err != nil {
				return nil, err
			}
			for _, e := range ps {
				id := ""
				if msgs, err := in.c.XRange(ctx, stream, e.ID, e.ID).Result(); err == nil && len(msgs) == 1 {
					id = queue.DecodeEntry(p, e.ID, msgs[0].Values).Message.ID
				}
				out[p+"/"+e.ID] = id
			}
		}
	}
	return out, nil
}

// Client is the underlying Redis client.
func (in *Inspector) Client() redis.UniversalClient { return in.c }

// ---------------------------------------------------------------------------------------
// Small helpers

// WaitFor polls cond every 25 ms until it holds or d passes; it reports whether it held.
func WaitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Percentile returns the p-th percentile (0..100) of ds, 0 for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}
