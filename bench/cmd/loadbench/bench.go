package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/providers"
	"github.com/eventrelay/relay/relay/queue"
	"github.com/eventrelay/relay/strictjson"
)

const prefix = "relay"

// bench holds one run's processes and figures.
type bench struct {
	s        settings
	dir      string
	relayBin string
	self     string
	redis    *proc
	rAddr    string
	rdb      *redis.Client
	fake     *proc
	fakeAddr string

	noop, ingest, ingestBig, upCeil, nginx, relayVsNginx genResult
	ingestCPU, noopCPU, ingestBigCPU, upCeilCPU          cpuUse
	// Paced (open-loop) runs: (b') ingest at 0.7× the no-op ceiling, (f') nginx and the
	// relay at the same rate, 0.9× nginx's closed-loop throughput.
	ingestPaced, nginxPaced, relayPaced                cpuPaced
	deliver, deliverBig                                drain
	rssIngest, rssIngestBig, rssDeliver, rssDeliverBig float64
	rssNginxRelay                                      float64
	prefillRate                                        float64
	// (m) Redis memory per event: queued (delivery stopped) and left after delivery,
	// unkeyed and keyed (unique Idempotency-Key).
	memQueued, memQueuedKeyed, memLeft, memLeftKeyed memResult
	// (w) wrk against the no-op server and the relay's ingest.
	wrkNoop, wrkRelay wrkResult
	// (k) one relay on one Redis node vs two relays on a Redis Cluster, and which master
	// holds each provider's stream.
	kRuns           []kRun
	kPlacement      string
	kShardPlacement string
	kLoad           [2]string // load average at the start and end of phase k
	// traceYAML is appended to every relay config (phase t switches the trace off).
	traceYAML string
}

// cpuPaced is a paced run with the cores used during its window; Skipped says why it did
// not run (a figure it derives its rate from is missing).
type cpuPaced struct {
	pacedResult
	Cores   cpuUse
	Skipped string
}

// cpuUse is the cores each process used during a measured window.
type cpuUse map[string]float64

func (c cpuUse) String() string {
	var parts []string
	for _, k := range []string{"relay", "noop", "fake", "slowfake", "redis", "loadgen"} {
		if v, ok := c[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, v))
		}
	}
	return strings.Join(parts, ", ")
}

// measure runs the closed-loop generator and samples the CPU time of the named processes
// over its window.
func measure(addr string, conns int, mix []shot, tgt target, warmup, dur time.Duration, pids map[string]int) (genResult, cpuUse) {
	var r genResult
	use := sampleCPU(func() { r = generate(addr, conns, mix, tgt, warmup, dur) }, warmup, dur, pids)
	return r, use
}

// measurePaced is measure for the paced generator at rate req/s.
func measurePaced(addr string, conns int, mix []shot, tgt target, rate float64, warmup, dur time.Duration, pids map[string]int) (pacedResult, cpuUse) {
	var r pacedResult
	use := sampleCPU(func() { r = generatePaced(addr, conns, mix, tgt, rate, warmup, dur) }, warmup, dur, pids)
	return r, use
}

// sampleCPU runs load (a generator with warmup then a dur window) and returns the cores
// the named processes and the generator itself used from warmup to warmup+dur.
func sampleCPU(load func(), warmup, dur time.Duration, pids map[string]int) cpuUse {
	pids["loadgen"] = os.Getpid()
	before := map[string]float64{}
	done := make(chan struct{})
	go func() { load(); close(done) }()
	time.Sleep(warmup)
	t0 := time.Now()
	for k, p := range pids {
		before[k] = cpuSeconds(p)
	}
	time.Sleep(dur)
	use := cpuUse{}
	el := time.Since(t0).Seconds()
	for k, p := range pids {
		use[k] = (cpuSeconds(p) - before[k]) / el
	}
	<-done
	return use
}

