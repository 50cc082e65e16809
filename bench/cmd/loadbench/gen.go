package main

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// target says where the generator sends the mix: to the relay's routes (ingest shape:
// /v1/<route>, key or token, no secret) or to the upstream paths (the shape the relay's
// adapters send, secret header included) for the fakes' own ceiling.
type target int

const (
	toIngest target = iota
	toUpstream
)

// genResult is one measured window.
type genResult struct {
	Requests int
	Errors   int // transport errors and non-2xx replies
	Statuses map[int]int
	Elapsed  time.Duration
	P50, P99 time.Duration
	Max      time.Duration
}

func (r genResult) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

func (r genResult) String() string {
	return fmt.Sprintf("%.0f req/s, p50 %s, p99 %s, max %s, %d requests, %d errors %v",
		r.RPS(), fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.Max), r.Requests, r.Errors, r.Statuses)
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	}
}

// replies tallies one connection's replies by status (0: no reply) and counts the
// failures: transport errors and non-2xx.
type replies struct {
	errs     int
	statuses map[int]int
}

func (t *replies) add(res *fasthttp.Response, err error) {
	code := 0
	if err == nil {
		code = res.StatusCode()
	}
	if t.statuses == nil {
		t.statuses = map[int]int{}
	}
	t.statuses[code]++
	if code < 200 || code > 299 {
		t.errs++
	}
}

// addTo adds the tally to a window's result.
func (t *replies) addTo(r *genResult) {
	r.Errors += t.errs
	for c, n := range t.statuses {
		r.Statuses[c] += n
	}
}

// generate drives addr with conns connections, each a goroutine with one request in
// flight (closed loop), for warmup (not recorded) then dur (recorded).
func generate(addr string, conns int, mix []shot, tgt target, warmup, dur time.Duration) genResult {
	return generateSpread([]string{addr}, conns, mix, tgt, warmup, dur)
}

// generateSpread is generate over several servers (relay processes behind one load
// balancer): connection w goes to addrs[w % len(addrs)], so the load is split evenly, and
// the window's figures are over all of them.
func generateSpread(addrs []string, conns int, mix []shot, tgt target, warmup, dur time.Duration) genResult {
	hcs := make([]*fasthttp.HostClient, len(addrs))
	for i, a := range addrs {
		hcs[i] = newHostClient(a, conns)
	}
	sched := schedule(mix)
	var recording, stop atomic.Bool
	type workerOut struct {
		lat []time.Duration
		replies
	}
	outs := make([]workerOut, conns)
	var wg sync.WaitGroup
	var measureStart, measureEnd time.Time
	for w := range conns {
		wg.Go(func() {
			out := &outs[w]
			addr, hc := addrs[w%len(addrs)], hcs[w%len(addrs)]
			out.lat = make([]time.Duration, 0, 1<<14)
			req := fasthttp.AcquireRequest()
			res := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(res)
			for i := w * 7; !stop.Load(); i++ {
				setRequest(req, addr, &mix[sched[i%len(sched)]], tgt)
				rec := recording.Load()
				t0 := time.Now()
				err := hc.Do(req, res)
				lat := time.Since(t0)
				if !rec {
					continue
				}
				out.add(res, err)
				out.lat = append(out.lat, lat)
			}
		})
	}
	time.Sleep(warmup)
	measureStart = time.Now()
	recording.Store(true)
	time.Sleep(dur)
	recording.Store(false)
	measureEnd = time.Now()
	stop.Store(true)
	wg.Wait()

	res := genResult{Statuses: map[int]int{}, Elapsed: measureEnd.Sub(measureStart)}
	var all []time.Duration
	for _, o := range outs {
		all = append(all, o.lat...)
		o.addTo(&res)
	}
	res.Requests = len(all)
	res.setPercentiles(all)
	return res
}

// setPercentiles sorts lat and takes p50, p99 and max from it.
func (r *genResult) setPercentiles(lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	r.P50 = lat[len(lat)*50/100]
	r.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
	r.Max = lat[len(lat)-1]
}

// newHostClient is the generators' client: at most conns connections to addr, generous
// timeouts (a stalled server shows as latency, not as errors).
func newHostClient(addr string, conns int) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                     addr,
		MaxConns:                 conns,
		ReadTimeout:              10 * time.Second,
		WriteTimeout:             10 * time.Second,
		MaxIdleConnDuration:      time.Minute,
		NoDefaultUserAgentHeader: true,
	}
}

// setRequest fills req with shot s in the shape tgt expects: the client's request to an
// ingest route (site key + Origin, or backend bearer token) or the relay's request to
// the upstream path (secret header). Both generators send exactly these requests.
func setRequest(req *fasthttp.Request, addr string, s *shot, tgt target) {
	req.Reset()
	req.Header.SetMethod("POST")
	req.Header.SetHost(addr)
	if tgt == toIngest {
		req.SetRequestURI("http://" + addr + "/v1/" + s.Route + s.Query)
		if s.Site {
			req.Header.Set("Origin", siteOrigin)
			if s.Query == "" {
				req.Header.Set("X-Relay-Key", siteKey)
			}
			req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) loadbench")
		} else {
			req.Header.Set("Authorization", "Bearer "+backendToken)
		}
	} else {
		req.SetRequestURI("http://" + addr + s.UpPath)
		if s.UpHeader[0] != "" {
			req.Header.Set(s.UpHeader[0], s.UpHeader[1])
		}
	}
	req.Header.SetContentType(s.ContentType)
	req.SetBodyString(s.Body)
}
