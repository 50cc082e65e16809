package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/providers"
	"github.com/eventrelay/relay/relay/admin"
	"github.com/eventrelay/relay/relay/forward"
	"github.com/eventrelay/relay/relay/ingest"
	"github.com/eventrelay/relay/relay/queue"
)

// The admin server reads breaker states from the forwarders and pings the queue.
var (
	_ admin.BreakerStater = (*forward.Forwarder)(nil)
	_ admin.Pinger        = (*queue.Conn)(nil)
)

// shutdownGrace bounds how long in-flight ingest requests may take to finish on SIGTERM.
const shutdownGrace = 10 * time.Second

func checkConfigCmd(args []string, stdout io.Writer) error {
	path, err := configFlag("check-config", args, stdout)
	if err != nil {
		return err
	}
	if _, err := config.Load(path, os.LookupEnv, providers.Specs()); err != nil {
		return fmt.Errorf("%s:\n%w", path, err)
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
	return nil
}

func newLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.Sampling = &zap.SamplingConfig{Initial: 100, Thereafter: 100} // per second, per message
	return zc.Build()
}

// redisWithDeliveryConns sizes the connection pool for ingest and delivery together: each
// provider's fetcher holds a connection for up to its read's Block while the stream is
// idle, and its recorder, mover and reclaimer need one each. Without these, idle readers
// would take the connections ingest's group commit needs (measured: delivery fell 7× and
// ingest waited once blocked readers outnumbered the pool).
func redisWithDeliveryConns(cfg *config.Config) config.Redis {
	r := cfg.Redis
	r.PoolSize += 4 * len(cfg.Providers.Enabled()) * max(r.Shards, 1)
	return r
}

// startCPUProfile writes a CPU profile of the whole run to $RELAY_CPU_PROFILE when it is
// set (for profiling under the load harness; see bench/README.md). The returned func stops it.
func startCPUProfile(log *zap.Logger) func() {
	path := os.Getenv("RELAY_CPU_PROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		if err = pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
		}
	}
	if err != nil {
		log.Error("RELAY_CPU_PROFILE: cannot profile", zap.Error(err))
		return func() {}
	}
	log.Info("writing a CPU profile", zap.String("path", path))
	return func() { pprof.StopCPUProfile(); _ = f.Close() }
}

// newForwarders builds one Forwarder per enabled provider and shard (see shardWorkers),
// and returns each provider's as one admin breaker (the worst of its shards').
func newForwarders(cfg *config.Config, conn *queue.Conn, reg prometheus.Registerer, tail *admin.Tail, log *zap.Logger) ([]*forward.Forwarder, map[string]admin.BreakerStater, error) {
	adapters, err := providers.NewAdapters(cfg.Providers, log.Named("providers"))
	if err != nil {
		return nil, nil, err
	}
	metrics, err := forward.NewMetrics(reg)
	if err != nil {
		return nil, nil, err
	}
	consumer, err := consumerName()
	if err != nil {
		return nil, nil, err
	}
	var out []*forward.Forwarder
	breakers := map[string]admin.BreakerStater{}
	keys := redisKeys(cfg)
	for _, p := range cfg.Providers.Enabled() {
		var shards shardBreakers
		for _, k := range keys.EachShard() {
			d := *p.Delivery
			d.Workers = shardWorkers(d.Workers, k.Shard, keys.NumShards())
			f, err := forward.New(forward.Options{
				Adapter: adapters[p.Name], Delivery: d, Client: conn.Client,
				Keys: k, Consumer: consumer,
				Log: shardLog(log.Named("forwarder"), k), Metrics: metrics, // New adds the provider field
				Visibility: p.Delivery.VisibilityTimeout, ConsumerExpiry: cfg.Redis.ConsumerExpiry,
				TraceKeep: traceKeep(cfg.Trace), Observer: tail,
			})
			if err != nil {
				return nil, nil, err
			}
			out = append(out, f)
			shards = append(shards, f)
		}
		breakers[p.Name] = shards
	}
	return out, breakers, nil
}

// traceKeep is forward.Options.TraceKeep: 0 when the trace is off.
func traceKeep(t config.Trace) int {
	if !t.On() {
		return 0
	}
	return t.Keep
}