func (b *bench) run() {
	b.self, _ = os.Executable()
	b.relayBin = b.buildRelay()
	var ra string
	b.redis, ra = startRedis(b.dir)
	track(b.redis)
	b.rAddr = ra
	b.rdb = redis.NewClient(&redis.Options{Addr: ra, PoolSize: 16})
	defer b.rdb.Close()

	b.fakeAddr = freeAddr()
	b.fake = track(start("fake", b.dir, b.self, "fake", "-listen", b.fakeAddr))
	b.fake.waitTCP(b.fakeAddr, 10*time.Second)
	s := b.s

	// (a) the no-op ceiling.
	if b.has("a") {
		b.phaseA()
	}
	if b.has("b") {
		// (b) ingest with durable enqueue, forwarders idle (rate_limit 0.001/s).
		b.ingest, b.ingestCPU, b.rssIngest = b.ingestRun("(b) relay ingest, empty queue")
		// (b') the same setup on an empty queue again, paced at 0.7× the no-op ceiling.
		b.flush()
		b.ingestPaced = b.ingestPacedRun()
	}
	if b.has("w") {
		// (w) the no-op server and ingest again, driven by wrk (a C generator).
		b.phaseW()
	}
	if b.has("e") {
		// (e) ingest with a large backlog already queued.
		b.flush()
		b.prefill(s.BigBacklog)
		b.ingestBig, b.ingestBigCPU, b.rssIngestBig = b.ingestRun(fmt.Sprintf("(e) relay ingest, %d queued", s.BigBacklog))
	}
	if b.has("c") {
		// (c) the fakes' own ceiling, driven directly with the upstream requests.
		logf("(c) fake upstreams' ceiling: %d conns, %s", s.Conns, s.Dur)
		b.upCeil, b.upCeilCPU = measure(b.fakeAddr, s.Conns, ingestMix, toUpstream, s.Warmup, s.Dur, map[string]int{"fake": b.fake.pid()})
		logf("    %s | cores: %s", b.upCeil, b.upCeilCPU)
		// (c) delivery draining a backlog.
		b.flush()
		b.prefill(s.Backlog)
		b.deliver, b.rssDeliver = b.drainRun(fmt.Sprintf("(c) delivery, %d queued", s.Backlog), s.Backlog, 0)
	}
	if b.has("e") {
		// (e) delivery of the same number of events with a large backlog behind them.
		b.flush()
		b.prefill(s.Backlog + s.BigBacklog)
		b.deliverBig, b.rssDeliverBig = b.drainRun(fmt.Sprintf("(e) delivery, %d queued", s.Backlog+s.BigBacklog), s.Backlog, s.BigBacklog)
	}
	if b.has("m") {
		// (m) Redis memory per queued event and left per delivered event.
		b.memPhase()
	}
	b.flush()
	if b.has("f") {
		b.phaseF()
	}
	if b.has("t") {
		b.phaseT()
	}
	if b.selected("k") {
		// (k) one node vs a local Redis Cluster with two relays: only when asked for.
		b.phaseK()
	}
}

func (b *bench) has(phase string) bool {
	return b.s.Phases == "" || strings.Contains(b.s.Phases, phase)
}

// selected reports whether -phases names phase: for phases outside the default run (k
// starts seven more processes and has its own document).
func (b *bench) selected(phase string) bool { return strings.Contains(b.s.Phases, phase) }

func (b *bench) phaseA() {
	s := b.s
	noopAddr := freeAddr()
	noop := track(start("noop", b.dir, b.self, "noop", "-listen", noopAddr))
	noop.waitTCP(noopAddr, 10*time.Second)
	logf("(a) no-op ceiling: %d conns, %s", s.Conns, s.Dur)
	b.noop, b.noopCPU = measure(noopAddr, s.Conns, ingestMix, toIngest, s.Warmup, s.Dur, map[string]int{"noop": noop.pid()})
	logf("    %s | cores: %s", b.noop, b.noopCPU)
	noop.stop(5 * time.Second)
}

// pacedIngestShare is (b')'s rate as a share of the no-op ceiling: the target.
const pacedIngestShare = 0.7

// pacedNginxShare is (f')'s rate as a share of nginx's closed-loop throughput: nginx with
// 64 connections before a 50 ms upstream cannot do more than 64/50ms, so the equal-load
// comparison runs a little below what it achieved.
const pacedNginxShare = 0.9

