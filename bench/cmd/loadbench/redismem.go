package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/eventrelay/relay/relay/queue"
)

// Phase (m): what Redis keeps per event. Four measurements, each on a flushed Redis with
// a fresh relay: N events ingested through the relay (the normal mix), unkeyed or keyed
// (a unique Idempotency-Key per request), either with delivery stopped (the (b) setup:
// what a queued event costs) or delivered to the fast fakes (the (c) setup: what an event
// leaves behind once delivered). Readings of INFO memory, DBSIZE and the key names are
// taken with the relay running and idle, before the first request and after the last
// reply (queued) or once the queue is empty (delivered).

// memProviders are the bench config's providers, whose streams the phase reads.
var memProviders = []string{"ens", "bannerflex", "linkrunner", "brevo"}

// memSnap is one reading of Redis's memory.
type memSnap struct {
	Used    int64          // INFO memory used_memory
	Buffers int64          // mem_clients_normal + mem_aof_buffer: connection and AOF buffers, not data
	Streams int64          // MEMORY USAGE <events stream> SAMPLES 0, summed over the providers
	Keys    int64          // DBSIZE
	Kinds   map[string]int // keys by kind ("seen", "events", "stats", …; see keyKind)
}

// memResult is one (m) measurement: the difference of two readings over N events.
type memResult struct {
	N        int // events accepted (2xx)
	Errors   int // requests not accepted (transport errors and non-2xx)
	Before   memSnap
	After    memSnap
	Complete bool   // delivered runs: the streams, pending lists and retry sets were empty at the end
	Left     int64  // delivered runs: entries still in the streams or pending at the end
	Took     string // how long ingest (and delivery) took
	Skipped  string
}

func (m memResult) ok() bool { return m.N > 0 && m.Skipped == "" }

// PerEvent is Δused_memory / N: every byte Redis holds more, buffers included.
func (m memResult) PerEvent() float64 {
	return float64(m.After.Used-m.Before.Used) / float64(max(m.N, 1))
}

// DataPerEvent is Δ(used_memory − client and AOF buffers) / N: the same with the
// connections' query/output buffers and the AOF buffer left out (they depend on timing,
// not on what is stored).
func (m memResult) DataPerEvent() float64 {
	return float64((m.After.Used-m.After.Buffers)-(m.Before.Used-m.Before.Buffers)) / float64(max(m.N, 1))
}

// StreamsPerEvent is Δ(MEMORY USAGE of the events streams, SAMPLES 0) / N.
func (m memResult) StreamsPerEvent() float64 {
	return float64(m.After.Streams-m.Before.Streams) / float64(max(m.N, 1))
}

// KeysDelta is the DBSIZE difference.
func (m memResult) KeysDelta() int64 { return m.After.Keys - m.Before.Keys }

