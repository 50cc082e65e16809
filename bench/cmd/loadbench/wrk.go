package main

import (
	_ "embed"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// Phase (w): the no-op server and the relay's ingest driven by wrk, a C generator with
// the same connections and request mix as the Go one. The Go generator costs about as
// much CPU per request as the server it drives, and shares the 2 cores with it; wrk costs
// a fraction of that, so the ratio relay/no-op is less distorted by the generator.

//go:embed wrk.lua
var wrkScript []byte

// wrkResult is one wrk run, and the CPU time the sampled processes used during it.
type wrkResult struct {
	Requests int           // completed requests (any status)
	Duration time.Duration // wrk's own measured duration
	Errors   int           // connect, read, write, timeout errors and status ≥ 400
	P50, P99 time.Duration
	Max      time.Duration
	CPU      map[string]float64 // CPU seconds during the run, by process ("wrk" from its rusage)
	Wall     time.Duration      // from wrk's start to its exit (the CPU samples' window)
	Skipped  string
}

func (r wrkResult) RPS() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Duration.Seconds()
}

// PerRequest is process k's CPU µs per completed request, or -1 when not sampled.
func (r wrkResult) PerRequest(k string) float64 {
	v, ok := r.CPU[k]
	if !ok || r.Requests == 0 {
		return -1
	}
	return v / float64(r.Requests) * 1e6
}

// CPUString is the CPU µs per request of each sampled process, and its cores.
func (r wrkResult) CPUString() string {
	var parts []string
	for _, k := range []string{"noop", "relay", "redis", "wrk"} {
		if v, ok := r.CPU[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.1f µs/req (%.2f cores)", k, r.PerRequest(k), v/max(r.Wall.Seconds(), 1e-9)))
		}
	}
	return strings.Join(parts, ", ")
}

func (r wrkResult) String() string {
	if r.Skipped != "" {
		return "not run: " + r.Skipped
	}
	return fmt.Sprintf("%.0f req/s, p50 %s, p99 %s, max %s, %d requests in %s, %d errors | CPU %s",
		r.RPS(), fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.Max), r.Requests, r.Duration.Round(time.Millisecond), r.Errors, r.CPUString())
}

// phaseW runs wrk against a no-op server, then against a fresh ingest-only relay (the (b)
// setup) on a flushed queue.
func (b *bench) phaseW() {
	s := b.s
	bin, err := exec.LookPath("wrk")
	if err != nil {
		logf("(w) skipped: wrk not found (install the Debian package wrk; make bench does)")
		b.wrkNoop.Skipped, b.wrkRelay.Skipped = "wrk not installed", "wrk not installed"
		return
	}
	script := filepath.Join(b.dir, "wrk.lua")
	mixFile := filepath.Join(b.dir, "wrk-mix.lua")
	if err := os.WriteFile(script, wrkScript, 0o600); err != nil {
		fatalf("%v", err)
	}

	noopAddr := freeAddr()
	noop := track(start("noop-wrk", b.dir, b.self, "noop", "-listen", noopAddr))
	noop.waitTCP(noopAddr, 10*time.Second)
	writeWrkMix(mixFile, noopAddr)
	logf("(w) no-op ceiling, wrk -t%d -c%d: %s + %s", s.WrkThreads, s.Conns, s.Warmup, s.Dur)
	b.wrkNoop = b.runWrk("wrk-noop", bin, script, mixFile, noopAddr, map[string]int{"noop": noop.pid()})
	logf("    %s", b.wrkNoop)
	noop.stop(5 * time.Second)

	b.flush()
	p, addr := b.startRelay("relay-ingest-wrk", "http://"+b.fakeAddr, 1, 0.001)
	writeWrkMix(mixFile, addr)
	logf("(w) relay ingest, empty queue, wrk -t%d -c%d: %s + %s", s.WrkThreads, s.Conns, s.Warmup, s.Dur)
	b.wrkRelay = b.runWrk("wrk-relay", bin, script, mixFile, addr, map[string]int{"relay": p.pid(), "redis": b.redis.pid()})
	logf("    %s", b.wrkRelay)
	p.stop(15 * time.Second)
	b.flush()
}

