package chaos_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventrelay/relay/chaos"
	"github.com/eventrelay/relay/internal/redistest"
)

// relayBin is the relay binary, built once for every scenario.
var relayBin string

// summary collects every scenario's report, printed at the end of the run.
var (
	summaryMu sync.Mutex
	summary   []string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// Only the checker's unit tests run: newEnv skips every scenario.
		fmt.Println("chaos: scenarios skipped in -short mode")
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "chaos-relay-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	relayBin, err = chaos.BuildRelay(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "building the relay:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if testing.Verbose() && len(summary) > 0 {
		fmt.Printf("\nchaos figures (scale %d):\n%s", chaos.Scale(), strings.Join(summary, "\n"))
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one scenario's world: a Redis, a fake per provider, a ledger and its checker.
type env struct {
	t       *testing.T
	redis   *redistest.Server
	ups     map[string]*chaos.Upstream
	setup   *chaos.Setup
	ledger  *chaos.Ledger
	insp    *chaos.Inspector
	checker *chaos.Checker
}

func newEnv(t *testing.T, opts redistest.Options) *env {
	if relayBin == "" {
		t.Skip("chaos scenarios skipped in -short mode")
	}
	rs := redistest.Start(t, opts)
	ups := chaos.NewUpstreams(t, chaos.Providers...)
	ledger := chaos.NewLedger()
	insp := chaos.NewInspector(t, rs.Addr())
	return &env{t: t, redis: rs, ups: ups, setup: chaos.NewSetup(rs.URL(), ups), ledger: ledger, insp: insp,
		checker: &chaos.Checker{Name: t.Name(), Ledger: ledger, Upstreams: ups, Inspector: insp}}
}

// relay creates (does not start) a relay of this env's setup, as configured now.
func (e *env) relay() *chaos.Relay { return chaos.NewRelay(e.t, relayBin, e.setup.Config()) }

// driver is a load driver over every route (or the given ones) to the relays.
func (e *env) driver(routes []chaos.Route, relays ...*chaos.Relay) *chaos.Driver {
	var targets []string
	for _, r := range relays {
		targets = append(targets, r.Ingest)
	}
	if routes == nil {
		routes = chaos.AllRoutes
	}
	d := chaos.NewDriver(e.t, e.ledger, targets, routes)
	d.Rate = 60 * float64(min(chaos.Scale(), 2)) // long mode: longer and a little heavier
	return d
}

// settle waits for the figures to settle, logs the table and keeps it for the summary.
func (e *env) settle(within time.Duration) chaos.Report {
	e.t.Helper()
	rep := e.checker.Settle(e.t, within)
	table := rep.Table()
	e.t.Log("\n" + table)
	summaryMu.Lock()
	summary = append(summary, table)
	summaryMu.Unlock()
	if !rep.Settled {
		e.t.Errorf("figures did not settle within %s (backlog %d, lost %d)", within, rep.Backlog, rep.Total.Lost)
	}
	return rep
}

// noLoss fails the test when anything accepted was lost or the driver gave up on events.
func noLoss(t *testing.T, rep chaos.Report) {
	t.Helper()
	if rep.Total.Lost != 0 {
		t.Errorf("lost %d accepted events (see the table)", rep.Total.Lost)
	}
	if rep.Total.Accepted == 0 {
		t.Error("nothing was accepted: the scenario proved nothing")
	}
	if rep.Total.NotAccepted != 0 {
		t.Errorf("%d events were never accepted (the driver gave up)", rep.Total.NotAccepted)
	}
}

// exact fails the test unless every accepted event is accounted for exactly: delivered
// once (or duplicated within exp's bounds) or dead-lettered with the reason exp justifies,
// and no other dead letter (chaos.Report.Exact). It complements noLoss, which only asks
// for delivered-or-dead.
func exact(t *testing.T, rep chaos.Report, exp chaos.Expect) chaos.Verdict {
	t.Helper()
	v := rep.Exact(exp)
	if err := v.Err(); err != nil {
		t.Error(err)
	}
	return v
}

func sleep(d time.Duration) { time.Sleep(d) }

func bg() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

// seqOf is the sequence number in a driver id ("c1a2b3-000042" → 42).
func seqOf(id string) int {
	i := strings.LastIndexByte(id, '-')
	n, _ := strconv.Atoi(id[i+1:])
	return n
}

// busy makes every upstream take 100 ms per request (Cardlytics 20 ms: a merged request
// refused for one event is split, several requests within one attempt's timeout), so
// that a kill or a stop finds attempts in flight; BannerFlex, Brevo and Cardlytics also
// refuse their poison events (poison).
func busy(e *env) {
	for p, u := range e.ups {
		pf := poison(p)
		u.SetBehavior(func(h chaos.Hit) chaos.Reply {
			rep := pf(h)
			rep.Delay = 100 * time.Millisecond
			if p == chaos.Cardlytics {
				rep.Delay = 20 * time.Millisecond
			}
			return rep
		})
	}
}

// 1. kill -9 the relay every few seconds under load and restart it, all five providers
// loaded, Brevo batching and Cardlytics merging, with partial refusals inside their
// requests: nothing accepted is lost; exactly the poison events are dead letters;
// duplicates only of entries the killed process held (pending under its consumers, read
// ahead included) when it died.
func TestKill9RelayUnderLoad(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	busy(e)
	merging(e)
	for _, tu := range e.setup.Tune {
		// Above 2×timeout + 4 s: the fetchers read one job ahead per sender.
		tu.Visibility = 7 * time.Second
	}
	r := e.relay()
	r.Start()
	d := e.driver(mergeRoutes(), r)
	d.Start()
	kills := 3 * chaos.Scale()
	held := map[string]bool{} // "provider/event id" pending under a killed process
	for i := range kills {
		sleep(2*time.Second + time.Duration(i%3)*700*time.Millisecond)
		pid := r.PID()
		r.Kill()
		ctx, cancel := bg()
		ids, err := e.insp.PendingIDs(ctx, pid, chaos.Providers...)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for k, id := range ids {
			p, _, _ := strings.Cut(k, "/")
			held[p+"/"+id] = true
		}
		r.Start()
	}
	sleep(2 * time.Second)
	d.Stop()
	rep := e.settle(90 * time.Second)
	noLoss(t, rep)
	t.Logf("%d kills; entries held by the killed processes: %d", kills, len(held))
	// Exactly: the poison events dead (permanent), nothing else; duplicates only of the
	// entries the killed processes held, each.
	exact(t, rep, chaos.Expect{DeadReason: poisonDead, MaxDuplicates: len(held),
		MayDuplicate: func(p, id string) bool { return held[p+"/"+id] }})
	for p := range poisoned {
		if rep.Row(p).Dead == 0 {
			t.Errorf("no dead letters at %s: the poison events were not refused?", p)
		}
	}
	checkMerged(t, e, true)
}

// 2. kill -9 the relay after the upstream has received (and will accept) a request and
// before the relay could ack it: the event is delivered again by the next relay, once
// per such kill, and nothing is lost. One worker and load on ENS only, so the held
// request is the only one in flight at each kill.
func TestKill9BetweenUpstreamSuccessAndAck(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	e.setup.Tune[chaos.ENS].Workers = 1
	r := e.relay()
	r.Start()
	d := e.driver(chaos.RoutesOf(chaos.ENS), r)
	d.Rate = 20
	d.Start()
	kills := 3 * chaos.Scale()
	var heldIDs []string
	for range kills {
		sleep(500 * time.Millisecond)
		h := e.ups[chaos.ENS].HoldNext()
		var hit chaos.Hit
		select {
		case hit = <-h.Received:
		case <-time.After(15 * time.Second):
			t.Fatal("no request reached the ENS fake within 15 s")
		}
		r.Kill()
		h.Release() // the upstream accepts it after all: the relay never heard
		heldIDs = append(heldIDs, hit.IDs...)
		r.Start()
	}
	sleep(time.Second)
	d.Stop()
	rep := e.settle(90 * time.Second)
	noLoss(t, rep)
	dels := e.ups[chaos.ENS].Deliveries()
	for _, id := range heldIDs {
		if len(dels[id]) < 2 {
			t.Errorf("held event %s delivered %d times; want the held delivery and a redelivery", id, len(dels[id]))
		}
	}
	if rep.Total.Duplicates > kills {
		t.Errorf("%d duplicates after %d kills between the upstream's success and the ack", rep.Total.Duplicates, kills)
	}
	// Exactly: no dead letter (no poison); at most one duplicate per kill.
	exact(t, rep, chaos.Expect{MaxDuplicates: kills})
}

// readBlock is the forwarder's XREADGROUP BLOCK (forward.Options.Block, 2 s): a stopped
// relay's blocked reads stay registered in Redis that long, and Redis still hands them
// new entries, so a stopped relay keeps acquiring pending entries for up to readBlock.
const readBlock = 2 * time.Second

// 3. Two relays on one Redis; one is stopped (SIGSTOP) longer than the visibility
// timeout: the other takes its pending entries over and delivers them; after SIGCONT
// nothing is lost, and duplicates come only from what the stopped one held.
func TestSIGSTOPRelayPastVisibilityTimeout(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	busy(e)
	vis := e.setup.Tune[chaos.ENS].Visibility
	a, b := e.relay(), e.relay()
	a.Start()
	b.Start()
	d := e.driver(nil, a, b)
	d.Start()
	held := map[string]string{} // every entry ever pending under a stopped relay → event id
	var stops, resumes []time.Time
	for range chaos.Scale() {
		sleep(3 * time.Second)
		pid := a.PID()
		a.Pause()
		stopped := time.Now()
		stops = append(stops, stopped)
		// Poll what the stopped relay holds until the other has taken all of it over
		// (after its reads have expired): it cannot acquire more from then on. Polling
		// every 100 ms misses nothing: an entry is taken over only after vis (3 s) idle.
		limit := readBlock + vis + 5*time.Second
		takenOver := time.Time{}
		for time.Since(stopped) < limit {
			ctx, cancel := bg()
			ids, err := e.insp.PendingIDs(ctx, pid, chaos.Providers...)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			for k, id := range ids {
				held[k] = id
			}
			if len(ids) == 0 && time.Since(stopped) > readBlock+500*time.Millisecond {
				takenOver = time.Now()
				break
			}
			sleep(100 * time.Millisecond)
		}
		if takenOver.IsZero() {
			t.Fatalf("the entries of the stopped relay were not taken over within %s", limit)
		}
		t.Logf("stopped relay's entries taken over %s after SIGSTOP", takenOver.Sub(stopped).Round(100*time.Millisecond))
		// Resume at once (past the visibility timeout): the other relay is probably still
		// sending what it took over, and the resumed one's stale outcomes for those
		// entries must not count.
		a.Resume()
		resumes = append(resumes, time.Now())
	}
	sleep(2 * time.Second)
	d.Stop()
	rep := e.settle(90 * time.Second)
	noLoss(t, rep)
	t.Logf("entries held by the stopped relay: %d", len(held))
	// Exactly: the poison events dead (permanent), nothing else; duplicates only from the
	// entries the stopped relay held.
	exact(t, rep, chaos.Expect{DeadReason: poisonDead, MaxDuplicates: len(held)})
	if rep.Total.Duplicates <= len(held) {
		return
	}
	t.Errorf("%d duplicates, more than the %d entries the stopped relay held", rep.Total.Duplicates, len(held))
	heldIDs := map[string]bool{}
	for _, id := range held {
		heldIDs[id] = true
	}
	for _, p := range chaos.Providers {
		for id, ds := range e.ups[p].Deliveries() {
			if len(ds) > 2 || len(ds) == 2 && !heldIDs[id] {
				t.Logf("%s: %s delivered at %v (held: %t; stops %v, resumes %v)", p, id, clock(ds), heldIDs[id], clock(stops), clock(resumes))
			}
		}
	}
}

func clock(ts []time.Time) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Format("15:04:05.000"))
	}
	return out
}