// consumerName is unique per process: host, pid and a random suffix, so a restarted
// relay never inherits a dead one's pending entries except through the reclaimer.
func consumerName() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		host = "relay"
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s-%d-%x", host, os.Getpid(), b), nil
}

// serveCmd builds every part explicitly and runs them as one group. Shutdown order:
// ingest stops accepting first (and /readyz fails), then the queue writers drain, then
// the Redis connection closes.
func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	path, err := configFlag("serve", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path, os.LookupEnv, providers.Specs())
	if err != nil {
		return fmt.Errorf("%s:\n%w", path, err)
	}
	log, err := newLogger(cfg.Log.Level)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	log.Info("starting", zap.String("version", versionString()), zap.String("config", path))
	defer startCPUProfile(log)()

	conn, err := queue.Open(ctx, redisWithDeliveryConns(cfg), log.Named("queue"))
	if err != nil {
		return err
	}
	defer conn.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	ops := providers.Ops(cfg.Providers)
	provs := make([]string, 0, len(ops))
	for _, op := range ops {
		if len(provs) == 0 || provs[len(provs)-1] != op.Provider {
			provs = append(provs, op.Provider)
		}
	}
	keys := redisKeys(cfg)
	if err := checkShards(ctx, conn, keys, cfg); err != nil {
		return err
	}
	enq := queue.NewEnqueuer(conn.Client, keys, queue.EnqueuerOptions{
		Writers: cfg.Redis.Writers, MaxBatch: cfg.Redis.MaxBatch, Timeout: cfg.Redis.EnqueueTimeout,
		Providers: provs, HighWaterMark: cfg.Redis.HighWaterMark, MinReplicas: cfg.Redis.MinReplicasAcked,
	}, log.Named("queue"))
	tail := admin.NewTail(cfg.Trace.TailBuffer)
	front, err := ingest.New(ingest.Options{Config: cfg, Ops: ops, Queue: tail.Ingested(enq), Log: log.Named("ingest"), Metrics: reg})
	if err != nil {
		return err
	}
	forwarders, breakers, err := newForwarders(cfg, conn, reg, tail, log)
	if err != nil {
		return err
	}
	enabled := make([]string, 0, len(breakers))
	retain := map[string]config.DeadLetters{}
	for _, p := range cfg.Providers.Enabled() {
		enabled = append(enabled, p.Name)
		retain[p.Name] = p.Delivery.DeadLetters
	}
	retention, err := forward.NewRetention(forward.RetentionOptions{Client: conn.Client, Keys: keys,
		Providers: retain, Log: log.Named("retention"), Registerer: reg})
	if err != nil {
		return err
	}
	if err := reg.Register(admin.NewCollector(admin.CollectorOptions{Client: conn.Client, Keys: keys,
		Providers: enabled, Log: log.Named("admin")})); err != nil {
		return err
	}
	adm := admin.New(admin.Options{Gatherer: reg, Queue: conn, Log: log.Named("admin"), Audit: log.Named("audit"),
		Client: conn.Client, Keys: keys, Providers: enabled, Breakers: breakers, Token: cfg.Admin.Token, Tail: tail})

	ingestLn, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("server.listen: %w", err)
	}
	adminLn, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		ingestLn.Close()
		return fmt.Errorf("admin.listen: %w", err)
	}
	log.Info("listening", zap.String("ingest", ingestLn.Addr().String()), zap.String("admin", adminLn.Addr().String()))

	g, gctx := errgroup.WithContext(ctx)
	// The queue and admin outlive ingest: they stop only once ingest has drained.
	later, stopLater := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLater()
	g.Go(func() error {
		<-gctx.Done()
		adm.Drain()
		return nil
	})
	g.Go(func() error {
		defer stopLater()
		return front.Run(gctx, ingestLn, shutdownGrace)
	})
	g.Go(func() error { return enq.Run(later) })
	for _, f := range forwarders {
		g.Go(func() error { return f.Run(later) })
	}
	g.Go(func() error { return retention.Run(later) })
	g.Go(func() error { return adm.Run(later, adminLn) })
	err = g.Wait()
	log.Info("stopped", zap.Error(err))
	return err
}
