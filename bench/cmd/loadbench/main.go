// Command loadbench measures the relay against its ceilings in one run and prints a
// results table (see bench/README.md):
//
//	go run ./bench/cmd/loadbench run [-quick] [-out bench/results.md]
//
// It builds the relay, starts its own redis-server (AOF everysec, temp dir, free loopback
// port), fast fake upstreams, a no-op fasthttp server and nginx as child processes,
// drives them with a fasthttp load generator (N connections, a fixed body mix; closed
// loop, one request in flight each, or paced at a fixed rate with latency measured from
// each request's scheduled send time) and with wrk (the same mix, wrk.lua), reads Redis's
// memory per event, and stops every process it started by its PID.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadbench: "+format+"\n", args...)
	cleanupAll()
	os.Exit(1)
}

// started is every process the harness started, stopped by PID on exit.
var started []*proc

func track(p *proc) *proc { started = append(started, p); return p }

func cleanupAll() {
	for i := len(started) - 1; i >= 0; i-- {
		started[i].stop(5 * time.Second)
	}
	started = nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadbench run [flags] | noop [-listen A] | fake [-listen A] [-delay D]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "noop", "fake":
		serveMain(os.Args[1], os.Args[2:])
	case "run":
		runMain(os.Args[2:])
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

// settings are the knobs of one run; QUICK shrinks them to stay under ~2.5 minutes.
type settings struct {
	Quick        bool
	Conns        int
	Warmup, Dur  time.Duration
	Backlog      int // delivery: events drained in (c)
	BigBacklog   int // (e): events already queued
	DrainCap     time.Duration
	Workers      int // delivery workers per provider in (c) and (e)
	SlowWorkers  int // delivery workers per provider in (f), before the 50 ms upstream
	UpstreamWait time.Duration
	MemEvents    int // (m): events ingested per Redis memory measurement
	WrkThreads   int // (w): wrk threads
	Out          string
	RelayBin     string
	KeepDir      bool
	Phases       string
}

func runMain(args []string) {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var s settings
	fs.BoolVar(&s.Quick, "quick", os.Getenv("QUICK") == "1", "short run (≤ ~2.5 min): smaller backlogs, shorter windows (env QUICK=1)")
	fs.IntVar(&s.Conns, "conns", 64, "client connections")
	fs.DurationVar(&s.Dur, "dur", 0, "measured window per load test (default 10s, quick 4s)")
	fs.IntVar(&s.Backlog, "backlog", 0, "events drained by the delivery test (default 200000, quick 30000)")
	fs.IntVar(&s.BigBacklog, "big-backlog", 0, "events already queued for the scaling test (default 1000000, quick 150000)")
	fs.IntVar(&s.Workers, "workers", 128, "delivery workers per provider in the delivery tests (c, e)")
	fs.IntVar(&s.SlowWorkers, "slow-workers", 64, "delivery workers per provider in the nginx comparison (f)")
	fs.DurationVar(&s.UpstreamWait, "upstream-delay", 50*time.Millisecond, "the slow upstream's answer time in the nginx comparison")
	fs.IntVar(&s.MemEvents, "mem-events", 0, "events ingested per Redis memory measurement (m) (default 100000, quick 20000)")
	fs.IntVar(&s.WrkThreads, "wrk-threads", 1, "wrk threads in the wrk rows (w); connections are -conns")
	fs.StringVar(&s.Out, "out", "bench/results.md", "write the results table here too")
	fs.StringVar(&s.RelayBin, "relay", "", "relay binary to use (default: go build ./cmd/relay)")
	fs.StringVar(&s.Phases, "phases", "", "run only these phases (letters of a,b,c,e,f,k,m,t,w; default all but k): b includes the paced b' (which needs a), f the paced f', "+
		"m the Redis memory rows, t ingest and delivery with the delivery trace off and on, w the wrk rows, "+
		"k one Redis node vs a local Redis Cluster (only when named; alone, -out gets only its tables)")
	fs.BoolVar(&s.KeepDir, "keep", false, "keep the temp dir (logs, configs)")
	_ = fs.Parse(args)
	def := func(v *time.Duration, full, quick time.Duration) {
		if *v == 0 {
			*v = full
			if s.Quick {
				*v = quick
			}
		}
	}
	defi := func(v *int, full, quick int) {
		if *v == 0 {
			*v = full
			if s.Quick {
				*v = quick
			}
		}
	}
	def(&s.Dur, 10*time.Second, 4*time.Second)
	def(&s.Warmup, 2*time.Second, 1*time.Second)
	def(&s.DrainCap, 45*time.Second, 12*time.Second)
	defi(&s.Backlog, 200000, 30000)
	defi(&s.BigBacklog, 1000000, 150000)
	defi(&s.MemEvents, 100000, 20000)

	dir, err := os.MkdirTemp("", "loadbench-")
	if err != nil {
		fatalf("%v", err)
	}
	if !s.KeepDir {
		defer os.RemoveAll(dir)
	} else {
		fmt.Println("temp dir:", dir)
	}
	defer cleanupAll()
	began := time.Now()
	b := &bench{s: s, dir: dir}
	b.run()
	cleanupAll()
	table := b.table(time.Since(began))
	if s.Phases == "k" {
		// Phase k alone: its own document (bench/results-cluster.md), not the main table.
		table = b.clusterTable(time.Since(began))
	} else if b.selected("k") {
		table += "\n" + b.clusterTable(time.Since(began))
	}
	fmt.Println()
	fmt.Println(table)
	if s.Out != "" {
		if err := os.WriteFile(s.Out, []byte(table), 0o644); err != nil {
			fatalf("write %s: %v", s.Out, err)
		}
		fmt.Println("written to", s.Out)
	}
}

func logf(format string, args ...any) {
	fmt.Printf("%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func (b *bench) buildRelay() string {
	if b.s.RelayBin != "" {
		return b.s.RelayBin
	}
	bin := filepath.Join(b.dir, "relay")
	logf("building the relay (go build ./cmd/relay)")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/relay")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if err := cmd.Run(); err != nil {
		fatalf("go build ./cmd/relay (run from the repository root): %v", err)
	}
	return bin
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		l := strings.SplitN(string(b), "\n", 2)[0]
		var kb int
		fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "MemTotal:")), "%d", &kb)
		mem = fmt.Sprintf("%.1f GiB RAM", float64(kb)/(1<<20))
	}
	return fmt.Sprintf("%d CPUs (nproc), %s, %s, %s/%s, %s", runtime.NumCPU(), model, mem, runtime.GOOS, runtime.GOARCH, runtime.Version())
}
