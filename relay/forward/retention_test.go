package forward

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/internal/redistest"
	"github.com/eventrelay/relay/relay/queue"
)

// TestDeadLetterRetention: letters past max_age go, then the oldest beyond max_count;
// every drop is counted by reason and logged; the newest letters stay. On a real Redis
// and on the embedded development queue (miniredis).
func TestDeadLetterRetention(t *testing.T) {
	real := redistest.Start(t, redistest.Options{AOF: "no"})
	mini := miniredis.RunT(t)
	for name, addr := range map[string]string{"redis": real.Addr(), "miniredis": mini.Addr()} {
		t.Run(name, func(t *testing.T) {
			client := redis.NewClient(&redis.Options{Addr: addr})
			t.Cleanup(func() { _ = client.Close() })
			ctx := context.Background()
			keys := queue.Keys{Prefix: "ret"}
			dead := keys.Dead("ens")
			old := time.Now().Add(-10 * 24 * time.Hour).UnixMilli()
			for i := range 4 { // dead for 10 days
				if err := client.XAdd(ctx, &redis.XAddArgs{Stream: dead, ID: fmt.Sprintf("%d-%d", old, i+1),
					Values: []any{"id", fmt.Sprintf("old-%d", i)}}).Err(); err != nil {
					t.Fatal(err)
				}
			}
			var recent []string
			for i := range 6 {
				id, err := client.XAdd(ctx, &redis.XAddArgs{Stream: dead, Values: []any{"id", fmt.Sprintf("new-%d", i)}}).Result()
				if err != nil {
					t.Fatal(err)
				}
				recent = append(recent, id)
			}
			core, logs := observer.New(zap.WarnLevel)
			reg := prometheus.NewRegistry()
			r, err := NewRetention(RetentionOptions{Client: client, Keys: keys, Log: zap.New(core), Registerer: reg,
				Providers: map[string]config.DeadLetters{"ens": {MaxAge: 7 * 24 * time.Hour, MaxCount: 3}}})
			if err != nil {
				t.Fatal(err)
			}
			r.Pass(ctx)
			left, err := client.XRange(ctx, dead, "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(left) != 3 || left[0].ID != recent[3] || left[2].ID != recent[5] {
				t.Fatalf("left %v, want the 3 newest of %v", left, recent)
			}
			if got := testutil.ToFloat64(r.dropped.WithLabelValues("ens", "max_age")); got != 4 {
				t.Errorf("dropped by age = %v, want 4", got)
			}
			if got := testutil.ToFloat64(r.dropped.WithLabelValues("ens", "max_count")); got != 3 {
				t.Errorf("dropped by count = %v, want 3", got)
			}
			if n := logs.FilterMessageSnippet("dead letters dropped").Len(); n != 1 {
				t.Errorf("%d log lines about dropped letters, want 1", n)
			}
			r.Pass(ctx) // nothing more to drop: no new count, no new log line
			if got := testutil.ToFloat64(r.dropped.WithLabelValues("ens", "max_count")); got != 3 || logs.Len() != 1 {
				t.Errorf("second pass: dropped by count %v, %d log lines; want 3 and 1", got, logs.Len())
			}
		})
	}
}