// inFlightCapacity is the most attempts the relays of a setup can have in flight.
func inFlightCapacity(s *chaos.Setup, relays int) int {
	n := 0
	for _, tu := range s.Tune {
		n += tu.Workers
	}
	return n * relays
}

// 4. kill -9 redis-server (AOF everysec) under load, all five providers loaded, Brevo
// batching and Cardlytics merging with partial refusals, and restart it on the same
// directory: ingest answers 503 meanwhile, the driver resends with the same ids, nothing
// accepted is lost, exactly the poison events are dead letters, and only events
// delivered while an outcome could not be written (from crashWindow before the kill to
// crashWindow after Redis answers again) may be delivered twice.
func TestRedisKill9UnderLoad(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	refusing(e)
	merging(e)
	r := e.relay()
	r.Start()
	d := e.driver(mergeRoutes(), r)
	d.Start()
	// An outcome is written within milliseconds of its reply while Redis is up, and
	// retried for visibility_timeout/2 when it is not; a second either side covers a
	// recorder delayed by a loaded machine and the first commands on broken connections.
	const crashWindow = time.Second
	var windows []window
	for range chaos.Scale() {
		sleep(3 * time.Second)
		killed := time.Now()
		e.redis.Kill()
		sleep(time.Second)
		e.redis.Restart()
		windows = append(windows, window{killed.Add(-crashWindow), time.Now().Add(crashWindow)})
	}
	sleep(3 * time.Second)
	d.Stop()
	rep := e.settle(90 * time.Second)
	noLoss(t, rep)
	n503 := 0
	for _, a := range d.Attempts() {
		if a.Status == 503 {
			n503++
		}
	}
	if n503 == 0 {
		t.Error("no 503 during the Redis outage: the scenario did not hit it")
	}
	within := deliveredWithin(e, windows)
	t.Logf("%d events first delivered within the crash windows", len(within))
	// Exactly: the poison events dead (permanent), nothing else; duplicates only of
	// events delivered within a crash window.
	exact(t, rep, chaos.Expect{DeadReason: poisonDead, MaxDuplicates: len(within),
		MayDuplicate: func(p, id string) bool { return within[p+"/"+id] }})
	checkMerged(t, e, true)
}

