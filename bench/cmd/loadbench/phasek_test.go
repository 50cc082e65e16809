package main

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestCPUGroup checks the process groups of phase k's rows: "redis" names the single
// node only, never a cluster replica, and "*" patterns match by prefix.
func TestCPUGroup(t *testing.T) {
	c := cpuUse{"relay1": 0.3, "relay2": 0.2, "redis": 0.1, "redis-m0": 0.05, "redis-m1": 0.15, "redis-r3": 0.04, "loadgen": 0.3}
	for _, tc := range []struct {
		patterns []string
		sum, max float64
		n        int
	}{
		{[]string{"relay*"}, 0.5, 0.3, 2},
		{[]string{"redis-m*", "redis"}, 0.3, 0.15, 3},
		{[]string{"redis-r*"}, 0.04, 0.04, 1},
		{[]string{"loadgen"}, 0.3, 0.3, 1},
		{[]string{"*"}, 1.14, 0.3, 7},
		{[]string{"fake"}, 0, 0, 0},
	} {
		sum, one, n := cpuGroup(c, tc.patterns...)
		if n != tc.n || abs(sum-tc.sum) > 1e-9 || abs(one-tc.max) > 1e-9 {
			t.Errorf("cpuGroup(%q) = %.2f, %.2f, %d; want %.2f, %.2f, %d", tc.patterns, sum, one, n, tc.sum, tc.max, tc.n)
		}
	}
	if got := perEventCell(c, 10000, "relay*"); got != "50.0 (busiest 30.0)" {
		t.Errorf("perEventCell(relay*) = %q", got)
	}
	if got := perEventCell(c, 10000, "redis-r*"); got != "4.0" {
		t.Errorf("perEventCell(redis-r*) = %q", got)
	}
}

func abs(x float64) float64 { return max(x, -x) }

// TestGenerateSpread drives two real fasthttp servers on loopback and checks that both
// get requests (connections split over the addresses) and that the window's result
// counts their replies.
func TestGenerateSpread(t *testing.T) {
	var counts [2]atomic.Int64
	var addrs []string
	for i := range counts {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
			counts[i].Add(1)
			ctx.SetStatusCode(fasthttp.StatusAccepted)
		}}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Shutdown() })
		addrs = append(addrs, ln.Addr().String())
	}
	r := generateSpread(addrs, 4, ingestMix, toIngest, 50*time.Millisecond, 300*time.Millisecond)
	if r.Requests == 0 || r.Errors != 0 {
		t.Fatalf("result %s: want requests and no error", r)
	}
	for i := range counts {
		if counts[i].Load() == 0 {
			t.Errorf("server %d got no request; the generator did not spread its connections", i)
		}
	}
	if total := counts[0].Load() + counts[1].Load(); total < int64(r.Requests) {
		t.Errorf("servers answered %d requests, the window counted %d", total, r.Requests)
	}
}
