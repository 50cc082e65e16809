package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/relay/queue"
)

// Phase k compares, in one run, one relay on one Redis node with two relays on a local
// Redis Cluster (clusterMasters masters, one replica each), with and without
// redis.min_replicas_acked: 1, and with redis.shards: clusterShards. Each setup gets the same closed-loop ingest window (the
// generator's connections split evenly over the relays) and the same backlog drain.
const (
	clusterMasters     = 3
	clusterReplicasPer = 1
	clusterRelays      = 2
	// clusterShards spreads each provider over every master (see kShardPlacement).
	clusterShards = 6
)

// kProviders are the providers of the mix (the streams the bench fills).
var kProviders = []string{"ens", "bannerflex", "linkrunner", "brevo"}

// kRun is one setup of phase k and its figures.
type kRun struct {
	Name        string
	Relays      int
	MinReplicas int
	Shards      int
	Ingest      genResult
	IngestCores cpuUse
	Deliver     drain
}

// phaseK runs the four setups; the cluster is started after the single-node runs and
// stopped (by PID) before the phase returns.
func (b *bench) phaseK() {
	b.kLoad[0] = loadAvg()
	defer func() { b.kLoad[1] = loadAvg() }()
	b.flush()
	b.kRuns = append(b.kRuns, b.kSetup(kRun{Name: "1 relay, 1 Redis node", Relays: 1}, b.rdb, "",
		map[string]int{"redis": b.redis.pid()}, b.flush))
	b.flush()

	logf("(k) starting a local Redis Cluster: %d masters, %d replica each", clusterMasters, clusterReplicasPer)
	cl := startCluster(b.dir, clusterMasters, clusterReplicasPer)
	defer cl.stop()
	cc := cl.client()
	defer cc.Close()
	b.kPlacement = cl.placement(cc, queue.Keys{Prefix: prefix}.Events, kProviders)
	logf("    streams: %s", b.kPlacement)
	b.kShardPlacement = cl.shardPlacement(cc, queue.Keys{Prefix: prefix, Shards: clusterShards}, kProviders)
	logf("    with %d shards: %s", clusterShards, b.kShardPlacement)
	flush := func() { cl.flush(cc) }
	for _, r := range []kRun{{}, {MinReplicas: 1}, {Shards: clusterShards}} {
		r.Name = fmt.Sprintf("%d relays, cluster %d masters + %d replicas", clusterRelays, clusterMasters, clusterMasters*clusterReplicasPer)
		if r.MinReplicas > 0 {
			r.Name += fmt.Sprintf(", min_replicas_acked %d", r.MinReplicas)
		}
		if r.Shards > 1 {
			r.Name += fmt.Sprintf(", shards %d", r.Shards)
		}
		r.Relays = clusterRelays
		flush()
		b.kRuns = append(b.kRuns, b.kSetup(r, cc, cl.url(), cl.pids(), flush))
	}
}