// ingestPacedRun is (b'): a fresh ingest relay (as in (b)) driven open-loop at
// pacedIngestShare × the no-op ceiling measured in this run by (a).
func (b *bench) ingestPacedRun() cpuPaced {
	if b.noop.RPS() <= 0 {
		logf("(b') skipped: it is paced at %.1f× the no-op ceiling, and (a) did not run", pacedIngestShare)
		return cpuPaced{Skipped: "needs (a)"}
	}
	rate := pacedIngestShare * b.noop.RPS()
	p, addr := b.startRelay("relay-ingest-paced", "http://"+b.fakeAddr, 1, 0.001)
	logf("(b') relay ingest, empty queue, paced at %.0f req/s (%.1f× no-op): %d conns, %s", rate, pacedIngestShare, b.s.Conns, b.s.Dur)
	r, use := measurePaced(addr, b.s.Conns, ingestMix, toIngest, rate, b.s.Warmup, b.s.Dur,
		map[string]int{"relay": p.pid(), "redis": b.redis.pid()})
	logf("    %s | cores: %s", r, use)
	p.stop(15 * time.Second)
	return cpuPaced{pacedResult: r, Cores: use}
}

func (b *bench) phaseF() {
	s := b.s
	// (f) nginx vs the relay in front of an upstream answering in 50 ms: closed loop (each
	// at its saturation), then (f') both paced at the same rate for an equal-load p99.
	slowAddr := freeAddr()
	slow := track(start("slowfake", b.dir, b.self, "fake", "-listen", slowAddr, "-delay", s.UpstreamWait.String()))
	slow.waitTCP(slowAddr, 10*time.Second)
	ng, ngAddr := startNginx(b.dir, slowAddr, ingestMix)
	track(ng)
	logf("(f) nginx → %s upstream: %d conns, %s", s.UpstreamWait, s.Conns, s.Dur)
	b.nginx, _ = measure(ngAddr, s.Conns, ingestMix, toIngest, s.Warmup, s.Dur, map[string]int{})
	logf("    %s", b.nginx)
	rate := pacedNginxShare * b.nginx.RPS()
	if rate > 0 {
		logf("(f') nginx paced at %.0f req/s (%.1f× its closed-loop throughput): %d conns, %s", rate, pacedNginxShare, s.Conns, s.Dur)
		r, use := measurePaced(ngAddr, s.Conns, ingestMix, toIngest, rate, s.Warmup, s.Dur, map[string]int{"slowfake": slow.pid()})
		b.nginxPaced = cpuPaced{pacedResult: r, Cores: use}
		logf("    %s", r)
	}
	ng.stop(5 * time.Second)
	rp, rAddr := b.startRelay("relay-vs-nginx", "http://"+slowAddr, s.SlowWorkers, 1e6)
	logf("(f) relay → %s upstream (delivering with %d workers/provider): %d conns, %s", s.UpstreamWait, s.SlowWorkers, s.Conns, s.Dur)
	b.relayVsNginx, _ = measure(rAddr, s.Conns, ingestMix, toIngest, s.Warmup, s.Dur, map[string]int{})
	b.rssNginxRelay = vmHWM(rp.pid())
	logf("    %s", b.relayVsNginx)
	rp.stop(15 * time.Second)
	if rate > 0 {
		// A fresh relay on an empty queue: the closed-loop run left a backlog (it ingests
		// faster than its workers deliver at 50 ms), whose delivery would compete for CPU.
		b.flush()
		rp, rAddr = b.startRelay("relay-vs-nginx-paced", "http://"+slowAddr, s.SlowWorkers, 1e6)
		logf("(f') relay paced at %.0f req/s: %d conns, %s", rate, s.Conns, s.Dur)
		r, use := measurePaced(rAddr, s.Conns, ingestMix, toIngest, rate, s.Warmup, s.Dur,
			map[string]int{"relay": rp.pid(), "redis": b.redis.pid(), "slowfake": slow.pid()})
		b.relayPaced = cpuPaced{pacedResult: r, Cores: use}
		b.rssNginxRelay = max(b.rssNginxRelay, vmHWM(rp.pid()))
		logf("    %s | cores: %s", r, use)
		rp.stop(15 * time.Second)
	} else {
		b.nginxPaced.Skipped, b.relayPaced.Skipped = "nginx closed-loop figure missing", "nginx closed-loop figure missing"
	}
	slow.stop(5 * time.Second)
}