// KindsDelta lists the key kinds whose count changed, e.g. "seen +20000, stats:… +4".
func (m memResult) KindsDelta() string {
	all := map[string]bool{}
	for k := range m.Before.Kinds {
		all[k] = true
	}
	for k := range m.After.Kinds {
		all[k] = true
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(all)) {
		if d := m.After.Kinds[k] - m.Before.Kinds[k]; d != 0 {
			parts = append(parts, fmt.Sprintf("%s %+d", k, d))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func (m memResult) String() string {
	if !m.ok() {
		return "not run (" + cmp.Or(m.Skipped, "phase m not selected") + ")"
	}
	s := fmt.Sprintf("%d events (%d not accepted) in %s: used_memory %+d B = %.0f B/event, less client/AOF buffers (%+d B) %.0f B/event, "+
		"events streams %.0f B/event; DBSIZE %+d (%s)",
		m.N, m.Errors, m.Took, m.After.Used-m.Before.Used, m.PerEvent(), m.After.Buffers-m.Before.Buffers, m.DataPerEvent(),
		m.StreamsPerEvent(), m.KeysDelta(), m.KindsDelta())
	if m.Left != 0 || !m.Complete {
		s += fmt.Sprintf("; left in the queue %d (complete: %v)", m.Left, m.Complete)
	}
	return s
}

// memPhase runs the four (m) measurements.
func (b *bench) memPhase() {
	n := b.s.MemEvents
	b.memQueued = b.memRun("(m) Redis memory per queued event, unkeyed", n, false, false)
	b.memQueuedKeyed = b.memRun("(m) Redis memory per queued event, keyed (unique Idempotency-Key)", n, true, false)
	b.memLeft = b.memRun("(m) Redis memory left per event after delivery, unkeyed", n, false, true)
	b.memLeftKeyed = b.memRun("(m) Redis memory left per event after delivery, keyed (unique Idempotency-Key)", n, true, true)
}

// memRun flushes Redis, starts a relay (ingest-only as in (b), or delivering as in (c)),
// reads Redis's memory, ingests n events through the relay and reads it again: at once
// when queued (every reply came back, so every accepted event is in Redis), or once the
// relay has delivered them all (streams, pending lists and retry sets empty).
func (b *bench) memRun(name string, n int, keyed, deliver bool) memResult {
	b.flush()
	var p *proc
	var addr string
	if deliver {
		p, addr = b.startRelay("relay-mem-deliver", "http://"+b.fakeAddr, b.s.Workers, 1e6)
	} else {
		p, addr = b.startRelay("relay-mem-queued", "http://"+b.fakeAddr, 1, 0.001)
	}
	defer p.stop(15 * time.Second)
	logf("%s: %d events, %d conns", name, n, b.s.Conns)
	// The forwarders create their consumer groups (and the empty streams) at start.
	b.waitGroups(5 * time.Second)
	var r memResult
	r.Before = b.memSnap()
	t0 := time.Now()
	r.N, r.Errors = sendN(addr, b.s.Conns, ingestMix, n, keyed)
	if deliver {
		r.Complete, r.Left = b.waitDelivered(b.s.DrainCap + 10*time.Second)
		// The recorders ack and delete in batches; let a last batch and its stats land.
		time.Sleep(500 * time.Millisecond)
	} else {
		r.Complete = true
		time.Sleep(200 * time.Millisecond)
	}
	r.Took = time.Since(t0).Round(time.Millisecond).String()
	r.After = b.memSnap()
	logf("    %s", r)
	return r
}

// waitGroups waits until every events stream exists (the forwarders created their
// consumer group with MKSTREAM), so that the first reading does not miss them.
func (b *bench) waitGroups(within time.Duration) {
	ctx := context.Background()
	keys := queue.Keys{Prefix: prefix}
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		all := true
		for _, pr := range memProviders {
			if b.rdb.Exists(ctx, keys.Events(pr)).Val() == 0 {
				all = false
			}
		}
		if all {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
}

// waitDelivered waits until the events streams are empty, nothing is pending in their
// consumer groups and the retry sets are empty, or within has passed; it returns whether
// that happened and how many entries were still queued or pending.
func (b *bench) waitDelivered(within time.Duration) (bool, int64) {
	ctx := context.Background()
	keys := queue.Keys{Prefix: prefix}
	deadline := time.Now().Add(within)
	var left int64
	for {
		left = 0
		for _, pr := range memProviders {
			left += b.rdb.XLen(ctx, keys.Events(pr)).Val()
			left += b.rdb.ZCard(ctx, keys.Retry(pr)).Val()
			if x, err := b.rdb.XPending(ctx, keys.Events(pr), queue.Group).Result(); err == nil {
				left += x.Count
			}
		}
		if left == 0 {
			return true, 0
		}
		if time.Now().After(deadline) {
			return false, left
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// memSnap reads used_memory and the buffers from INFO memory, the events streams'
// MEMORY USAGE (SAMPLES 0: every node counted, not estimated), DBSIZE and the keys by
// kind (SCAN).
func (b *bench) memSnap() memSnap {
	ctx := context.Background()
	info := infoFields(b.rdb.Info(ctx, "memory").Val())
	s := memSnap{Used: info["used_memory"], Buffers: info["mem_clients_normal"] + info["mem_aof_buffer"], Kinds: map[string]int{}}
	keys := queue.Keys{Prefix: prefix}
	for _, pr := range memProviders {
		s.Streams += b.rdb.MemoryUsage(ctx, keys.Events(pr), 0).Val()
	}
	s.Keys = b.rdb.DBSize(ctx).Val()
	it := b.rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for it.Next(ctx) {
		s.Kinds[keyKind(it.Val())]++
	}
	return s
}

// infoFields parses the integer fields of an INFO reply.
func infoFields(info string) map[string]int64 {
	out := map[string]int64{}
	for _, l := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}

// keyKind names a key's kind: "<prefix>:{P}:seen:<id>" → "seen", "<prefix>:{P}:events"
// → "events", "<prefix>:{P}:stats:<minute>" → "stats"; a key of another shape is its
// name up to the first ':' after the prefix.
func keyKind(key string) string {
	rest := strings.TrimPrefix(key, prefix+":")
	if _, after, ok := strings.Cut(rest, "}:"); ok {
		rest = after
	}
	kind, _, _ := strings.Cut(rest, ":")
	return kind
}

// sendN sends exactly n requests of the mix to the relay at addr over conns connections
// (closed loop, one in flight each) and returns how many were accepted (2xx) and how
// many were not. keyed: every request carries an Idempotency-Key header with a fresh
// UUID (the length of the ids the relay generates itself).
func sendN(addr string, conns int, mix []shot, n int, keyed bool) (accepted, failed int) {
	hc := newHostClient(addr, conns)
	sched := schedule(mix)
	var next atomic.Int64
	var ok, bad atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			req := fasthttp.AcquireRequest()
			res := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(res)
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				setRequest(req, addr, &mix[sched[i%int64(len(sched))]], toIngest)
				if keyed {
					req.Header.Set("Idempotency-Key", uuid.NewString())
				}
				err := hc.Do(req, res)
				if err == nil && res.StatusCode() >= 200 && res.StatusCode() <= 299 {
					ok.Add(1)
				} else {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(ok.Load()), int(bad.Load())
}