// 5. Redis hangs (SIGSTOP): ingest answers 503 within the enqueue timeout (1 s), the
// relay neither leaks goroutines nor memory, and everything recovers.
func TestRedisHang(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	r := e.relay()
	r.Start()
	d := e.driver(nil, r)
	d.Start()
	sleep(3 * time.Second)
	before, err := r.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	hang := 5 * time.Second
	if chaos.Long() {
		hang = 10 * time.Second
	}
	hangStart := time.Now()
	e.redis.Pause()
	sleep(hang)
	hangEnd := time.Now()
	e.redis.Resume()
	sleep(5 * time.Second)
	d.Stop()
	rep := e.settle(90 * time.Second)
	noLoss(t, rep)
	// Exactly: no dead letter (no poison). An entry the relay held when Redis hung (an
	// attempt in flight, or a job read ahead, per sender) may have its outcome unwritable
	// past the visibility timeout and be delivered again: at most two per worker.
	exact(t, rep, chaos.Expect{MaxDuplicates: 2 * inFlightCapacity(e.setup, 1)})

	// Ingest latency of the requests made while Redis hung (started early enough to be
	// answered before it came back).
	var during []time.Duration
	accepted := 0
	for _, a := range d.Attempts() {
		if a.Start.After(hangStart) && a.Start.Add(1500*time.Millisecond).Before(hangEnd) {
			during = append(during, a.Took)
			if a.Status == 202 {
				accepted++
			}
		}
	}
	p100 := chaos.Percentile(during, 100)
	t.Logf("ingest during the hang: %d requests, p50 %s, p100 %s, %d accepted", len(during),
		chaos.Percentile(during, 50).Round(time.Millisecond), p100.Round(time.Millisecond), accepted)
	if len(during) == 0 {
		t.Error("no ingest request during the hang")
	}
	// enqueue_timeout is 1 s; 1.5 s leaves room for a loaded 2-core machine.
	if p100 > 1500*time.Millisecond {
		t.Errorf("ingest p100 during the Redis hang is %s; want about 1 s (enqueue_timeout)", p100)
	}
	if accepted > 0 {
		t.Errorf("%d requests answered 202 while Redis hung", accepted)
	}

	after, err := r.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	g0, _ := before.Get("go_goroutines")
	g1, _ := after.Get("go_goroutines")
	m0, _ := before.Get("process_resident_memory_bytes")
	m1, _ := after.Get("process_resident_memory_bytes")
	t.Logf("goroutines %v → %v; RSS %.1f MiB → %.1f MiB", g0, g1, m0/(1<<20), m1/(1<<20))
	if g0 == 0 || m0 == 0 {
		t.Error("go_goroutines or process_resident_memory_bytes missing from /metrics")
	}
	if g1 > max(g0*1.5, g0+40) {
		t.Errorf("goroutines grew from %v to %v across the hang", g0, g1)
	}
	if m1 > m0*1.5+32<<20 {
		t.Errorf("RSS grew from %.1f MiB to %.1f MiB across the hang", m0/(1<<20), m1/(1<<20))
	}
}

