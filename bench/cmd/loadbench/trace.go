package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/eventrelay/relay/relay/queue"
)

// traceRuns is how many (off, on) pairs phase t alternates: drift of a shared machine
// then hits both sides alike.
const traceRuns = 2

// traceKeep is the trace's bound in phase t.
const traceKeep = 5000

// traceSide is one setting's runs in phase t.
type traceSide struct {
	ingestRPS, ingestRelayUS, ingestRedisUS    []float64
	deliverRPS, deliverRelayUS, deliverRedisUS []float64
}

// phaseT is (t): ingest as (b) and delivery as (c), with the delivery trace off and on,
// alternating in ABBA order, then the trace's Redis bytes per traced event.
func (b *bench) phaseT() {
	sides := map[bool]*traceSide{false: {}, true: {}}
	var traceBytes, traced int64
	for run := range traceRuns {
		// Off then on, then on then off (ABBA): a drift over the phase (the AOF growing,
		// the machine's other jobs) weighs on both sides alike, not on the later one.
		order := []bool{false, true}
		if run%2 == 1 {
			order = []bool{true, false}
		}
		for _, on := range order {
			// keep below the events each run traces (ingest and the drain), so that the
			// trimming of the trace is part of what is measured.
			b.traceYAML = fmt.Sprintf("trace: {enabled: %v, keep: %d}\n", on, traceKeep)
			side := sides[on]
			b.flush()
			r, use, _ := b.ingestRun(fmt.Sprintf("(t) ingest, trace %s, run %d", onOff(on), run+1))
			side.ingestRPS = append(side.ingestRPS, r.RPS())
			side.ingestRelayUS = append(side.ingestRelayUS, use["relay"]/r.RPS()*1e6)
			side.ingestRedisUS = append(side.ingestRedisUS, use["redis"]/r.RPS()*1e6)
			b.flush()
			b.prefill(b.s.Backlog)
			d, _ := b.drainRun(fmt.Sprintf("(t) delivery, trace %s, run %d, %d queued", onOff(on), run+1, b.s.Backlog), b.s.Backlog, 0)
			side.deliverRPS = append(side.deliverRPS, d.Rate())
			side.deliverRelayUS = append(side.deliverRelayUS, d.Cores["relay"]/d.Rate()*1e6)
			side.deliverRedisUS = append(side.deliverRedisUS, d.Cores["redis"]/d.Rate()*1e6)
			if on {
				traceBytes, traced = b.traceMemory()
			}
		}
	}
	b.traceYAML = ""
	off, on := sides[false], sides[true]
	logf("(t) trace off vs on, %d alternating runs each (mean; on/off ratio):", traceRuns)
	row := func(name string, o, n []float64) {
		logf("    %-34s off %9.1f  on %9.1f  ratio %.3f   (runs off %s, on %s)", name, mean(o), mean(n), mean(n)/mean(o), list(o), list(n))
	}
	row("ingest events/s", off.ingestRPS, on.ingestRPS)
	row("ingest relay CPU µs/event", off.ingestRelayUS, on.ingestRelayUS)
	row("ingest Redis CPU µs/event", off.ingestRedisUS, on.ingestRedisUS)
	row("delivery events/s", off.deliverRPS, on.deliverRPS)
	row("delivery relay CPU µs/event", off.deliverRelayUS, on.deliverRelayUS)
	row("delivery Redis CPU µs/event", off.deliverRedisUS, on.deliverRedisUS)
	if traced > 0 {
		logf("    trace Redis memory: %d bytes for %d traced events = %d bytes/event (MEMORY USAGE SAMPLES 0 of the trace keys)",
			traceBytes, traced, traceBytes/traced)
	}
}

// traceMemory sums the trace keys' memory and traced events over the providers.
func (b *bench) traceMemory() (bytes, events int64) {
	keys := queue.Keys{Prefix: prefix}
	for _, p := range []string{"ens", "bannerflex", "linkrunner", "brevo"} {
		n, e, err := queue.TraceUsage(context.Background(), b.rdb, keys, p)
		if err != nil {
			logf("    trace memory of %s: %v", p, err)
			continue
		}
		bytes, events = bytes+n, events+e
	}
	return bytes, events
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(max(len(v), 1))
}

func list(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.1f", x)
	}
	return strings.Join(parts, "/")
}
