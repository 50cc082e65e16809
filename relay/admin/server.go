package admin

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/relay/queue"
)

// Pinger reports whether the queue is reachable.
type Pinger interface {
	Ping(ctx context.Context) error
}

// defaultTimeout bounds the Redis work of one API call (one page of a replay).
const defaultTimeout = 10 * time.Second

// Options are what New needs.
type Options struct {
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	// Queue is pinged by /readyz.
	Queue Pinger
	Log   *zap.Logger
	// Audit gets one Info line per replay or purge. Default: Log.Named("audit").
	Audit *zap.Logger

	// Client reads and changes the providers' keys for the API. Without it the API
	// answers 503.
	Client redis.Cmdable
	// Keys names the providers' keys.
	Keys queue.Keys
	// Providers are the enabled providers, in configuration order.
	Providers []string
	// Breakers are this process's circuit breakers by provider; a missing or nil one
	// shows as "unknown".
	Breakers map[string]BreakerStater
	// Token is admin.token. Empty refuses every API call.
	Token string
	// Timeout bounds the Redis work of one API call. Default 10s.
	Timeout time.Duration
	// Tail is this process's live tail (GET /admin/api/tail); nil answers 503.
	Tail *Tail
	// SampleEvery is how often Run offers a queue depth sample for the series (see
	// startSampler). Default 15s; negative: never.
	SampleEvery time.Duration
}

// Server is the admin listener.
type Server struct {
	opts     Options
	draining atomic.Bool
	srv      *http.Server
}

// New builds the admin server.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Audit == nil {
		o.Audit = o.Log.Named("audit")
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	s := &Server{opts: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	mux.HandleFunc("GET /readyz", s.ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	handlePage(mux)
	a := newAPI(o)
	mux.Handle("/admin/api/", requireToken(o.Token, a.handler()))
	stopping := make(chan struct{})
	(&liveAPI{api: a, ring: o.Tail, stopping: stopping}).route(mux, o.Token)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, ErrorLog: zap.NewStdLog(o.Log)}
	var once sync.Once
	s.srv.RegisterOnShutdown(func() { once.Do(func() { close(stopping) }) })
	return s
}

// Drain makes /readyz fail so load balancers stop sending traffic during shutdown.
func (s *Server) Drain() { s.draining.Store(true) }

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"ok":false,"reason":"draining"}`))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	if s.opts.Queue == nil || s.opts.Queue.Ping(ctx) != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"ok":false,"reason":"redis unreachable"}`))
		return
	}
	_, _ = w.Write([]byte(`{"ok":true}`))
}

// Run serves on ln until ctx is done.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	defer s.startSampler(ctx)()
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(sctx)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
