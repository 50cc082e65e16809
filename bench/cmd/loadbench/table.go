package main

import (
	"cmp"
	"fmt"
	"strings"
	"time"
)

func mark(ok bool) string {
	if ok {
		return "**met**"
	}
	return "not met"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

// table renders the run's figures with the target ratios, in Markdown.
func (b *bench) table(took time.Duration) string {
	s := b.s
	var w strings.Builder
	mode := "full"
	if s.Quick {
		mode = "QUICK"
	}
	fmt.Fprintf(&w, "# Relay load benchmark (%s mode)\n\n", mode)
	fmt.Fprintf(&w, "Run %s on %s; whole run %s.\n", time.Now().Format("2006-01-02 15:04 MST"), machine(), took.Round(time.Second))
	fmt.Fprintf(&w, "fasthttp generator, %d connections, %s warm-up + %s measured per load test: closed loop (one request in flight "+
		"per connection, so p99 there is saturation queueing), except the paced rows b' and f' (open loop: fixed send times at "+
		"a target rate, latency from the scheduled send time). "+
		"Mix: %s. Redis: redis-server, AOF everysec, noeviction. Every figure below comes from this one run; "+
		"compare ratios, not absolute numbers (2 shared cores: generator, relay, Redis and fakes share them). "+
		"Rows w: the same mix and connections from wrk (-t%d, closed loop). Rows m: Redis memory over %d events each. "+
		"Rows \"cpu\": CPU µs per request or event from /proc over the same windows.\n\n",
		s.Conns, s.Warmup, s.Dur, mixDescription(ingestMix), s.WrkThreads, s.MemEvents)

	fmt.Fprintln(&w, "| # | measure | figure | reference (same run) | ratio | target | status |")
	fmt.Fprintln(&w, "|---|---|---|---|---|---|---|")
	ri := b.ingest.RPS() / b.noop.RPS()
	fmt.Fprintf(&w, "| a | no-op fasthttp ceiling (202, no work) | %.0f req/s, p50 %s, p99 %s | | | | |\n",
		b.noop.RPS(), ms(b.noop.P50), ms(b.noop.P99))
	fmt.Fprintf(&w, "| b | relay ingest (validate + durable enqueue), empty queue | %.0f req/s, p50 %s, p99 %s, %d non-2xx | no-op %.0f req/s | %.2f× | ≥ 0.7× and p99 ≤ 5 ms | %s |\n",
		b.ingest.RPS(), ms(b.ingest.P50), ms(b.ingest.P99), b.ingest.Errors, b.noop.RPS(), ri,
		mark(ri >= 0.7 && b.ingest.P99 <= 5*time.Millisecond && b.ingest.Errors == 0))
	fmt.Fprintln(&w, b.pacedIngestRow())
	rd := b.deliver.Rate() / b.upCeil.RPS()
	fmt.Fprintf(&w, "| c | delivery, draining %d queued events into fast fakes (%d workers/provider, rate_limit 1e6/s) | %.0f events/s (dead %d, retry %d) | fakes driven directly: %.0f req/s | %.2f× | ≥ 0.5× | %s |\n",
		s.Backlog, s.Workers, b.deliver.Rate(), b.deliver.Dead, b.deliver.Retry, b.upCeil.RPS(), rd,
		mark(rd >= 0.5 && b.deliver.Dead == 0))
	peak := max(b.rssIngest, b.rssDeliver)
	fmt.Fprintf(&w, "| d | relay peak RSS (VmHWM) under (b) / (c) | %.0f MB / %.0f MB | | | ≤ 150 MB | %s |\n",
		b.rssIngest, b.rssDeliver, mark(peak > 0 && peak <= 150))
	fmt.Fprintf(&w, "| d' | relay peak RSS under (e) ingest / (e) delivery / (f) | %.0f MB / %.0f MB / %.0f MB | | | (≤ 150 MB) | %s |\n",
		b.rssIngestBig, b.rssDeliverBig, b.rssNginxRelay, mark(max(b.rssIngestBig, b.rssDeliverBig, b.rssNginxRelay) <= 150))
	re := b.ingestBig.RPS() / b.ingest.RPS()
	fmt.Fprintf(&w, "| e | ingest with %d events queued | %.0f req/s, p99 %s | empty queue %.0f req/s | %.2f× | within 10%% (≥ 0.9×) | %s |\n",
		s.BigBacklog, b.ingestBig.RPS(), ms(b.ingestBig.P99), b.ingest.RPS(), re, mark(re >= 0.9 && b.ingestBig.Errors == 0))
	rdb := b.deliverBig.Rate() / b.deliver.Rate()
	fmt.Fprintf(&w, "| e | delivery of %d events with %d more queued behind | %.0f events/s | %d queued: %.0f events/s | %.2f× | within 10%% (≥ 0.9×) | %s |\n",
		s.Backlog, s.BigBacklog, b.deliverBig.Rate(), s.Backlog, b.deliver.Rate(), rdb, mark(rdb >= 0.9))
	rt := b.relayVsNginx.RPS() / b.nginx.RPS()
	rp := float64(b.nginx.P99) / float64(max(b.relayVsNginx.P99, 1))
	fmt.Fprintf(&w, "| f | relay vs nginx (synchronous proxy, header injection) before a %s upstream: throughput | relay %.0f req/s | nginx %.0f req/s | %.1f× | > 1× | %s |\n",
		s.UpstreamWait, b.relayVsNginx.RPS(), b.nginx.RPS(), rt, mark(rt > 1 && b.relayVsNginx.Errors == 0))
	fmt.Fprintf(&w, "| f | … client p99 at saturation (unequal load: each at its own throughput; the target is f') | relay %s | nginx %s | %.1f× lower | | |\n",
		ms(b.relayVsNginx.P99), ms(b.nginx.P99), rp)
	fmt.Fprintln(&w, b.pacedNginxRow())
	b.cpuRows(&w)
	b.memRows(&w)
	b.wrkRows(&w)

	fmt.Fprintln(&w, "\nCPU use during each window (cores, of 2; from /proc/<pid>/stat):")
	fmt.Fprintf(&w, "- (a) %s\n- (b) %s\n- (b' paced) %s\n- (e ingest) %s\n- (c ceiling) %s\n- (c delivery) %s\n- (e delivery) %s\n"+
		"- (f' nginx paced; nginx itself not sampled) %s\n- (f' relay paced) %s\n",
		b.noopCPU, b.ingestCPU, b.ingestPaced.Cores, b.ingestBigCPU, b.upCeilCPU, b.deliver.Cores, b.deliverBig.Cores,
		b.nginxPaced.Cores, b.relayPaced.Cores)
	fmt.Fprintf(&w, "- (w no-op, wrk) %s\n- (w relay, wrk) %s\n", b.wrkNoop.CPUString(), b.wrkRelay.CPUString())
	fmt.Fprintln(&w, "\nRaw generator results:")
	for _, x := range []struct {
		n string
		r genResult
	}{{"a no-op", b.noop}, {"b ingest", b.ingest}, {"e ingest, big backlog", b.ingestBig},
		{"c fakes' ceiling", b.upCeil}, {"f nginx", b.nginx}, {"f relay", b.relayVsNginx}} {
		fmt.Fprintf(&w, "- %s: %s\n", x.n, x.r)
	}
	for _, x := range []struct {
		n string
		r cpuPaced
	}{{"b' ingest", b.ingestPaced}, {"f' nginx", b.nginxPaced}, {"f' relay", b.relayPaced}} {
		if x.r.Rate > 0 {
			fmt.Fprintf(&w, "- %s: %s\n", x.n, x.r.pacedResult)
		}
	}
	fmt.Fprintf(&w, "- c delivery: %d events in %s (complete: %v); e delivery: %d events in %s (complete: %v)\n",
		b.deliver.Delivered, b.deliver.Elapsed.Round(time.Millisecond), b.deliver.Complete,
		b.deliverBig.Delivered, b.deliverBig.Elapsed.Round(time.Millisecond), b.deliverBig.Complete)
	fmt.Fprintf(&w, "- w no-op (wrk): %s\n- w relay (wrk): %s\n", b.wrkNoop, b.wrkRelay)
	for _, x := range []struct {
		n string
		r memResult
	}{{"m queued, unkeyed", b.memQueued}, {"m queued, keyed", b.memQueuedKeyed},
		{"m after delivery, unkeyed", b.memLeft}, {"m after delivery, keyed", b.memLeftKeyed}} {
		fmt.Fprintf(&w, "- %s: %s\n", x.n, x.r)
	}
	return w.String()
}

// pacedIngestRow is (b'): ingest paced at 0.7× the no-op ceiling. Met when the relay kept
// up (achieved ≥ 98 % of the requested rate), with p99 ≤ 5 ms and no error.
func (b *bench) pacedIngestRow() string {
	r := b.ingestPaced
	const name = "| b' | relay ingest paced (open loop) at %.1f× the no-op ceiling, empty queue; latency from the scheduled send time"
	if r.Rate <= 0 {
		return fmt.Sprintf(name+" | not run (%s) | | | ≥ 0.7× sustained with p99 ≤ 5 ms | |", pacedIngestShare, cmp.Or(r.Skipped, "phase b not selected"))
	}
	ratio := r.RPS() / b.noop.RPS()
	return fmt.Sprintf(name+" | achieved %.0f of %.0f req/s requested, p50 %s, p99 %s, max %s, %d non-2xx; %s | no-op %.0f req/s | %.2f× | ≥ 0.7× sustained with p99 ≤ 5 ms | %s |",
		pacedIngestShare, r.RPS(), r.Rate, ms(r.P50), ms(r.P99), ms(r.Max), r.Errors, lateNote(r.pacedResult), b.noop.RPS(), ratio,
		mark(r.KeptUp() && r.P99 <= 5*time.Millisecond && r.Errors == 0))
}

// pacedNginxRow is (f'): nginx and the relay paced at the same rate. Met when the relay's
// p99 is at least 10× lower and both kept up (else the load was not equal after all).
func (b *bench) pacedNginxRow() string {
	n, r := b.nginxPaced, b.relayPaced
	name := fmt.Sprintf("| f' | relay vs nginx at equal load, both paced (open loop) at %.1f× nginx's closed-loop throughput: client p99 from the scheduled send time", pacedNginxShare)
	if n.Rate <= 0 || r.Rate <= 0 {
		return name + fmt.Sprintf(" | not run (%s) | | | ≥ 10× lower | |", cmp.Or(r.Skipped, "phase f not selected"))
	}
	ratio := float64(n.P99) / float64(max(r.P99, 1))
	return fmt.Sprintf("%s | relay p99 %s (p50 %s; achieved %.0f of %.0f req/s, %d non-2xx; %s) | nginx p99 %s (p50 %s; achieved %.0f of %.0f req/s, %d non-2xx; %s) | %.1f× lower | ≥ 10× lower | %s |",
		name, ms(r.P99), ms(r.P50), r.RPS(), r.Rate, r.Errors, lateNote(r.pacedResult),
		ms(n.P99), ms(n.P50), n.RPS(), n.Rate, n.Errors, lateNote(n.pacedResult), ratio,
		mark(ratio >= 10 && r.KeptUp() && n.KeptUp() && r.Errors == 0))
}

// lateNote says how late the generator sent a paced window's requests and why. Sends
// late although a connection was free are the generator's own lag (Go timers, CPU), which
// the latencies include; "busy" sends waited for a free connection (the server behind).
func lateNote(r pacedResult) string {
	s := fmt.Sprintf("send lag p99 %s, late > %s: %d generator / %d busy", ms(r.LagP99), lateAfter, r.LateTimer, r.LateBusy)
	if r.Unsent > 0 {
		s += fmt.Sprintf(", %d unsent", r.Unsent)
	}
	return s
}

// usPer is the CPU µs per event of process k, which used cores[k] cores while rate
// events/s were handled; false when either figure is missing.
func usPer(cores cpuUse, k string, rate float64) (float64, bool) {
	c, ok := cores[k]
	if !ok || rate <= 0 || c < 0 {
		return 0, false
	}
	return c / rate * 1e6, true
}

// cpuRows are the CPU µs per request of the no-op server (a), and per ingested (b) and
// delivered (c) event of the relay and Redis: cores used in the window / requests or
// events per second in the same window. The reference is the no-op server's CPU per
// request in (a), a fasthttp server doing no work on the same requests.
func (b *bench) cpuRows(w *strings.Builder) {
	noop, noopOK := usPer(b.noopCPU, "noop", b.noop.RPS())
	ref := "no-op server (a) not run"
	if noopOK {
		ref = fmt.Sprintf("no-op server (a): %.1f µs/req", noop)
		gen, _ := usPer(b.noopCPU, "loadgen", b.noop.RPS())
		fmt.Fprintf(w, "| a cpu | no-op server CPU per request (a) | %.1f µs/req (Go generator %.1f µs/req) | | | | |\n", noop, gen)
	} else {
		fmt.Fprintln(w, "| a cpu | no-op server CPU per request (a) | not run | | | | |")
	}
	row := func(id, name string, cores cpuUse, k string, rate float64, extra string) {
		v, ok := usPer(cores, k, rate)
		if !ok {
			fmt.Fprintf(w, "| %s | %s | not run | %s | | | |\n", id, name, ref)
			return
		}
		ratio := ""
		if noopOK {
			ratio = fmt.Sprintf("%.2f×", v/noop)
		}
		fmt.Fprintf(w, "| %s | %s | %.1f µs/event%s | %s | %s | | |\n", id, name, v, extra, ref, ratio)
	}
	gen := ""
	if v, ok := usPer(b.ingestCPU, "loadgen", b.ingest.RPS()); ok {
		gen = fmt.Sprintf(" (Go generator %.1f µs/req)", v)
	}
	row("b cpu", "relay CPU per ingested event (b, closed loop, empty queue)", b.ingestCPU, "relay", b.ingest.RPS(), gen)
	row("b cpu", "Redis CPU per ingested event (b)", b.ingestCPU, "redis", b.ingest.RPS(), "")
	fake := ""
	if v, ok := usPer(b.deliver.Cores, "fake", b.deliver.Rate()); ok {
		fake = fmt.Sprintf(" (fake upstream %.1f µs/event)", v)
	}
	row("c cpu", "relay CPU per delivered event (c, 5 %–95 % of the drain)", b.deliver.Cores, "relay", b.deliver.Rate(), fake)
	row("c cpu", "Redis CPU per delivered event (c)", b.deliver.Cores, "redis", b.deliver.Rate(), "")
}

// memRows are (m): Redis bytes per queued event and left per delivered event, unkeyed
// and keyed.
func (b *bench) memRows(w *strings.Builder) {
	n := b.s.MemEvents
	cell := func(m memResult, left bool) string {
		if !m.ok() {
			return "not run (" + cmp.Or(m.Skipped, "phase m not selected") + ")"
		}
		s := fmt.Sprintf("**%.0f B/event** (used_memory %+d B over %d events; less client/AOF buffers %.0f B/event); events streams %.0f B/event (MEMORY USAGE SAMPLES 0)",
			m.PerEvent(), m.After.Used-m.Before.Used, m.N, m.DataPerEvent(), m.StreamsPerEvent())
		if left {
			s += fmt.Sprintf("; keys left %+d (%s)", m.KeysDelta(), m.KindsDelta())
			if !m.Complete {
				s += fmt.Sprintf("; **not drained**: %d entries still queued or pending", m.Left)
			}
		} else {
			s += fmt.Sprintf("; keys %+d (%s)", m.KeysDelta(), m.KindsDelta())
		}
		if m.Errors > 0 {
			s += fmt.Sprintf("; %d requests not accepted", m.Errors)
		}
		return s
	}
	ratio := func(x, ref memResult) string {
		if !x.ok() || !ref.ok() || ref.PerEvent() == 0 {
			return ""
		}
		return fmt.Sprintf("%.2f×", x.PerEvent()/ref.PerEvent())
	}
	refCell := func(name string, ref memResult) string {
		if !ref.ok() {
			return ""
		}
		return fmt.Sprintf("%s: %.0f B/event", name, ref.PerEvent())
	}
	fmt.Fprintf(w, "| m | Redis bytes per queued event, unkeyed (no Idempotency-Key), delivery stopped as in (b): %d events through the relay | %s | | | | |\n",
		n, cell(b.memQueued, false))
	fmt.Fprintf(w, "| m | Redis bytes per queued event, keyed (unique Idempotency-Key per request), delivery stopped | %s | %s | %s | | |\n",
		cell(b.memQueuedKeyed, false), refCell("unkeyed", b.memQueued), ratio(b.memQueuedKeyed, b.memQueued))
	fmt.Fprintf(w, "| m | Redis bytes left per event after delivery, unkeyed: %d events ingested and delivered to the fast fakes as in (c), streams and pending lists empty | %s | %s | %s | | |\n",
		n, cell(b.memLeft, true), refCell("queued, unkeyed", b.memQueued), ratio(b.memLeft, b.memQueued))
	fmt.Fprintf(w, "| m | Redis bytes left per event after delivery, keyed | %s | %s | %s | | |\n",
		cell(b.memLeftKeyed, true), refCell("queued, keyed", b.memQueuedKeyed), ratio(b.memLeftKeyed, b.memQueuedKeyed))
}

// wrkRows are (w): the no-op server and the relay's ingest driven by wrk.
func (b *bench) wrkRows(w *strings.Builder) {
	s := b.s
	n, r := b.wrkNoop, b.wrkRelay
	gen := fmt.Sprintf("wrk -t%d -c%d --latency, same mix (wrk.lua), %s; closed loop: p99 is at saturation and omits the waits of requests not sent while the server was slow (coordinated omission)",
		s.WrkThreads, s.Conns, s.Dur)
	if n.Requests == 0 || r.Requests == 0 {
		reason := cmp.Or(n.Skipped, r.Skipped, "phase w not selected")
		fmt.Fprintf(w, "| w | no-op ceiling and relay ingest, %s | not run (%s) | | | (≥ 0.7×) | |\n", gen, reason)
		return
	}
	fmt.Fprintf(w, "| w | no-op ceiling, %s | %.0f req/s, p50 %s, p99 %s, %d errors | | | | |\n",
		gen, n.RPS(), ms(n.P50), ms(n.P99), n.Errors)
	ratio := r.RPS() / n.RPS()
	fmt.Fprintf(w, "| w | relay ingest (as b: empty queue, delivery stopped), wrk as above | %.0f req/s, p50 %s, p99 %s, %d errors/non-2xx | no-op (wrk) %.0f req/s | %.2f× | (≥ 0.7×, as b) | %s |\n",
		r.RPS(), ms(r.P50), ms(r.P99), r.Errors, n.RPS(), ratio, mark(ratio >= 0.7 && r.Errors == 0))
	fmt.Fprintf(w, "| w cpu | no-op server CPU per request under wrk | %.1f µs/req (wrk %.1f µs/req) | | | | |\n",
		n.PerRequest("noop"), n.PerRequest("wrk"))
	fmt.Fprintf(w, "| w cpu | relay / Redis / wrk CPU per ingested event under wrk | relay %.1f µs, Redis %.1f µs, wrk %.1f µs | no-op server (wrk): %.1f µs/req | relay %.2f× | | |\n",
		r.PerRequest("relay"), r.PerRequest("redis"), r.PerRequest("wrk"), n.PerRequest("noop"), r.PerRequest("relay")/n.PerRequest("noop"))
}
