package main

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Open-loop (paced) load. The closed-loop generator only sends when a reply came back,
// so a slow server slows the generator down and its queueing is never seen: its p99 at
// saturation is queueing in front of 64 busy connections, and a stall is "hidden" as
// fewer requests rather than as latency (coordinated omission). The paced generator
// instead fixes a schedule of send times (slot k at t0 + k/R), independent of the replies,
// and measures every latency from the slot's scheduled time: when the server (or the
// generator) falls behind, the requests that wait for it carry that wait.

const (
	// lateAfter: a request sent more than this after its slot counts as late.
	lateAfter = time.Millisecond
	// pacedGrace bounds how long after the window the generator keeps sending the
	// window's overdue slots; what is still unsent then is counted as unsent.
	pacedGrace = 2 * time.Second
)

// pacedResult is one open-loop window. The embedded genResult's Requests and Elapsed are
// the completions inside the window and its length (so RPS is the achieved rate); its
// percentiles are over the window's slots, measured from their scheduled send time.
type pacedResult struct {
	genResult
	Rate      float64 // requested req/s
	Slots     int     // requests scheduled inside the window
	LateTimer int     // window slots sent > lateAfter late although a connection was free: the generator's own lag
	LateBusy  int     // window slots sent > lateAfter late because no connection was free at their time (the server behind)
	Unsent    int     // window slots still unsent pacedGrace after the window; in the percentiles with their wait so far
	// LagP50, LagP99: how long after their slot the window's requests were sent. With
	// connections free, this is the generator's own timing error (Go timers on an idle
	// runtime wake with up to ~1 ms of delay), included in the latencies above.
	LagP50, LagP99 time.Duration
}

// KeptUp says whether the achieved rate is within 2 % of the requested one.
func (r pacedResult) KeptUp() bool { return r.Rate > 0 && r.RPS() >= 0.98*r.Rate }

func (r pacedResult) String() string {
	return fmt.Sprintf("paced %.0f req/s requested: achieved %.0f req/s, p50 %s, p99 %s, max %s (from the scheduled time), "+
		"send lag p50 %s p99 %s, %d slots, late > %s: %d generator / %d no free connection, %d unsent, %d errors %v",
		r.Rate, r.RPS(), fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.Max), fmtDur(r.LagP50), fmtDur(r.LagP99), r.Slots, lateAfter,
		r.LateTimer, r.LateBusy, r.Unsent, r.Errors, r.Statuses)
}

// generatePaced drives addr at rate req/s over conns connections (the closed-loop
// generator's client, requests and mix) for warmup (not recorded) then dur (recorded).
//
// The schedule is global: slot k is due at t0 + k/rate and sends mix entry k of the
// weighted sequence. conns goroutines (one request in flight each, so never more than
// conns connections and conns goroutines) take the next slot from a shared counter
// whenever they are free, sleep until it is due and send it. A free connection thus
// takes any slot, as a client's connection pool does; when every connection is busy, the
// overdue slots are sent as soon as one frees up, and their wait counts as latency.
// Sending stops at the end of the window's slots or pacedGrace after the window,
// whichever comes first, so an overloaded server cannot make the run unbounded.
func generatePaced(addr string, conns int, mix []shot, tgt target, rate float64, warmup, dur time.Duration) pacedResult {
	if rate <= 0 {
		return pacedResult{}
	}
	hc := newHostClient(addr, conns)
	sched := schedule(mix)
	interval := float64(time.Second) / rate
	// t0 a little ahead, so that the first slots are not overdue while goroutines start.
	t0 := time.Now().Add(20 * time.Millisecond)
	due := func(k int64) time.Time { return t0.Add(time.Duration(float64(k) * interval)) }
	winStart, winEnd := t0.Add(warmup), t0.Add(warmup+dur)
	kFirst := int64(math.Ceil(float64(warmup) / interval))   // the window's first slot
	kEnd := int64(math.Ceil(float64(warmup+dur) / interval)) // the first slot after the window
	hardStop := winEnd.Add(pacedGrace)

	type workerOut struct {
		lat, lag      []time.Duration
		completed     int // completions inside the window, any slot
		late, lateBsy int
		replies
		abandoned int64 // the window slot claimed at the hard stop and not sent, or -1
	}
	outs := make([]workerOut, conns)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() {
			out := &outs[w]
			out.abandoned = -1
			out.lat = make([]time.Duration, 0, int(float64(kEnd-kFirst)/float64(conns))+64)
			out.lag = make([]time.Duration, 0, cap(out.lat))
			req := fasthttp.AcquireRequest()
			res := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(res)
			for {
				k := next.Add(1) - 1
				if k >= kEnd {
					return
				}
				at := due(k)
				claimed := time.Now()
				if claimed.After(hardStop) {
					if k >= kFirst {
						out.abandoned = k
					}
					return
				}
				if d := at.Sub(claimed); d > 0 {
					time.Sleep(d)
				}
				sent := time.Now()
				setRequest(req, addr, &mix[sched[k%int64(len(sched))]], tgt)
				err := hc.Do(req, res)
				done := time.Now()
				if !done.Before(winStart) && done.Before(winEnd) {
					out.completed++
				}
				if k < kFirst {
					continue // warm-up slot
				}
				out.add(res, err)
				// Latency from the slot's time, not from the send: the coordinated-omission
				// correction (a send delayed by a stalled server is the server's latency).
				out.lat = append(out.lat, done.Sub(at))
				out.lag = append(out.lag, max(sent.Sub(at), 0))
				if sent.Sub(at) > lateAfter {
					// Claimed only after its time: every connection was busy until then.
					if claimed.After(at) {
						out.lateBsy++
					} else {
						out.late++
					}
				}
			}
		})
	}
	wg.Wait()

	r := pacedResult{genResult: genResult{Statuses: map[int]int{}, Elapsed: winEnd.Sub(winStart)},
		Rate: rate, Slots: int(kEnd - kFirst)}
	var all, lag []time.Duration
	for _, o := range outs {
		all = append(all, o.lat...)
		lag = append(lag, o.lag...)
		r.Requests += o.completed
		o.addTo(&r.genResult)
		r.LateTimer += o.late
		r.LateBusy += o.lateBsy
	}
	// Unsent slots enter the percentiles with the wait they had at the hard stop (a lower
	// bound), so giving up on them cannot improve the p99.
	sent := len(all)
	for _, o := range outs {
		if o.abandoned >= 0 {
			all = append(all, hardStop.Sub(due(o.abandoned)))
		}
	}
	for k := max(next.Load(), kFirst); k < kEnd; k++ { // never claimed
		all = append(all, hardStop.Sub(due(k)))
	}
	r.Unsent = len(all) - sent
	r.setPercentiles(all)
	var lr genResult
	lr.setPercentiles(lag)
	r.LagP50, r.LagP99 = lr.P50, lr.P99
	return r
}
