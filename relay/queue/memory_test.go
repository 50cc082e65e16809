package queue

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/internal/redistest"
)

// typicalBody is a ~150-byte validated event body.
const typicalBody = `{"campaignId":12345,"placement":"header_banner","page":"https://shop.example.com/products/blue-shoes","session":"s_8f3a9c2e1b","ts":1718000000000}`

// typicalEvents are what a queued event usually looks like: from a backend client, and
// from a browser (its User-Agent alone is ~130 bytes).
var typicalEvents = []struct {
	name string
	msg  func() *delivery.Message
}{
	{"backend", func() *delivery.Message {
		return &delivery.Message{ID: uuid.NewString(), Provider: "ens", Route: "ens/click", Body: []byte(typicalBody),
			ReceivedAt: time.Now(), ClientIP: "203.0.113.7", UserAgent: "Go-http-client/1.1", Source: "client:backend"}
	}},
	{"browser", func() *delivery.Message {
		return &delivery.Message{ID: uuid.NewString(), Provider: "ens", Route: "ens/click", Body: []byte(typicalBody),
			ReceivedAt: time.Now(), ClientIP: "203.0.113.7", Country: "FR", Source: "site:shop",
			UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"}
	}},
}

// BenchmarkStoredBytes measures what one queued event costs Redis: stream-B/event is
// MEMORY USAGE of the events stream (SAMPLES 0: every node), total-B/event the growth of
// INFO used_memory, which adds the dedupe marker. "legacy" writes the nine-field format
// of earlier relays with its marker, as their enqueue script did; "compact" enqueues
// through an Enqueuer. Run with a fixed count, e.g. -benchtime 20000x.
func BenchmarkStoredBytes(b *testing.B) {
	for _, ev := range typicalEvents {
		b.Run("legacy/"+ev.name, func(b *testing.B) {
			storedBytes(b, func(ctx context.Context, c redis.UniversalClient, keys Keys, msgs []*delivery.Message) {
				pipe := c.Pipeline()
				for _, m := range msgs {
					values := []any{}
					for _, f := range entryFields {
						values = append(values, f, legacyValues(m)[f])
					}
					pipe.SetNX(ctx, keys.Seen(m.Provider, m.Source, m.ID), "1", 24*time.Hour)
					pipe.XAdd(ctx, &redis.XAddArgs{Stream: keys.Events(m.Provider), Values: values})
				}
				if _, err := pipe.Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}, ev.msg)
		})
		b.Run("compact/"+ev.name, func(b *testing.B) {
			storedBytes(b, func(ctx context.Context, c redis.UniversalClient, keys Keys, msgs []*delivery.Message) {
				e := NewEnqueuer(c, keys, EnqueuerOptions{Writers: 2, MaxBatch: 256, Timeout: 5 * time.Second,
					HighWaterMark: -1, Providers: []string{"ens"}}, zapTest(b))
				rctx, cancel := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { _ = e.Run(rctx); close(done) }()
				var wg sync.WaitGroup
				for g := range 32 {
					wg.Go(func() {
						for i := g; i < len(msgs); i += 32 {
							if _, err := e.Enqueue(ctx, msgs[i], ClientID); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				cancel()
				<-done
			}, ev.msg)
		})
	}
}

func storedBytes(b *testing.B, write func(context.Context, redis.UniversalClient, Keys, []*delivery.Message), msg func() *delivery.Message) {
	// No AOF: its buffer would blur used_memory; the stored bytes are the same.
	srv := redistest.Start(b, redistest.Options{AOF: "no"})
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	keys := Keys{Prefix: testPrefix}
	msgs := make([]*delivery.Message, b.N)
	for i := range msgs {
		msgs[i] = msg()
	}
	before := usedMemory(b, c)
	b.ResetTimer()
	for start := 0; start < len(msgs); start += 1000 {
		write(ctx, c, keys, msgs[start:min(start+1000, len(msgs))])
	}
	b.StopTimer()
	stream, err := c.MemoryUsage(ctx, keys.Events("ens"), 0).Result()
	if err != nil {
		b.Fatal(err)
	}
	if n := c.XLen(ctx, keys.Events("ens")).Val(); n != int64(b.N) {
		b.Fatalf("%d entries, want %d", n, b.N)
	}
	b.ReportMetric(float64(stream)/float64(b.N), "stream-B/event")
	b.ReportMetric(float64(usedMemory(b, c)-before)/float64(b.N), "total-B/event")
}

func usedMemory(b *testing.B, c redis.UniversalClient) int64 {
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Fatal("no used_memory in INFO")
	return 0
}