// runWrk runs wrk for the warm-up (not recorded), then for the measured window, and
// samples the named processes' CPU time from the measured wrk's start to its exit; wrk's
// own CPU time is its rusage.
func (b *bench) runWrk(name, bin, script, mixFile, addr string, pids map[string]int) wrkResult {
	s := b.s
	args := func(d time.Duration) []string {
		return []string{"-t", strconv.Itoa(s.WrkThreads), "-c", strconv.Itoa(s.Conns),
			"-d", fmt.Sprintf("%ds", int(math.Ceil(d.Seconds()))), "--timeout", "10s", "--latency",
			"-s", script, "http://" + addr, "--", mixFile}
	}
	wait := func(p *proc, d time.Duration) {
		select {
		case <-p.exited:
		case <-time.After(d + 30*time.Second):
			p.stop(5 * time.Second)
			fatalf("%s did not finish:\n%s", p.name, p.tail())
		}
	}
	warm := start(name+"-warmup", b.dir, bin, args(s.Warmup)...)
	wait(warm, s.Warmup)

	before := map[string]float64{}
	for k, pid := range pids {
		before[k] = cpuSeconds(pid)
	}
	t0 := time.Now()
	p := start(name, b.dir, bin, args(s.Dur)...)
	wait(p, s.Dur)
	r := wrkResult{Wall: time.Since(t0), CPU: map[string]float64{}}
	for k, pid := range pids {
		r.CPU[k] = cpuSeconds(pid) - before[k]
	}
	if st := p.cmd.ProcessState; st != nil {
		r.CPU["wrk"] = (st.UserTime() + st.SystemTime()).Seconds()
		if !st.Success() {
			fatalf("%s: %s\n%s", name, st, p.tail())
		}
	}
	out, _ := os.ReadFile(p.log)
	var line string
	for _, l := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(l, "loadbench-wrk "); ok {
			line = rest
		}
	}
	if line == "" {
		fatalf("%s: no result line in its output:\n%s", name, p.tail())
	}
	f := map[string]int64{}
	for _, kv := range strings.Fields(line) {
		k, v, _ := strings.Cut(kv, "=")
		f[k], _ = strconv.ParseInt(v, 10, 64)
	}
	r.Requests = int(f["requests"])
	r.Duration = time.Duration(f["duration_us"]) * time.Microsecond
	r.Errors = int(f["connect"] + f["read"] + f["write"] + f["status"] + f["timeout"])
	r.P50 = time.Duration(f["p50_us"]) * time.Microsecond
	r.P99 = time.Duration(f["p99_us"]) * time.Microsecond
	r.Max = time.Duration(f["max_us"]) * time.Microsecond
	return r
}

// writeWrkMix writes the mix's requests to addr, in the weighted schedule's order, as the
// Lua table wrk.lua reads: each request is built by setRequest, the Go generator's own
// function, so both generators send the same method, path, headers and body (wrk adds
// Host and Content-Length itself).
func writeWrkMix(path, addr string) {
	var w strings.Builder
	w.WriteString("-- written by loadbench: the request mix of bench/cmd/loadbench/mix.go, in schedule order\nreturn {\n")
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	for _, k := range schedule(ingestMix) {
		setRequest(req, addr, &ingestMix[k], toIngest)
		fmt.Fprintf(&w, "  {method = %s, path = %s, headers = {", luaQuote(string(req.Header.Method())), luaQuote(string(req.URI().RequestURI())))
		for name, value := range req.Header.All() {
			n := string(name)
			if strings.EqualFold(n, "Host") || strings.EqualFold(n, "Content-Length") {
				continue
			}
			fmt.Fprintf(&w, "[%s] = %s, ", luaQuote(n), luaQuote(string(value)))
		}
		fmt.Fprintf(&w, "}, body = %s},\n", luaQuote(string(req.Body())))
	}
	w.WriteString("}\n")
	if err := os.WriteFile(path, []byte(w.String()), 0o600); err != nil {
		fatalf("%v", err)
	}
}

// luaQuote is s as a Lua string literal: printable ASCII as is (but \ and "), every other
// byte as a decimal escape, which Lua 5.1 and LuaJIT read.
func luaQuote(s string) string {
	var w strings.Builder
	w.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' || c == '"':
			w.WriteByte('\\')
			w.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&w, "\\%03d", c)
		default:
			w.WriteByte(c)
		}
	}
	w.WriteByte('"')
	return w.String()
}