func (b *bench) ingestRun(name string) (genResult, cpuUse, float64) {
	p, addr := b.startRelay("relay-ingest", "http://"+b.fakeAddr, 1, 0.001)
	logf("%s: %d conns, %s", name, b.s.Conns, b.s.Dur)
	r, use := measure(addr, b.s.Conns, ingestMix, toIngest, b.s.Warmup, b.s.Dur,
		map[string]int{"relay": p.pid(), "redis": b.redis.pid()})
	rss := vmHWM(p.pid())
	logf("    %s | cores: %s | relay VmHWM %.0f MB", r, use, rss)
	p.stop(15 * time.Second)
	return r, use, rss
}

// startRelay writes a config for this phase and runs `relay serve`. Ingest-only phases
// pass rate 0.001 and 1 worker: the forwarders then make at most one attempt per provider
// per 1000 s, so delivery does not compete with ingest.
func (b *bench) startRelay(name, upstream string, workers int, rate float64) (*proc, string) {
	return b.startRelayWith(relayRun{Name: name, Upstream: upstream, Workers: workers, Rate: rate})
}

// relayRun is one relay process's setup: startRelay's arguments, and the Redis it uses.
type relayRun struct {
	Name     string
	Upstream string
	Workers  int
	Rate     float64
	// RedisURL is the relay's redis.url; default the harness's single redis-server.
	RedisURL string
	// MinReplicasAcked is redis.min_replicas_acked (0: no WAIT).
	MinReplicasAcked int
	// Shards is redis.shards (0: 1).
	Shards int
}

// startRelayWith is startRelay for any relayRun.
func (b *bench) startRelayWith(r relayRun) (*proc, string) {
	name, upstream, workers, rate := r.Name, r.Upstream, r.Workers, r.Rate
	url := r.RedisURL
	if url == "" {
		url = "redis://" + b.rAddr + "/0"
	}
	a := freeAddrs(2)
	ingest, adminAddr := a[0], a[1]
	d := fmt.Sprintf("base_url: %q, workers: %d, rate_limit: %g, timeout: 5s", upstream, workers, rate)
	cfg := fmt.Sprintf(`server:
  listen: %q
admin:
  listen: %q
  token: %q
redis:
  url: %q
  prefix: %q
  high_water_mark: -1
  min_replicas_acked: %d
  shards: %d
  # A blocked XREADGROUP (a drained provider's idle workers wait up to 2 s) holds a pool
  # connection: the pool must exceed all workers, or drained providers starve the rest.
  pool_size: %d
log:
  level: warn
sites:
  - name: bench
    key: %q
    origins: [%q]
    routes: ["ens/impression", "ens/click", "bannerflex/banner-events"]
    rate_limit: {per_ip: 1000000000, burst: 1000000000}
clients:
  - name: backend
    token: %q
providers:
  ens: {%s, api_key: %q}
  bannerflex: {%s}
  linkrunner: {%s, server_key: %q}
  brevo: {%s, tracker_url: %q, api_key: %q, ma_key: %q}
%s`, ingest, adminAddr, adminToken, url, prefix, r.MinReplicasAcked, max(r.Shards, 1), 4*workers+64, siteKey, siteOrigin, backendToken,
		d, ensKey, d, d, lrKey, d, upstream, brevoKey, brevoMAKey, b.traceYAML)
	path := filepath.Join(b.dir, name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		fatalf("%v", err)
	}
	p := track(start(name, b.dir, b.relayBin, "serve", "--config", path))
	p.waitHTTP("http://"+adminAddr+"/healthz", 20*time.Second)
	p.waitTCP(ingest, 10*time.Second)
	return p, ingest
}

func (b *bench) flush() {
	if err := b.rdb.FlushAll(context.Background()).Err(); err != nil {
		fatalf("FLUSHALL: %v", err)
	}
}

