package ingest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/internal/redistest"
	"github.com/eventrelay/relay/providers"
	"github.com/eventrelay/relay/relay/queue"
)

// TestHostileAddressFloodThroughTrustedProxy sprays 20,000 distinct client addresses
// through a trusted proxy (X-Forwarded-For from 127.0.0.1, over a real listener, into a
// real redis-server): every first request from an address is accepted, the limiter never
// tracks more than server.max_tracked_ips buckets, and the addresses seen last are still
// limited. It is internal only to read s.limiter.tracked().
func TestHostileAddressFloodThroughTrustedProxy(t *testing.T) {
	const (
		maxTracked = 1000
		flood      = 20_000
		workers    = 8
		siteKey    = "pk_flood_0001"
	)
	rs := redistest.Start(t, redistest.Options{})
	cfg, err := config.Parse(fmt.Appendf(nil, `
server:
  listen: "127.0.0.1:0"
  trusted_proxies: ["127.0.0.1"]
  max_tracked_ips: %d
admin: {listen: "127.0.0.1:0", token: "admin-token-0123456789"}
redis: {url: %q, prefix: "t", enqueue_timeout: 1s}
sites:
  - name: flood
    key: %s
    origins: ["https://shop.example.com"]
    rate_limit: {per_ip: 0.001, burst: 1}
providers:
  bannerflex: {}
`, maxTracked, rs.URL(), siteKey), nil, providers.Specs())
	if err != nil {
		t.Fatal(err)
	}
	log := zap.NewNop()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := queue.Open(ctx, cfg.Redis, log)
	if err != nil {
		t.Fatal(err)
	}
	enq := queue.NewEnqueuer(conn.Client, queue.Keys{Prefix: "t"}, queue.EnqueuerOptions{
		Writers: 4, MaxBatch: 256, Timeout: time.Second, HighWaterMark: -1}, log)
	s, err := New(Options{Config: cfg, Ops: providers.Ops(cfg.Providers), Queue: enq, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 2)
	go func() { _ = enq.Run(ctx); done <- struct{}{} }()
	go func() { _ = s.Run(ctx, ln, time.Second); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
		conn.Close()
	})

	client := &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: workers, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	body := []byte(`{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","event":"impression"}`)
	// addr is the i-th flooding address, in 198.18.0.0/15 (never a trusted proxy).
	addr := func(i int) string {
		return netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)}).String()
	}
	send := func(xff string) (int, error) {
		req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(res)
		req.SetRequestURI("http://" + ln.Addr().String() + "/v1/bannerflex/banner-events")
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		req.Header.Set("X-Relay-Key", siteKey)
		// The client's own claim on the left, what the proxy saw on the right.
		req.Header.Set("X-Forwarded-For", "6.6.6.6, "+xff)
		req.SetBody(body)
		err := client.Do(req, res)
		return res.StatusCode(), err
	}

	// The bound holds throughout the flood, not only at the end.
	var most atomic.Int64
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			most.Store(max(most.Load(), int64(s.limiter.tracked())))
			select {
			case <-stopWatch:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	statuses := make([]map[int]int, workers)
	errs := make(chan error, workers)
	for w := range workers {
		statuses[w] = map[int]int{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < flood; i = int(next.Add(1)) - 1 {
				code, err := send(addr(i))
				if err != nil {
					errs <- fmt.Errorf("request %d: %w", i, err)
					return
				}
				statuses[w][code]++
			}
		}()
	}
	wg.Wait()
	close(stopWatch)
	<-watched
	took := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := map[int]int{}
	for _, m := range statuses {
		for code, n := range m {
			total[code] += n
		}
	}
	if total[fasthttp.StatusAccepted] != flood {
		t.Errorf("statuses %v: want all %d first requests from distinct addresses accepted", total, flood)
	}
	if n := s.limiter.tracked(); n > maxTracked || most.Load() > maxTracked {
		t.Errorf("limiter tracked %d buckets at the end, %d at most, cap %d", n, most.Load(), maxTracked)
	}
	// The latest addresses are still tracked: a second request within the window is limited.
	for i := flood - 50; i < flood; i++ {
		if code, err := send(addr(i)); err != nil || code != fasthttp.StatusTooManyRequests {
			t.Fatalf("repeat from %s: %d %v, want 429", addr(i), code, err)
		}
	}
	// Every 202 is an entry in Redis.
	if n, err := conn.Client.XLen(context.Background(), "t:{bannerflex}:events").Result(); err != nil || n != flood {
		t.Errorf("%d entries queued (%v), want %d", n, err, flood)
	}
	t.Logf("%d requests in %v; at most %d buckets tracked (cap %d)", flood, took, most.Load(), maxTracked)
}