// latencies returns, for the accepted events of provider accepted in [from, to), the time
// from the 202 to their first delivery (undelivered ones count as until now).
func latencies(e *env, provider string, from, to time.Time) []time.Duration {
	dels := e.ups[provider].Deliveries()
	var out []time.Duration
	for _, a := range e.ledger.Accepted(provider) {
		if a.At.Before(from) || !a.At.Before(to) {
			continue
		}
		first := time.Now()
		for _, at := range dels[a.ID] {
			if at.Before(first) {
				first = at
			}
		}
		out = append(out, max(first.Sub(a.Sent), 0))
	}
	return out
}

// deliveredIn counts provider's events first delivered in [from, to).
func deliveredIn(e *env, provider string, from, to time.Time) int {
	n := 0
	for _, ts := range e.ups[provider].Deliveries() {
		first := ts[0]
		for _, at := range ts {
			if at.Before(first) {
				first = at
			}
		}
		if !first.Before(from) && first.Before(to) {
			n++
		}
	}
	return n
}

// 6. One provider answers 503 for a while: its breaker opens (relay_breaker_state 2),
// attempts stop being spent, the other providers' delivery (rate and latency) and the
// ingest path are unaffected, and the backlog drains after recovery within the rate
// limit.
func TestFailingProviderOpensBreaker(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	const failing = chaos.BannerFlex
	tu := e.setup.Tune[failing]
	tu.RateLimit, tu.Failures, tu.OpenFor = 25, 3, 2*time.Second
	tu.BackoffBase, tu.BackoffMax = 200*time.Millisecond, 2*time.Second
	// Without the breaker, 503s for the whole window would exhaust 6 attempts.
	tu.MaxAttempts = 6
	r := e.relay()
	r.Start()
	d := e.driver(nil, r)
	d.Start()

	aStart := time.Now()
	sleep(5 * time.Second)
	aEnd := time.Now()
	e.ups[failing].SetBehavior(func(chaos.Hit) chaos.Reply {
		return chaos.Reply{Status: 503, Body: `{"ok":false,"error":"maintenance"}`}
	})
	window := chaos.Dur(10 * time.Second)
	bStart := time.Now()
	sawOpen := false
	for time.Since(bStart) < window {
		if m, err := r.Metrics(); err == nil {
			if v, ok := m.Get("relay_breaker_state", "provider", failing); ok && v == 2 {
				sawOpen = true
			}
		}
		sleep(100 * time.Millisecond)
	}
	bEnd := time.Now()
	e.ups[failing].SetBehavior(nil)
	sleep(3 * time.Second)
	d.Stop()

	// Drain: the failing provider's backlog empties within its rate limit.
	ctx, cancel := bg()
	backlog, err := e.insp.Backlog(ctx, failing)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	drainBound := tu.OpenFor + tu.BackoffMax + time.Duration(float64(backlog)/tu.RateLimit*1.5*float64(time.Second)) + 10*time.Second
	if !chaos.WaitFor(drainBound, func() bool {
		ctx, cancel := bg()
		defer cancel()
		n, err := e.insp.Backlog(ctx, failing)
		return err == nil && n == 0
	}) {
		t.Errorf("the %s backlog (%d when the load stopped) did not drain within %s", failing, backlog, drainBound)
	}
	t.Logf("%s backlog %d when the load stopped; drained %s after recovery", failing, backlog, time.Since(bEnd).Round(100*time.Millisecond))
	rep := e.settle(60 * time.Second)
	noLoss(t, rep)
	if rep.Total.Duplicates != 0 {
		t.Errorf("%d duplicates; a failing provider must cause none", rep.Total.Duplicates)
	}
	if !sawOpen {
		t.Errorf("relay_breaker_state{provider=%q} never showed 2 (open) while it failed", failing)
	}
	if dead := rep.Row(failing).Dead; dead != 0 {
		t.Errorf("%d %s events dead-lettered: attempts were spent while the breaker should have been open", dead, failing)
	}
	// Exactly: every event delivered once, no dead letter at any provider.
	exact(t, rep, chaos.Expect{})
	hits := e.ups[failing].Hits()
	during := 0
	for _, h := range hits {
		if !h.At.Before(bStart) && h.At.Before(bEnd) {
			during++
		}
	}
	maxDuring := tu.Failures + tu.Workers + 2*int(window/tu.OpenFor+1) + 4
	t.Logf("%d requests to %s during the %s outage (bound %d; %.0f without a breaker)", during, failing, window,
		maxDuring, tu.RateLimit*window.Seconds())
	if during > maxDuring {
		t.Errorf("%d requests to the failing %s in %s: the breaker did not stop attempts (bound %d)", during, failing, window, maxDuring)
	}
	peak := chaos.MaxRequestsPerWindow(hits, bEnd, time.Now(), time.Second)
	t.Logf("at most %d requests to %s in any second while draining (rate_limit %g)", peak, failing, tu.RateLimit)
	if float64(peak) > tu.RateLimit+2 {
		t.Errorf("%d requests to %s within one second while draining; rate_limit is %g", peak, failing, tu.RateLimit)
	}

	// The others: latency from 202 to delivery and delivery rate, before and during.
	for _, p := range chaos.Providers {
		if p == failing {
			continue
		}
		la, lb := latencies(e, p, aStart, aEnd), latencies(e, p, bStart, bEnd)
		p99a, p99b := chaos.Percentile(la, 99), chaos.Percentile(lb, 99)
		rateA := float64(deliveredIn(e, p, aStart, aEnd)) / aEnd.Sub(aStart).Seconds()
		rateB := float64(deliveredIn(e, p, bStart, bEnd)) / bEnd.Sub(bStart).Seconds()
		t.Logf("%-10s before: %3d events, delivered %.1f/s, p99 %s; during: %3d events, delivered %.1f/s, p99 %s", p,
			len(la), rateA, p99a.Round(time.Millisecond), len(lb), rateB, p99b.Round(time.Millisecond))
		if p99b > max(3*p99a, p99a+500*time.Millisecond) {
			t.Errorf("%s p99 from 202 to delivery went from %s to %s while %s failed", p, p99a, p99b, failing)
		}
		if rateB < 0.7*rateA {
			t.Errorf("%s delivery rate fell from %.1f/s to %.1f/s while %s failed", p, rateA, rateB, failing)
		}
	}
	var ingA, ingB []time.Duration
	for _, a := range d.Attempts() {
		switch {
		case a.Start.After(aStart) && a.Start.Before(aEnd):
			ingA = append(ingA, a.Took)
		case a.Start.After(bStart) && a.Start.Before(bEnd):
			ingB = append(ingB, a.Took)
			if a.Status != 202 {
				t.Errorf("ingest answered %d while %s failed", a.Status, failing)
			}
		}
	}
	ia, ib := chaos.Percentile(ingA, 99), chaos.Percentile(ingB, 99)
	t.Logf("ingest p99 before %s, during %s", ia.Round(time.Millisecond), ib.Round(time.Millisecond))
	if ib > max(3*ia, ia+300*time.Millisecond) {
		t.Errorf("ingest p99 went from %s to %s while %s failed", ia, ib, failing)
	}
}