// storedBodies validates each mix body the way ingest does (strict pre-pass, provider
// validation, compact re-encoding), so prefilled entries are what ingest would store.
func storedBodies() [][]byte {
	cfg, err := config.Parse([]byte(`admin: {token: "`+adminToken+`"}
clients: [{name: backend, token: "`+backendToken+`"}]
providers:
  ens: {api_key: x}
  bannerflex: {}
  linkrunner: {server_key: x}
  brevo: {api_key: x}
`), nil, providers.Specs())
	if err != nil {
		fatalf("bench config: %v", err)
	}
	ops := map[string]*providers.Op{}
	for _, op := range providers.Ops(cfg.Providers) {
		ops[op.Route] = op
	}
	out := make([][]byte, len(ingestMix))
	for i, s := range ingestMix {
		v, err := strictjson.Parse([]byte(s.Body), 0)
		if err != nil {
			fatalf("%s: %v", s.Name, err)
		}
		ev, err := ops[s.Route].Validate(v, providers.Identity{})
		if err != nil {
			fatalf("%s: %v", s.Name, err)
		}
		out[i] = ev.Body.AppendJSON(nil)
	}
	return out
}

// prefill appends n entries in the mix's proportions straight to the streams with
// pipelined XADDs in the queue's entry format (queue.EncodeEntry), the fastest way to build a
// large backlog. The relay's forwarders create their consumer group from id 0, so they
// see all of it.
func (b *bench) prefill(n int) { b.prefillInto(b.rdb, b.keys(), n) }

// prefillInto is prefill into any Redis (a single node or a cluster: every key of a
// provider carries its hash tag, so a cluster pipeline sends each XADD to its master).
func (b *bench) prefillInto(rdb redis.UniversalClient, keys queue.Keys, n int) {
	if n <= 0 {
		return
	}
	bodies := storedBodies()
	sched := schedule(ingestMix)
	t0 := time.Now()
	const chunk = 2000
	const par = 4
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for g := range par {
		wg.Go(func() {
			ctx := context.Background()
			at := time.Now()
			for base := g * chunk; base < n; base += par * chunk {
				pipe := rdb.Pipeline()
				for i := base; i < min(base+chunk, n); i++ {
					k := sched[i%len(sched)]
					s := &ingestMix[k]
					src := "client:backend"
					if s.Site {
						src = "site:bench"
					}
					id := uuid.NewString()
					pipe.XAdd(ctx, &redis.XAddArgs{Stream: keys.ForShard(keys.ShardOf(id)).Events(s.Provider), Values: []any{
						queue.FieldEnvelope, queue.EncodeEntry(&delivery.Message{ID: id, Provider: s.Provider,
							Route: s.Route, Body: bodies[k], ReceivedAt: at, ClientIP: "127.0.0.1",
							UserAgent: "loadbench", Source: src}),
					}})
				}
				if _, err := pipe.Exec(ctx); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		fatalf("prefill: %v", firstErr)
	}
	b.prefillRate = float64(n) / time.Since(t0).Seconds()
	logf("    prefilled %d events in %s", n, time.Since(t0).Round(time.Millisecond))
}

// backlog is the total length of the events streams (delivered entries are deleted).
func (b *bench) backlog() int64 { return backlogOf(b.rdb, b.keys()) }

// backlogOf is backlog for any Redis.
func backlogOf(rdb redis.UniversalClient, keys queue.Keys) int64 {
	ctx := context.Background()
	var n int64
	for _, k := range keys.EachShard() {
		for _, p := range []string{"ens", "bannerflex", "linkrunner", "brevo"} {
			n += rdb.XLen(ctx, k.Events(p)).Val()
		}
	}
	return n
}

func (b *bench) deadAndRetry() (dead, retry int64) { return deadAndRetryOf(b.rdb, b.keys()) }

// deadAndRetryOf is deadAndRetry for any Redis.
func deadAndRetryOf(rdb redis.UniversalClient, keys queue.Keys) (dead, retry int64) {
	ctx := context.Background()
	for _, k := range keys.EachShard() {
		for _, p := range []string{"ens", "bannerflex", "linkrunner", "brevo"} {
			dead += rdb.XLen(ctx, k.Dead(p)).Val()
			retry += rdb.ZCard(ctx, k.Retry(p)).Val()
		}
	}
	return
}

// keys names the single-node runs' keys: one shard.
func (b *bench) keys() queue.Keys { return queue.Keys{Prefix: prefix} }

// drain is one delivery measurement.
type drain struct {
	Delivered int64
	Elapsed   time.Duration
	Dead      int64
	Retry     int64
	Cores     cpuUse
	Complete  bool
	Commands  string // Redis commands per delivered event (INFO commandstats)
}

// commandsPerEvent summarises INFO commandstats since the last CONFIG RESETSTAT per
// delivered event, as calls and the µs Redis spent in them ("xack 0.02/0.31µs"): what
// the forwarders cost Redis, by command. A command is listed from 0.01 calls or 0.05 µs
// per event (a rare command with large payloads, like the trace's XADD, costs by µs).
func (b *bench) commandsPerEvent(n int64) string {
	info := b.rdb.Info(context.Background(), "commandstats").Val()
	var parts []string
	for _, l := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(l), ":calls=")
		if !ok || n <= 0 {
			continue
		}
		var calls, usec float64
		for _, kv := range strings.Split("calls="+rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "calls":
				calls, _ = strconv.ParseFloat(v, 64)
			case "usec":
				usec, _ = strconv.ParseFloat(v, 64)
			}
		}
		if calls/float64(n) >= 0.01 || usec/float64(n) >= 0.05 {
			parts = append(parts, fmt.Sprintf("%s %.2f/%.2fµs", strings.TrimPrefix(name, "cmdstat_"), calls/float64(n), usec/float64(n)))
		}
	}
	return strings.Join(parts, ", ")
}

