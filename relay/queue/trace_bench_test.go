package queue

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/internal/redistest"
)

// BenchmarkRecorderPipeline is a recorder pipeline of 32 deliveries (one ack script
// call) with the trace off and on (records packed, one XADD once due as the recorder
// does, the trace full at 5000 records),
// alternating in chunks of 50 pipelines so that a shared machine's drift hits both sides
// alike. It reports Redis and benchmark-process CPU per pipeline for each side, measured
// around the pipelines only (filling and reading the stream excluded), and their ratios.
func BenchmarkRecorderPipeline(b *testing.B) {
	ctx := context.Background()
	rs := redistest.Start(b, redistest.Options{})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	b.Cleanup(func() { _ = rdb.Close() })
	keys := Keys{Prefix: "t"}
	if err := CreateGroup(ctx, rdb, keys, "p"); err != nil {
		b.Fatal(err)
	}
	const per, chunk = 32, 50
	tw := &TraceWriter{Keys: keys, Provider: "p", Keep: 5000}
	writeTraces(b, rdb, tw, per, ids(0, 200*per)) // fill to the bound first
	var cpu [2]struct{ self, redis time.Duration }
	var pipes [2]int
	seq := 0
	for done := 0; done < b.N; {
		for side := range 2 {
			n := min(chunk, b.N-done)
			if n <= 0 {
				break
			}
			// Fill and read n pipelines' entries (not measured).
			b.StopTimer()
			fill := rdb.Pipeline()
			for range n * per {
				m := testMessage("p", seq)
				seq++
				fill.XAdd(ctx, &redis.XAddArgs{Stream: keys.Events("p"), Values: []string{FieldEnvelope, EncodeEntry(m)}})
			}
			if _, err := fill.Exec(ctx); err != nil {
				b.Fatal(err)
			}
			es, err := ReadNew(ctx, rdb, keys, "p", "w", n*per, -1)
			if err != nil || len(es) != n*per {
				b.Fatal(len(es), err)
			}
			b.StartTimer()
			self, rds := selfCPUTime(), serverCPUTime(b, rdb)
			for k := range n {
				batch := es[k*per : (k+1)*per]
				sids := make([]string, per)
				for i, e := range batch {
					sids[i] = e.StreamID
				}
				pipe := rdb.Pipeline()
				ack := AckDelivered(ctx, pipe, keys, "p", "w", sids)
				var tr *redis.StringCmd
				if side == 1 { // as the recorder: pack, and XADD once due
					for _, e := range batch {
						m := &e.Message
						rec := TraceRecord{At: time.Now().UnixMilli(), Attempt: 1, Outcome: TraceDelivered, DurationMS: 12,
							Received: &TraceReceived{StreamID: e.StreamID, At: m.ReceivedAt.UnixMilli(), Route: m.Route, Source: m.Source}}
						tw.Add(m.ID, &rec)
					}
					if tw.Due(time.Now()) {
						tr = tw.Queue(ctx, pipe)
					}
				}
				_, _ = pipe.Exec(ctx)
				if tr != nil {
					tw.Reset()
				}
				if ack.Err() == nil && tr != nil && tr.Err() != nil {
					b.Fatal(tr.Err())
				}
				if err := ack.Err(); redis.HasErrorPrefix(err, "NOSCRIPT") {
					_ = LoadScripts(ctx, rdb)
				} else if err != nil {
					b.Fatal(err)
				}
			}
			cpu[side].self += selfCPUTime() - self
			cpu[side].redis += serverCPUTime(b, rdb) - rds
			pipes[side] += n
			done += n
		}
	}
	us := func(d time.Duration, n int) float64 { return float64(d.Microseconds()) / float64(max(n, 1)) }
	for side, name := range []string{"off", "on"} {
		b.ReportMetric(us(cpu[side].self, pipes[side]), fmt.Sprintf("relay-us/pipe-%s", name))
		b.ReportMetric(us(cpu[side].redis, pipes[side]), fmt.Sprintf("redis-us/pipe-%s", name))
	}
	if pipes[0] > 0 && pipes[1] > 0 {
		b.ReportMetric(us(cpu[1].self, pipes[1])/us(cpu[0].self, pipes[0]), "relay-on/off")
		b.ReportMetric(us(cpu[1].redis, pipes[1])/us(cpu[0].redis, pipes[0]), "redis-on/off")
	}
}

// selfCPUTime is this process's user+system CPU so far.
func selfCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverCPUTime is the server's used_cpu_user + used_cpu_sys so far.
func serverCPUTime(b *testing.B, c *redis.Client) time.Duration {
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for line := range strings.Lines(info) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}
