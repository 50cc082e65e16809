package redistest

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// CPUMeter measures the CPU time this process and a Redis server spend over a
// benchmark, so a run on a shared machine reports cost per operation rather than only
// wall time, which other load distorts.
type CPUMeter struct {
	client      redis.UniversalClient
	self, redis time.Duration
}

// StartCPU takes the first readings of this process and of the server behind client.
func StartCPU(tb testing.TB, client redis.UniversalClient) *CPUMeter {
	m := &CPUMeter{client: client}
	m.self, m.redis = selfCPU(), serverCPU(tb, client)
	return m
}

// Report adds relay-us/op and redis-us/op (CPU since StartCPU over b.N) to b's results.
func (m *CPUMeter) Report(b *testing.B) {
	self, rds := selfCPU()-m.self, serverCPU(b, m.client)-m.redis
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

// serverCPU is the server's used_cpu_user + used_cpu_sys (INFO cpu) so far.
func serverCPU(tb testing.TB, client redis.UniversalClient) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := client.Info(ctx, "cpu").Result()
	if err != nil {
		tb.Fatalf("INFO cpu: %v", err)
	}
	var total float64
	for line := range strings.Lines(info) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatalf("INFO cpu %s = %q", k, v)
			}
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}