// 7. 429 storms, with Retry-After (ENS, Cardlytics) and with Brevo's
// x-sib-ratelimit-reset, all five providers loaded, Brevo batching and Cardlytics
// merging: after a 429 that asked for d, no request reaches that provider's API before d
// has passed, and every event is delivered once.
// Requests arriving within epsilon of the 429 were already on their way when the relay
// read it. Brevo's v3 API and its legacy tracker are separate lanes, each with its own
// pause: a 429 of one says nothing about requests to the other.
func TestRateLimitStormsAreHonoured(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	// The breaker would stop requests on its own; keep it out of the way to test the pause.
	stormy := []string{chaos.ENS, chaos.Brevo, chaos.Cardlytics}
	for _, p := range stormy {
		e.setup.Tune[p].Failures = 1000
	}
	merging(e)
	r := e.relay()
	r.Start()
	d := e.driver(mergeRoutes(), r)
	d.Start()
	sleep(2 * time.Second)
	storm := chaos.Dur(6 * time.Second)
	e.ups[chaos.ENS].SetBehavior(func(chaos.Hit) chaos.Reply {
		return chaos.Reply{Status: 429, Header: map[string]string{"Retry-After": "2"}, Body: `{"error":"slow down"}`}
	})
	e.ups[chaos.Brevo].SetBehavior(func(chaos.Hit) chaos.Reply {
		return chaos.Reply{Status: 429, Header: map[string]string{"x-sib-ratelimit-reset": "2"}, Body: `{"code":"too_many_requests"}`}
	})
	e.ups[chaos.Cardlytics].SetBehavior(func(chaos.Hit) chaos.Reply {
		return chaos.Reply{Status: 429, Header: map[string]string{"Retry-After": "2"}, Body: `{"message":"Too Many Requests"}`}
	})
	sleep(storm)
	for _, p := range stormy {
		e.ups[p].SetBehavior(nil)
	}
	sleep(2 * time.Second)
	d.Stop()
	rep := e.settle(60 * time.Second)
	noLoss(t, rep)
	if rep.Total.Duplicates != 0 {
		t.Errorf("%d duplicates; 429s must cause none", rep.Total.Duplicates)
	}
	// Exactly: every event delivered once, no dead letter (429s are retried).
	exact(t, rep, chaos.Expect{})
	checkMerged(t, e, false)
	const epsilon = 200 * time.Millisecond
	for _, p := range stormy {
		hits := e.ups[p].Hits()
		n429, early, inFlight := 0, 0, 0
		for _, h := range hits {
			if h.Status != 429 {
				continue
			}
			n429++
			for _, h2 := range hits {
				if sameLane := (h2.Path == "/api/v2/trackEvent") == (h.Path == "/api/v2/trackEvent"); !sameLane {
					continue
				}
				gap := h2.At.Sub(h.Done)
				switch {
				case gap <= 0 || gap >= h.RetryAfter:
				case gap <= epsilon:
					inFlight++
				default:
					early++
					if early <= 5 {
						t.Errorf("%s: request %d arrived %s after the 429 of request %d, which asked for %s",
							p, h2.N, gap.Round(time.Millisecond), h.N, h.RetryAfter)
					}
				}
			}
		}
		t.Logf("%s: %d requests, %d answered 429, %d early requests, %d within %s (already sent)", p, len(hits), n429, early, inFlight, epsilon)
		if n429 < 2 {
			t.Errorf("%s: only %d 429s: the storm did not happen", p, n429)
		}
		if early > 0 {
			t.Errorf("%s: %d requests before the time a 429 asked for", p, early)
		}
	}
}