func (d drain) Rate() float64 {
	if d.Elapsed <= 0 {
		return 0
	}
	return float64(d.Delivered) / d.Elapsed.Seconds()
}

// drainRun starts a relay with many workers and no effective rate limit and measures the
// delivery rate of n events (the first n of the queue; rest more stay behind them): from
// 5% to 95% of n delivered, to leave out start-up and the tail, bounded by DrainCap.
func (b *bench) drainRun(name string, n, rest int) (drain, float64) {
	p, _ := b.startRelay("relay-deliver", "http://"+b.fakeAddr, b.s.Workers, 1e6)
	logf("%s: %d workers/provider, rate_limit 1e6/s", name, b.s.Workers)
	pids := map[string]int{"relay": p.pid(), "redis": b.redis.pid(), "fake": b.fake.pid()}
	d := b.watchDrain(b.rdb, b.keys(), n, rest, pids)
	d.Commands = b.commandsPerEvent(d.Delivered)
	rss := vmHWM(p.pid())
	logf("    delivered %d in %s = %.0f/s (complete %v), dead %d, retry %d | cores: %s | relay VmHWM %.0f MB\n    redis calls per event: %s",
		d.Delivered, d.Elapsed.Round(time.Millisecond), d.Rate(), d.Complete, d.Dead, d.Retry, d.Cores, rss, d.Commands)
	p.stop(15 * time.Second)
	return d, rss
}

// watchDrain measures the delivery of the first n of n+rest queued events in rdb by the
// relays already started: from 5 % to 95 % of n delivered (start-up and tail left out),
// bounded by DrainCap, with the cores each of pids used over that span. On a single
// node it resets INFO commandstats at 5 %, for commandsPerEvent.
func (b *bench) watchDrain(rdb redis.UniversalClient, keys queue.Keys, n, rest int, pids map[string]int) drain {
	total := int64(n + rest)
	lo, hi := int64(n)*5/100, int64(n)*95/100
	var t1, t2 time.Time
	var c1, c2 int64
	before := map[string]float64{}
	deadline := time.Now().Add(b.s.DrainCap)
	complete := false
	for time.Now().Before(deadline) {
		delivered := total - backlogOf(rdb, keys)
		now := time.Now()
		if t1.IsZero() && delivered >= lo {
			t1, c1 = now, delivered
			if c, ok := rdb.(*redis.Client); ok {
				_ = c.ConfigResetStat(context.Background()).Err()
			}
			for k, pid := range pids {
				before[k] = cpuSeconds(pid)
			}
		}
		if !t1.IsZero() {
			t2, c2 = now, delivered
		}
		if delivered >= hi {
			complete = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	d := drain{Delivered: c2 - c1, Elapsed: t2.Sub(t1), Complete: complete, Cores: cpuUse{}}
	for k, pid := range pids {
		d.Cores[k] = (cpuSeconds(pid) - before[k]) / max(d.Elapsed.Seconds(), 1e-9)
	}
	d.Dead, d.Retry = deadAndRetryOf(rdb, keys)
	return d
}
