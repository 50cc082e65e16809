package queue

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/internal/redistest"
)

const testPrefix = "t"

func testConfig(url string) config.Redis {
	return config.Redis{
		URL: url, Prefix: testPrefix, EnqueueTimeout: time.Second, HighWaterMark: -1,
		Writers: 4, MaxBatch: 64, PoolSize: 16,
	}
}

// observed returns a logger that writes to the test log and records entries.
func observed(t testing.TB) (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.InfoLevel)
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	return zap.New(zapcore.NewTee(log.Core(), core)), logs
}

// openRedis starts a redis-server and opens a Conn to it.
func openRedis(t testing.TB, opts redistest.Options) (*redistest.Server, *Conn) {
	t.Helper()
	srv := redistest.Start(t, opts)
	conn, err := Open(t.Context(), testConfig(srv.URL()), zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return srv, conn
}

func defaultEnqOpts() EnqueuerOptions {
	return EnqueuerOptions{Writers: 4, MaxBatch: 64, Timeout: time.Second, HighWaterMark: -1}
}

// runEnqueuer builds an Enqueuer and runs it until the test ends; the cleanup waits for
// Run to return so nothing logs after the test.
func runEnqueuer(t testing.TB, client redis.UniversalClient, opts EnqueuerOptions) *Enqueuer {
	t.Helper()
	e := NewEnqueuer(client, Keys{Prefix: testPrefix}, opts, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return e
}

func testMessage(provider string, i int) *delivery.Message {
	return &delivery.Message{
		ID:         fmt.Sprintf("ev-%s-%d", provider, i),
		Provider:   provider,
		Route:      provider + "/click",
		Body:       fmt.Appendf(nil, `{"n":%d}`, i),
		ReceivedAt: time.UnixMilli(1700000000000 + int64(i)),
		ClientIP:   "203.0.113.7",
		UserAgent:  "test-agent/1.0",
		Country:    "DE",
		CustomerID: "cust-1",
		Source:     "site:shop",
	}
}

// entries returns the decoded entries of provider's stream.
func entries(t testing.TB, client redis.UniversalClient, provider string) []delivery.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	xs, err := client.XRange(ctx, Keys{Prefix: testPrefix}.Events(provider), "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE: %v", err)
	}
	out := make([]delivery.Message, 0, len(xs))
	for _, x := range xs {
		e := DecodeEntry(provider, x.ID, x.Values)
		if e.Bad != nil {
			t.Fatalf("entry %s: %v", x.ID, e.Bad)
		}
		out = append(out, e.Message)
	}
	return out
}

// countIDs counts entries per event id.
func countIDs(ms []delivery.Message) map[string]int {
	n := make(map[string]int, len(ms))
	for _, m := range ms {
		n[m.ID]++
	}
	return n
}

func zapTest(t testing.TB) *zap.Logger { return zaptest.NewLogger(t) }

func redisZ(due float64) redis.Z { return redis.Z{Score: due, Member: fmt.Sprint("r", due)} }

func itoa(i int) string { return strconv.Itoa(i) }