// 8. A slow upstream (replies after the relay's timeout): attempts time out, the
// requests waiting at the upstream never exceed the workers, duplicates come only from
// timed-out attempts the upstream processed anyway, and nothing is lost once it is fast
// again.
func TestSlowUpstream(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	const slow = chaos.Linkrunner
	tu := e.setup.Tune[slow]
	tu.Failures = 1000 // keep attempting: this scenario is about timeouts, not the breaker
	r := e.relay()
	r.Start()
	d := e.driver(nil, r)
	d.Start()
	sleep(2 * time.Second)
	slowFrom := time.Now()
	// Late replies: half accepted (the relay timed out, the upstream processed it anyway:
	// the duplicate risk), half failed (the event must still be retried: a loss otherwise).
	e.ups[slow].SetBehavior(func(h chaos.Hit) chaos.Reply {
		if h.N%2 == 1 {
			return chaos.Reply{Status: 503, Delay: tu.Timeout + 500*time.Millisecond}
		}
		return chaos.Reply{Delay: tu.Timeout + 500*time.Millisecond}
	})
	sleep(chaos.Dur(6 * time.Second))
	e.ups[slow].SetBehavior(nil)
	sleep(2 * time.Second)
	d.Stop()
	rep := e.settle(90 * time.Second)
	noLoss(t, rep)
	timedOut, lateOK := 0, 0
	hits := e.ups[slow].Hits()
	var since []chaos.Hit
	for _, h := range hits {
		if !h.At.Before(slowFrom) {
			since = append(since, h)
		}
		if h.Gone {
			timedOut++
			if h.OK() {
				lateOK++
			}
		}
	}
	maxIn := chaos.MaxInFlight(since, 50*time.Millisecond)
	t.Logf("%s: %d attempts timed out (%d of them accepted late by the upstream); at most %d requests waiting at once (workers %d)",
		slow, timedOut, lateOK, maxIn, tu.Workers)
	if timedOut == 0 {
		t.Error("no attempt timed out: the scenario did not happen")
	}
	if maxIn > tu.Workers {
		t.Errorf("%d requests in flight at once at %s; workers is %d", maxIn, slow, tu.Workers)
	}
	if dups := rep.Row(slow).Duplicates; dups > lateOK {
		t.Errorf("%d duplicates at %s, more than its %d timed-out attempts the upstream accepted anyway", dups, slow, lateOK)
	}
	for _, p := range chaos.Providers {
		if p != slow && rep.Row(p).Duplicates != 0 {
			t.Errorf("%d duplicates at %s, which was never slow", rep.Row(p).Duplicates, p)
		}
	}
	// Exactly: no dead letter (late 503s are retried); duplicates only at the slow
	// provider, from its timed-out attempts it accepted anyway.
	bounds := map[string]int{}
	for _, p := range chaos.Providers {
		bounds[p] = 0
	}
	bounds[slow] = lateOK
	exact(t, rep, chaos.Expect{MaxDuplicates: lateOK, MaxDuplicatesAt: bounds})
}

