package main

import (
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
	fmt.Fprintf(&w, "Closed-loop fasthttp generator, %d connections, %s warm-up + %s measured per load test. "+
		"Mix: %s. Redis: redis-server, AOF everysec, noeviction. Every figure below comes from this one run; "+
		"compare ratios, not absolute numbers (2 shared cores: generator, relay, Redis and fakes share them).\n\n",
		s.Conns, s.Warmup, s.Dur, mixDescription(ingestMix))

	fmt.Fprintln(&w, "| # | measure | figure | reference (same run) | ratio | target | status |")
	fmt.Fprintln(&w, "|---|---|---|---|---|---|---|")
	ri := b.ingest.RPS() / b.noop.RPS()
	fmt.Fprintf(&w, "| a | no-op fasthttp ceiling (202, no work) | %.0f req/s, p50 %s, p99 %s | | | | |\n",
		b.noop.RPS(), ms(b.noop.P50), ms(b.noop.P99))
	fmt.Fprintf(&w, "| b | relay ingest (validate + durable enqueue), empty queue | %.0f req/s, p50 %s, p99 %s, %d non-2xx | no-op %.0f req/s | %.2f× | ≥ 0.7× and p99 ≤ 5 ms | %s |\n",
		b.ingest.RPS(), ms(b.ingest.P50), ms(b.ingest.P99), b.ingest.Errors, b.noop.RPS(), ri,
		mark(ri >= 0.7 && b.ingest.P99 <= 5*time.Millisecond && b.ingest.Errors == 0))
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
	fmt.Fprintf(&w, "| f | … client p99 | relay %s | nginx %s | %.1f× lower | ≥ 10× lower | %s |\n",
		ms(b.relayVsNginx.P99), ms(b.nginx.P99), rp, mark(rp >= 10))

	fmt.Fprintln(&w, "\nCPU use during each window (cores, of 2; from /proc/<pid>/stat):")
	fmt.Fprintf(&w, "- (a) %s\n- (b) %s\n- (e ingest) %s\n- (c ceiling) %s\n- (c delivery) %s\n- (e delivery) %s\n",
		b.noopCPU, b.ingestCPU, b.ingestBigCPU, b.upCeilCPU, b.deliver.Cores, b.deliverBig.Cores)
	fmt.Fprintln(&w, "\nRaw generator results:")
	for _, x := range []struct {
		n string
		r genResult
	}{{"a no-op", b.noop}, {"b ingest", b.ingest}, {"e ingest, big backlog", b.ingestBig},
		{"c fakes' ceiling", b.upCeil}, {"f nginx", b.nginx}, {"f relay", b.relayVsNginx}} {
		fmt.Fprintf(&w, "- %s: %s\n", x.n, x.r)
	}
	fmt.Fprintf(&w, "- c delivery: %d events in %s (complete: %v); e delivery: %d events in %s (complete: %v)\n",
		b.deliver.Delivered, b.deliver.Elapsed.Round(time.Millisecond), b.deliver.Complete,
		b.deliverBig.Delivered, b.deliverBig.Elapsed.Round(time.Millisecond), b.deliverBig.Complete)
	return w.String()
}