// kSetup measures one setup: relays ingest-only (1 worker, rate_limit 0.001 as in (b))
// under the closed-loop generator, then, on a flushed queue with Backlog events
// prefilled, relays with Workers workers each drain it into the fast fake.
func (b *bench) kSetup(r kRun, rdb redis.UniversalClient, url string, redisPids map[string]int, flush func()) kRun {
	s := b.s
	startAll := func(tag string, workers int, rate float64) ([]*proc, []string, map[string]int) {
		var ps []*proc
		var addrs []string
		pids := map[string]int{}
		for k, v := range redisPids {
			pids[k] = v
		}
		for i := range r.Relays {
			p, a := b.startRelayWith(relayRun{Name: fmt.Sprintf("relay-k-%s-%d", tag, i+1), Upstream: "http://" + b.fakeAddr,
				Workers: workers, Rate: rate, RedisURL: url, MinReplicasAcked: r.MinReplicas, Shards: r.Shards})
			ps = append(ps, p)
			addrs = append(addrs, a)
			pids[fmt.Sprintf("relay%d", i+1)] = p.pid()
		}
		return ps, addrs, pids
	}
	stopAll := func(ps []*proc) {
		for _, p := range ps {
			p.stop(15 * time.Second)
		}
	}

	ps, addrs, pids := startAll("ingest", 1, 0.001)
	logf("(k) %s: ingest, %d conns over %d relay(s), %s", r.Name, s.Conns, len(addrs), s.Dur)
	r.IngestCores = sampleCPU(func() { r.Ingest = generateSpread(addrs, s.Conns, ingestMix, toIngest, s.Warmup, s.Dur) },
		s.Warmup, s.Dur, pids)
	logf("    %s | cores: %s", r.Ingest, coresString(r.IngestCores))
	stopAll(ps)

	flush()
	keys := queue.Keys{Prefix: prefix, Shards: r.Shards}
	b.prefillInto(rdb, keys, s.Backlog)
	ps, _, pids = startAll("deliver", s.Workers, 1e6)
	pids["fake"] = b.fake.pid()
	logf("(k) %s: delivery of %d queued, %d workers/provider per relay", r.Name, s.Backlog, s.Workers)
	r.Deliver = b.watchDrain(rdb, keys, s.Backlog, 0, pids)
	logf("    delivered %d in %s = %.0f/s (complete %v), dead %d, retry %d | cores: %s",
		r.Deliver.Delivered, r.Deliver.Elapsed.Round(time.Millisecond), r.Deliver.Rate(), r.Deliver.Complete,
		r.Deliver.Dead, r.Deliver.Retry, coresString(r.Deliver.Cores))
	stopAll(ps)
	flush()
	return r
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(raw))
	return strings.Join(f[:min(3, len(f))], " ")
}

// coresString lists every sampled process's cores, sorted by name.
func coresString(c cpuUse) string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	total := 0.0
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.2f", k, c[k])
		total += c[k]
	}
	return strings.Join(parts, ", ") + fmt.Sprintf(" (total %.2f)", total)
}

// cpuGroup sums the cores of the processes named by patterns (a name, or a prefix
// ending in "*"), and gives the largest single one.
func cpuGroup(c cpuUse, patterns ...string) (sum, maxOne float64, n int) {
	for k, v := range c {
		for _, p := range patterns {
			if pre, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(k, pre) || k == p {
				sum += v
				maxOne = max(maxOne, v)
				n++
				break
			}
		}
	}
	return sum, maxOne, n
}

// perEventCell is "sum µs (max one process µs)" per event for a group of processes.
func perEventCell(c cpuUse, rate float64, patterns ...string) string {
	sum, one, n := cpuGroup(c, patterns...)
	if rate <= 0 || n == 0 {
		return "–"
	}
	if n == 1 {
		return fmt.Sprintf("%.1f", sum/rate*1e6)
	}
	return fmt.Sprintf("%.1f (busiest %.1f)", sum/rate*1e6, one/rate*1e6)
}

