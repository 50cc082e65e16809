package ingest_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/internal/redistest"
	"github.com/eventrelay/relay/providers"
	"github.com/eventrelay/relay/relay/ingest"
	"github.com/eventrelay/relay/relay/queue"
)

// BenchmarkIngestHandler measures one request through the whole handler, durable enqueue
// to a real redis-server included (group-committed across the parallel goroutines). Run:
// go test -run '^$' -bench IngestHandler -benchmem ./relay/ingest/
func BenchmarkIngestHandler(b *testing.B) {
	for _, bc := range []struct{ name, path, body string }{
		{"ens_click_site", "/v1/ens/click", ensBody},
		{"cardlytics_backend", "/v1/cardlytics/client-events", cdlxBody},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rs := redistest.Start(b, redistest.Options{})
			cfg, err := config.Parse([]byte(testConfig(rs.URL())), nil, providers.Specs())
			if err != nil {
				b.Fatal(err)
			}
			// No rate limiting in the way of the measurement.
			for i := range cfg.Sites {
				cfg.Sites[i].RateLimit.PerIP, cfg.Sites[i].RateLimit.Burst = 1e9, 1e9
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			conn, err := queue.Open(ctx, cfg.Redis, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			enq := queue.NewEnqueuer(conn.Client, queue.Keys{Prefix: "t"}, queue.EnqueuerOptions{
				Writers: 4, MaxBatch: 256, Timeout: time.Second, HighWaterMark: -1,
				Providers: []string{"ens", "cardlytics"}}, zap.NewNop()) // as in production: keys precomputed
			go func() { _ = enq.Run(ctx) }()
			srv, err := ingest.New(ingest.Options{Config: cfg, Ops: providers.Ops(cfg.Providers), Queue: enq, Log: zap.NewNop()})
			if err != nil {
				b.Fatal(err)
			}
			h := srv.Handler()
			addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.body)))
			b.SetParallelism(16)
			cpu := redistest.StartCPU(b, conn.Client)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var rc fasthttp.RequestCtx
				for pb.Next() {
					rc.Request.Reset()
					rc.Response.Reset()
					rc.Init(&rc.Request, addr, nil)
					rc.Request.Header.SetMethod("POST")
					rc.Request.SetRequestURI(bc.path)
					rc.Request.Header.SetContentType("application/json")
					if bc.path == "/v1/ens/click" {
						rc.Request.Header.Set("X-Relay-Key", shopKey)
						rc.Request.Header.Set("Origin", shopOrig)
					} else {
						rc.Request.Header.Set("Authorization", "Bearer "+backend)
						rc.Request.Header.Set("X-Relay-Customer-Id", "cust-42")
					}
					rc.Request.SetBodyString(bc.body)
					h(&rc)
					if rc.Response.StatusCode() != fasthttp.StatusAccepted {
						b.Fatalf("status %d: %s", rc.Response.StatusCode(), rc.Response.Body())
					}
				}
			})
			b.StopTimer()
			// CPU per request on each side: a shared machine distorts ns/op, less so these.
			cpu.Report(b)
		})
	}
}
