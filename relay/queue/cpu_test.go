package queue

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// cpuMeter measures the CPU time this process and a Redis server spend over a benchmark,
// so a run on a shared machine reports cost per operation rather than only wall time,
// which other load distorts.
type cpuMeter struct {
	client      redis.UniversalClient
	self, redis time.Duration
}

// startCPU takes the first readings.
func startCPU(tb testing.TB, client redis.UniversalClient) *cpuMeter {
	m := &cpuMeter{client: client}
	m.self, m.redis = selfCPU(), redisCPU(tb, client)
	return m
}

// report adds relay-us/op and redis-us/op to the benchmark's results.
func (m *cpuMeter) report(b *testing.B) {
	self, rds := selfCPU()-m.self, redisCPU(b, m.client)-m.redis
	n := float64(max(b.N, 1))
	b.ReportMetric(float64(self.Microseconds())/n, "relay-us/op")
	b.ReportMetric(float64(rds.Microseconds())/n, "redis-us/op")
}

// selfCPU is the user+system CPU time of this process so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is the server's used_cpu_user + used_cpu_sys (INFO cpu) so far.
func redisCPU(tb testing.TB, client redis.UniversalClient) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := client.Info(ctx, "cpu").Result()
	if err != nil {
		tb.Fatalf("INFO cpu: %v", err)
	}
	var total float64
	for _, name := range []string{"used_cpu_user", "used_cpu_sys"} {
		v, _ := infoField(info, name)
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			tb.Fatalf("INFO cpu %s = %q", name, v)
		}
		total += f
	}
	return time.Duration(total * float64(time.Second))
}
