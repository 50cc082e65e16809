package chaos_test

import (
	"testing"
	"time"

	"github.com/eventrelay/relay/chaos"
	"github.com/eventrelay/relay/internal/redistest"
)

// Isolation bounds (TestIsolationMeasured). Every bound is derived from the baseline
// measured in the same test, the same relay, the same load, just before the faults; the
// factors and margins absorb what a loaded, noisy 2-core machine (under -race) does to
// a healthy path, and stay far below what coupling to a faulted provider would add (its
// 1 s timeout or its 2 s Retry-After per event that waits on it).
const (
	// isoK50 and isoMargin50 bound a healthy provider's p50 delivery latency under faults:
	// ≤ isoK50 × baseline p50 + isoMargin50. The relay does more work meanwhile (timeouts,
	// 429s, retries of two providers share its CPU and Redis): twice the typical path
	// plus 100 ms of scheduling noise, a tenth of the hung provider's timeout.
	isoK50      = 2
	isoMargin50 = 100 * time.Millisecond
	// isoK99 and isoMargin99 bound the p99: tails are noisier (a GC, a descheduled
	// process), so 3 × baseline p99 + 300 ms, still under the 1 s a coupled event would
	// wait for one hung attempt.
	isoK99      = 3
	isoMargin99 = 300 * time.Millisecond
	// isoEventMargin bounds every single healthy event: at most 2 × the slowest baseline
	// event + isoEventMargin, so no event waited for a hung attempt's timeout on top of a
	// slow normal path.
	isoEventMargin = 700 * time.Millisecond
	// isoHang is how long the hung upstream takes to answer, 4 × the relay's timeout.
	isoHang = 4 * time.Second
)