// 9. SIGTERM under load, all five providers loaded, Brevo batching and Cardlytics merging
// with partial refusals: the relay stops cleanly (exit 0), the next one delivers what it
// left, nothing is lost, exactly the poison events are dead letters and nothing is sent
// twice.
func TestSIGTERMUnderLoad(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	busy(e) // attempts are in flight when SIGTERM comes: they must finish and be recorded
	merging(e)
	r := e.relay()
	r.Start()
	d := e.driver(mergeRoutes(), r)
	d.Start()
	for range 2 * chaos.Scale() {
		sleep(3 * time.Second)
		start := time.Now()
		if code := r.Term(20 * time.Second); code != 0 {
			t.Fatalf("exit code %d after SIGTERM; want 0", code)
		}
		t.Logf("stopped %s after SIGTERM", time.Since(start).Round(10*time.Millisecond))
		r.Start()
	}
	sleep(2 * time.Second)
	d.Stop()
	rep := e.settle(90 * time.Second)
	noLoss(t, rep)
	if rep.Total.Duplicates != 0 {
		t.Errorf("%d duplicates after graceful stops; want none", rep.Total.Duplicates)
	}
	// Exactly: the poison events dead (permanent), everything else delivered once.
	exact(t, rep, chaos.Expect{DeadReason: poisonDead})
	checkMerged(t, e, true)
}

