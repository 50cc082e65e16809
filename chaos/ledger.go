package chaos

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Accepted is one event a relay answered 202 for.
type Accepted struct {
	ID, Provider, Route string
	// Sent is when the request that was answered 202 started, At when the driver read
	// the 202. The relay may deliver before the driver reads its 202, so latencies are
	// measured from Sent: an upper bound of the time from the 202 to the delivery.
	Sent, At time.Time
}

// Ledger records every id answered 202, per provider, and every event the driver gave up
// on. It is safe for concurrent use.
type Ledger struct {
	mu       sync.Mutex
	accepted map[string]*Accepted // by id
	refused  map[string]map[string]string
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{accepted: map[string]*Accepted{}, refused: map[string]map[string]string{}}
}

// Accept records a 202 for id (the first one counts).
func (l *Ledger) Accept(provider, route, id string, sent, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.accepted[id]; !ok {
		l.accepted[id] = &Accepted{ID: id, Provider: provider, Route: route, Sent: sent, At: at}
	}
}

// Refuse records that id was never accepted (refused for good, or given up).
func (l *Ledger) Refuse(provider, id, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.refused[provider] == nil {
		l.refused[provider] = map[string]string{}
	}
	l.refused[provider][id] = why
}

// Accepted returns provider's accepted events.
func (l *Ledger) Accepted(provider string) []Accepted {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Accepted
	for _, a := range l.accepted {
		if a.Provider == provider {
			out = append(out, *a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// Refused returns provider's events that were not accepted, with why.
func (l *Ledger) Refused(provider string) map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]string{}
	for id, why := range l.refused[provider] {
		out[id] = why
	}
	return out
}

// Figures are one provider's delivery accounting.
type Figures struct {
	Provider string
	// Accepted ids (202), Delivered accepted ids the upstream accepted, Dead accepted ids
	// in the dead-letter stream, Lost = Accepted − (Delivered ∪ Dead).
	Accepted, Delivered, Dead, Lost int
	// Duplicates are 2xx deliveries beyond the first per id.
	Duplicates int
	// Phantom ids were delivered but never answered 202 (allowed: a 503 whose write went
	// through, then abandoned by the client).
	Phantom int
	// NotAccepted events were refused for good or given up by the driver.
	NotAccepted int
	// P50 and P99 are the latency from the accepted request to the first delivery.
	P50, P99 time.Duration
	// LostIDs are a few of the lost ids, for the failure message.
	LostIDs []string
	// DuplicateIDs are a few of the duplicated ids.
	DuplicateIDs []string

	// The complete sets, for the exact accounting (Report.Exact): every lost id, every id
	// delivered more than once with its deliveries beyond the first, and every id in the
	// dead-letter stream (accepted or not) with its reason.
	AllLost     []string
	Extra       map[string]int
	DeadReasons map[string]string
	// Delivered ids, for the exact accounting (an id justified as a dead letter must not
	// be delivered instead).
	DeliveredIDs map[string]bool
	// Malformed are the upstream requests whose ids were malformed (a Cardlytics
	// message torn apart or repeated in one request, or redelivered with another
	// clientEventId): Upstream.Malformed.
	Malformed []string
}

// Report is the checker's accounting of every provider, plus their total.
type Report struct {
	Name  string
	Rows  []Figures
	Total Figures
	// Backlog is the entries still in Redis (stream + retry sets) when it was computed;
	// -1 when Redis could not be read.
	Backlog int64
	// Settled means the backlog was empty and the upstreams idle for a while.
	Settled bool
}

// Row returns provider's figures (zero Figures when absent).
func (r Report) Row(provider string) Figures {
	for _, f := range r.Rows {
		if f.Provider == provider {
			return f
		}
	}
	return Figures{Provider: provider}
}

// Table renders the report as a fixed-width table.
func (r Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "== %s (settled %t, backlog %d)\n", r.Name, r.Settled, r.Backlog)
	fmt.Fprintf(&b, "%-11s %8s %9s %5s %5s %5s %7s %7s %9s %9s\n",
		"provider", "accepted", "delivered", "dead", "lost", "dups", "phantom", "not-acc", "p50", "p99")
	row := func(f Figures) {
		fmt.Fprintf(&b, "%-11s %8d %9d %5d %5d %5d %7d %7d %9s %9s\n", f.Provider, f.Accepted, f.Delivered, f.Dead,
			f.Lost, f.Duplicates, f.Phantom, f.NotAccepted, f.P50.Round(time.Millisecond), f.P99.Round(time.Millisecond))
	}
	for _, f := range r.Rows {
		row(f)
	}
	row(r.Total)
	for _, f := range r.Rows {
		if len(f.LostIDs) > 0 {
			fmt.Fprintf(&b, "lost at %s (first %d): %s\n", f.Provider, len(f.LostIDs), strings.Join(f.LostIDs, " "))
		}
	}
	return b.String()
}

// Checker compares a Ledger with what the upstreams received and the dead-letter streams
// hold.
type Checker struct {
	Name      string
	Ledger    *Ledger
	Upstreams map[string]*Upstream
	Inspector *Inspector
	// Providers are the rows, in order. Default: Providers present in Upstreams.
	Providers []string
}

// maxListed caps the ids a Figures lists.
const maxListed = 10

func (c *Checker) providers() []string {
	if len(c.Providers) > 0 {
		return c.Providers
	}
	var out []string
	for _, p := range Providers {
		if c.Upstreams[p] != nil {
			out = append(out, p)
		}
	}
	return out
}

// Check computes the report now. Redis errors (down, paused) are returned.
func (c *Checker) Check(ctx context.Context) (Report, error) {
	rep := Report{Name: c.Name, Total: Figures{Provider: "total"}}
	var all []time.Duration
	for _, p := range c.providers() {
		dead, err := c.Inspector.DeadIDs(ctx, p)
		if err != nil {
			return rep, fmt.Errorf("read %s dead letters: %w", p, err)
		}
		var (
			deliveries map[string][]time.Time
			malformed  []string
		)
		if u := c.Upstreams[p]; u != nil {
			deliveries, malformed = u.Deliveries(), u.Malformed()
		}
		f, lat := tally(p, c.Ledger.Accepted(p), deliveries, dead)
		f.Malformed = malformed
		f.NotAccepted = len(c.Ledger.Refused(p))
		all = append(all, lat...)
		rep.Rows = append(rep.Rows, f)

		t := &rep.Total
		t.Accepted += f.Accepted
		t.Delivered += f.Delivered
		t.Dead += f.Dead
		t.Lost += f.Lost
		t.Duplicates += f.Duplicates
		t.Phantom += f.Phantom
		t.NotAccepted += f.NotAccepted
	}
	rep.Total.P50, rep.Total.P99 = Percentile(all, 50), Percentile(all, 99)
	rep.Backlog = -1
	var backlog int64
	for _, p := range c.providers() {
		n, err := c.Inspector.Backlog(ctx, p)
		if err != nil {
			return rep, fmt.Errorf("read %s backlog: %w", p, err)
		}
		backlog += n
	}
	rep.Backlog = backlog
	return rep, nil
}

// Tally computes one provider's Figures from its accepted events, the upstream's 2xx
// deliveries by id and the dead-letter stream's ids with their reasons. It is pure: the
// Checker feeds it what the processes left, the unit tests feed it sets by hand.
func Tally(provider string, accepted []Accepted, deliveries map[string][]time.Time, dead map[string]string) Figures {
	f, _ := tally(provider, accepted, deliveries, dead)
	return f
}

func tally(provider string, accepted []Accepted, deliveries map[string][]time.Time, dead map[string]string) (Figures, []time.Duration) {
	f := Figures{Provider: provider, Extra: map[string]int{}, DeadReasons: make(map[string]string, len(dead)),
		DeliveredIDs: map[string]bool{}}
	for id, why := range dead {
		f.DeadReasons[id] = why
	}
	acc := make(map[string]bool, len(accepted))
	var lat []time.Duration
	for _, a := range accepted {
		if acc[a.ID] {
			continue
		}
		acc[a.ID] = true
		f.Accepted++
		ds, delivered := deliveries[a.ID]
		delivered = delivered && len(ds) > 0
		_, isDead := dead[a.ID]
		switch {
		case delivered:
			f.Delivered++
			f.DeliveredIDs[a.ID] = true
			first := slices.MinFunc(ds, func(x, y time.Time) int { return x.Compare(y) })
			lat = append(lat, max(first.Sub(a.Sent), 0))
		case isDead:
		default:
			f.Lost++
			f.AllLost = append(f.AllLost, a.ID)
			if len(f.LostIDs) < maxListed {
				f.LostIDs = append(f.LostIDs, a.ID)
			}
		}
		if isDead {
			f.Dead++
		}
	}
	ids := make([]string, 0, len(deliveries))
	for id := range deliveries {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		ds := deliveries[id]
		if len(ds) > 1 {
			f.Duplicates += len(ds) - 1
			f.Extra[id] = len(ds) - 1
			if len(f.DuplicateIDs) < maxListed {
				f.DuplicateIDs = append(f.DuplicateIDs, id)
			}
		}
		if len(ds) > 0 && !acc[id] {
			f.Phantom++
		}
	}
	f.P50, f.P99 = Percentile(lat, 50), Percentile(lat, 99)
	return f, lat
}

// idle reports whether no upstream is still answering a request.
func (c *Checker) idle() bool {
	for _, u := range c.Upstreams {
		if u.Active() > 0 {
			return false
		}
	}
	return true
}

// Settle waits (at most within) until Redis holds no backlog, the upstreams are idle and
// nothing accepted is lost, and the figures stay so for a moment; then it returns the
// report with Settled set. When loss persists with an empty backlog (nothing left that
// could still be delivered) for 3 s, it returns that report, Settled too: the loss is
// final. Otherwise, at the deadline, it returns the last report with Settled false.
func (c *Checker) Settle(t testing.TB, within time.Duration) Report {
	t.Helper()
	deadline := time.Now().Add(within)
	var (
		last      Report
		lossSince time.Time
	)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rep, err := c.Check(ctx)
		cancel()
		if err == nil {
			last = rep
			quiet := rep.Backlog == 0 && c.idle()
			switch {
			case quiet && rep.Total.Lost == 0:
				// Confirm: a late duplicate or a straggler would show in a second look.
				time.Sleep(300 * time.Millisecond)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				again, err := c.Check(ctx)
				cancel()
				if err == nil && again.Backlog == 0 && again.Total.Lost == 0 && c.idle() &&
					again.Total.Duplicates == rep.Total.Duplicates && again.Total.Delivered == rep.Total.Delivered {
					again.Settled = true
					return again
				}
			case quiet:
				if lossSince.IsZero() {
					lossSince = time.Now()
				} else if time.Since(lossSince) > 3*time.Second {
					rep.Settled = true
					return rep
				}
			default:
				lossSince = time.Time{}
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Logf("checker: %v", err)
			}
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
}