// 11. Isolation, measured. One relay, every provider loaded. Phase A, the baseline: all
// healthy. Phase B: Linkrunner hangs (answers 503 after 4 s, the relay times out after
// 1 s) and ENS answers 429 with Retry-After: 2 to everything, both with their breakers out
// of the way so their workers stay busy with the fault. The healthy providers (BannerFlex,
// Brevo, Cardlytics) must deliver everything, with a delivery latency (ingest request →
// upstream receipt) and an ingest latency within bounds derived from phase A.
func TestIsolationMeasured(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	const hung, stormy = chaos.Linkrunner, chaos.ENS
	healthy := []string{chaos.BannerFlex, chaos.Brevo, chaos.Cardlytics}
	for _, p := range []string{hung, stormy} {
		e.setup.Tune[p].Failures = 1000
	}
	r := e.relay()
	r.Start()
	d := e.driver(nil, r)
	d.Start()

	sleep(time.Second) // Cardlytics sessions started, connections open: steady state
	phase := chaos.Dur(6 * time.Second)
	aStart := time.Now()
	sleep(phase)
	aEnd := time.Now()
	e.ups[hung].SetBehavior(func(chaos.Hit) chaos.Reply {
		return chaos.Reply{Status: 503, Body: `{"msg":"upstream timeout","status":503}`, Delay: isoHang}
	})
	e.ups[stormy].SetBehavior(func(chaos.Hit) chaos.Reply {
		return chaos.Reply{Status: 429, Header: map[string]string{"Retry-After": "2"}, Body: `{"error":"slow down"}`}
	})
	bStart := time.Now()
	sleep(phase)
	bEnd := time.Now()
	e.ups[hung].SetBehavior(nil)
	e.ups[stormy].SetBehavior(nil)
	sleep(time.Second)
	d.Stop()
	rep := e.settle(90 * time.Second)
	noLoss(t, rep)
	// Exactly: every event delivered once (late 503s and 429s are retried), no dead letter.
	exact(t, rep, chaos.Expect{})

	// The faults happened: the hung provider's attempts timed out, the stormy one's were
	// answered 429.
	timedOut, n429 := 0, 0
	for _, h := range e.ups[hung].Hits() {
		if h.Gone && !h.At.Before(bStart) {
			timedOut++
		}
	}
	for _, h := range e.ups[stormy].Hits() {
		if h.Status == 429 {
			n429++
		}
	}
	t.Logf("phase B: %d attempts timed out at %s, %d answered 429 at %s", timedOut, hung, n429, stormy)
	if timedOut == 0 || n429 == 0 {
		t.Fatal("the faults did not happen")
	}

	for _, p := range healthy {
		rc := e.ups[p].Receipts()
		la, lb := receiptLatencies(e, p, rc, aStart, aEnd), receiptLatencies(e, p, rc, bStart, bEnd)
		a50, a99, a100 := chaos.Percentile(la, 50), chaos.Percentile(la, 99), chaos.Percentile(la, 100)
		b50, b99, b100 := chaos.Percentile(lb, 50), chaos.Percentile(lb, 99), chaos.Percentile(lb, 100)
		bound50, bound99 := isoK50*a50+isoMargin50, isoK99*a99+isoMargin99
		boundEvent := 2*a100 + isoEventMargin
		t.Logf("%-10s delivery latency, baseline: %3d events p50 %s p99 %s max %s; faulted: %3d events p50 %s p99 %s max %s "+
			"(bounds %s, %s, %s)", p, len(la), ms(a50), ms(a99), ms(a100), len(lb), ms(b50), ms(b99), ms(b100),
			ms(bound50), ms(bound99), ms(boundEvent))
		if len(la) < 10 || len(lb) < 10 {
			t.Errorf("%s: %d baseline and %d faulted events: too few to compare", p, len(la), len(lb))
			continue
		}
		if b50 > bound50 {
			t.Errorf("%s: p50 delivery latency %s under faults; bound %d × %s + %s = %s", p, b50, isoK50, a50, isoMargin50, bound50)
		}
		if b99 > bound99 {
			t.Errorf("%s: p99 delivery latency %s under faults; bound %d × %s + %s = %s", p, b99, isoK99, a99, isoMargin99, bound99)
		}
		late := 0
		for _, l := range lb {
			if l > boundEvent {
				late++
			}
		}
		if late > 0 {
			t.Errorf("%s: %d events delayed beyond %s (2 × the slowest baseline event + %s)", p, late, boundEvent, isoEventMargin)
		}
	}

	var ingA, ingB []time.Duration
	for _, a := range d.Attempts() {
		switch {
		case !a.Start.Before(aStart) && a.Start.Before(aEnd):
			ingA = append(ingA, a.Took)
		case !a.Start.Before(bStart) && a.Start.Before(bEnd):
			ingB = append(ingB, a.Took)
			if a.Status != 202 {
				t.Errorf("ingest answered %d while %s hung and %s stormed", a.Status, hung, stormy)
			}
		}
	}
	a50, a99 := chaos.Percentile(ingA, 50), chaos.Percentile(ingA, 99)
	b50, b99 := chaos.Percentile(ingB, 50), chaos.Percentile(ingB, 99)
	t.Logf("ingest latency, baseline: %d requests p50 %s p99 %s; faulted: %d requests p50 %s p99 %s", len(ingA), ms(a50), ms(a99),
		len(ingB), ms(b50), ms(b99))
	// Ingest never waits on deliveries: the same bounds as delivery, CPU noise only.
	if bound := isoK50*a50 + isoMargin50; b50 > bound {
		t.Errorf("ingest p50 %s under faults; bound %d × %s + %s = %s", b50, isoK50, a50, isoMargin50, bound)
	}
	if bound := isoK99*a99 + isoMargin99; b99 > bound {
		t.Errorf("ingest p99 %s under faults; bound %d × %s + %s = %s", b99, isoK99, a99, isoMargin99, bound)
	}
}

// receiptLatencies are, for provider's events accepted in [from, to), the times from the
// start of the accepted ingest request to the upstream's receipt of the request that
// delivered it (rc, Upstream.Receipts); events not delivered count as until now.
func receiptLatencies(e *env, provider string, rc map[string]time.Time, from, to time.Time) []time.Duration {
	var out []time.Duration
	for _, a := range e.ledger.Accepted(provider) {
		if a.At.Before(from) || !a.At.Before(to) {
			continue
		}
		at, ok := rc[a.ID]
		if !ok {
			at = time.Now()
		}
		out = append(out, max(at.Sub(a.Sent), 0))
	}
	return out
}

func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