// 10. Negative control. A Redis without persistence is refused at start (the message
// names appendonly); with redis.allow_unsafe the relay runs on it, and a kill -9 of that
// Redis under load loses accepted events: the checker must report the loss.
func TestNegativeControlRedisWithoutPersistence(t *testing.T) {
	e := newEnv(t, redistest.Options{AOF: "no"})
	code, out := chaos.RunRelayExpectExit(t, relayBin, e.setup.Config(), 20*time.Second)
	if code == 0 || code == -1 {
		t.Errorf("relay on a Redis without appendonly: exit code %d; want a refused start (non-zero)", code)
	}
	if !strings.Contains(out, "appendonly") {
		t.Errorf("the refusal does not name appendonly:\n%s", out)
	}

	e.setup.AllowUnsafe = true
	// A backlog must exist when Redis dies: bannerflex fails until then.
	e.ups[chaos.BannerFlex].SetBehavior(func(chaos.Hit) chaos.Reply { return chaos.Reply{Status: 503} })
	r := e.relay()
	r.Start()
	if !strings.Contains(r.Log(), "REDIS MAY LOSE ACCEPTED EVENTS") {
		t.Error("no warning in the log when starting with redis.allow_unsafe on an unsafe Redis")
	}
	d := e.driver(nil, r)
	d.Start()
	sleep(3 * time.Second)
	e.redis.Kill()
	e.redis.Restart()
	e.ups[chaos.BannerFlex].SetBehavior(nil)
	sleep(2 * time.Second)
	d.Stop()
	rep := e.settle(60 * time.Second)
	if rep.Total.Lost == 0 {
		t.Error("the checker reported no loss after a Redis without persistence was killed: it cannot fail")
	} else {
		t.Logf("as expected, the checker reports %d lost events", rep.Total.Lost)
	}
	// The exact accounting must fail too, naming every lost id.
	v := rep.Exact(chaos.Expect{})
	if err := v.Err(); err == nil || len(v.Lost) == 0 {
		t.Error("the exact accounting passed after a Redis without persistence was killed: it cannot fail")
	} else {
		if len(v.Lost) != rep.Total.Lost {
			t.Errorf("the exact accounting lists %d lost ids; the report counts %d", len(v.Lost), rep.Total.Lost)
		}
		t.Logf("as expected, the exact accounting fails: %v", err)
	}
}