// clusterTable renders phase k alone, in Markdown (what -phases k writes to -out).
func (b *bench) clusterTable(took time.Duration) string {
	s := b.s
	var w strings.Builder
	mode := "full"
	if s.Quick {
		mode = "QUICK"
	}
	fmt.Fprintf(&w, "# Relay on one Redis node vs a Redis Cluster (phase k, %s mode)\n\n", mode)
	fmt.Fprintf(&w, "Run %s on %s; whole run %s. One run, on a machine shared with other jobs: "+
		"read the ratios and the CPU per event, not the absolute rates.\n\n", time.Now().Format("2006-01-02 15:04 MST"), machine(), took.Round(time.Second))
	fmt.Fprintf(&w, "Every process runs on the same 2 cores: generator, relay(s), every redis-server and the fake upstream. "+
		"Ingest: fasthttp closed-loop generator, %d connections split evenly over the relays, %s warm-up + %s window, relays "+
		"ingest-only (1 worker, rate_limit 0.001/s as in row b of results.md). Delivery: %d events prefilled, relays with %d "+
		"workers per provider **each** and rate_limit 1e6/s drain them into the fast fake; rate from 5 %% to 95 %% delivered "+
		"(cap %s). Mix: %s. Redis: AOF everysec, noeviction on every node; cluster: %d masters with %d replica each "+
		"(`redis-cli --cluster create`), node timeout 5 s, relays on `redis+cluster://` naming all 6 nodes.\n\n",
		s.Conns, s.Warmup, s.Dur, s.Backlog, s.Workers, s.DrainCap, mixDescription(ingestMix), clusterMasters, clusterReplicasPer)
	fmt.Fprintf(&w, "Load average (/proc/loadavg: 1, 5, 15 min) when phase k started: %s; when it ended: %s "+
		"(the machine's other jobs count in it).\n\n", b.kLoad[0], b.kLoad[1])
	if b.kPlacement != "" {
		fmt.Fprintf(&w, "Stream placement with one shard (each provider's keys carry the hash tag {P}, so a provider lives "+
			"on one master): %s.\n\n", b.kPlacement)
	}
	if b.kShardPlacement != "" {
		fmt.Fprintf(&w, "With `redis.shards: %d` (tags {P}, {P:1} … {P:5}), shards per master: %s.\n\n", clusterShards, b.kShardPlacement)
	}
	if len(b.kRuns) == 0 {
		fmt.Fprintln(&w, "Phase k not run.")
		return w.String()
	}
	ref := b.kRuns[0]
	fmt.Fprintln(&w, "## Ingest (closed loop)")
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "| setup | req/s | vs 1 node | p50 | p99 | non-2xx | relay µs/event (all relays) | Redis masters µs/event | replicas µs/event | generator µs/req | cores used (all processes) |")
	fmt.Fprintln(&w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range b.kRuns {
		rate := r.Ingest.RPS()
		repl := "–"
		if _, _, n := cpuGroup(r.IngestCores, "redis-r*"); n > 0 {
			repl = perEventCell(r.IngestCores, rate, "redis-r*")
		}
		total, _, _ := cpuGroup(r.IngestCores, "*")
		fmt.Fprintf(&w, "| %s | %.0f | %.2f× | %s | %s | %d | %s | %s | %s | %s | %.2f |\n",
			r.Name, rate, rate/ref.Ingest.RPS(), ms(r.Ingest.P50), ms(r.Ingest.P99), r.Ingest.Errors,
			perEventCell(r.IngestCores, rate, "relay*"), perEventCell(r.IngestCores, rate, "redis-m*", "redis"),
			repl, perEventCell(r.IngestCores, rate, "loadgen"), total)
	}
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "## Delivery (backlog drain into the fast fake)")
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "| setup | events/s | vs 1 node | dead / retry | complete | relay µs/event (all relays) | Redis masters µs/event | replicas µs/event | fake µs/event | cores used (all processes) |")
	fmt.Fprintln(&w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range b.kRuns {
		d := r.Deliver
		rate := d.Rate()
		repl := "–"
		if _, _, n := cpuGroup(d.Cores, "redis-r*"); n > 0 {
			repl = perEventCell(d.Cores, rate, "redis-r*")
		}
		total, _, _ := cpuGroup(d.Cores, "*")
		fmt.Fprintf(&w, "| %s | %.0f | %.2f× | %d / %d | %v | %s | %s | %s | %s | %.2f |\n",
			r.Name, rate, rate/max(ref.Deliver.Rate(), 1e-9), d.Dead, d.Retry, d.Complete,
			perEventCell(d.Cores, rate, "relay*"), perEventCell(d.Cores, rate, "redis-m*", "redis"),
			repl, perEventCell(d.Cores, rate, "fake"), total)
	}
	fmt.Fprintln(&w, "\nCores of each process during each window (from /proc/<pid>/stat; redis-m<i> masters, redis-r<i> replicas):")
	for _, r := range b.kRuns {
		fmt.Fprintf(&w, "- %s, ingest: %s\n", r.Name, coresString(r.IngestCores))
		fmt.Fprintf(&w, "- %s, delivery: %s\n", r.Name, coresString(r.Deliver.Cores))
	}
	fmt.Fprintln(&w, "\nRaw generator results:")
	for _, r := range b.kRuns {
		fmt.Fprintf(&w, "- %s: %s; delivery %d events in %s\n", r.Name, r.Ingest, r.Deliver.Delivered, r.Deliver.Elapsed.Round(time.Millisecond))
	}
	return w.String()
}
