package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/providers"
	"github.com/eventrelay/relay/relay/queue"
)

// Enqueuer appends one event durably; it is the queue's group-commit writer. It must not
// retain m after it returns, and must bound its own wait (redis.enqueue_timeout): ingest
// adds no deadline of its own.
type Enqueuer interface {
	Enqueue(ctx context.Context, m *delivery.Message, src queue.IDSource) (duplicate bool, err error)
}

var _ Enqueuer = (*queue.Enqueuer)(nil)

// Options are what New needs. Every field is required unless marked optional.
type Options struct {
	Config *config.Config
	// Ops are the enabled providers' operations (providers.Ops).
	Ops   []*providers.Op
	Queue Enqueuer
	Log   *zap.Logger
	// Metrics registers the ingest metrics; optional (nil: not exported).
	Metrics prometheus.Registerer
	// Now is the clock; optional (default time.Now).
	Now func() time.Time
}

// Server is the ingest front.
type Server struct {
	log    *zap.Logger
	queue  Enqueuer
	routes map[string]*providers.Op // by full path, "/v1/ens/click"
	// prefix is server.path_prefix ("/t"), empty for none: every public path is under it.
	prefix []byte
	// brevo is the brevo/events operation the Brevo SDK mirror paths feed; nil when
	// providers.brevo has no api_key.
	brevo         *providers.Op
	callers       *callers
	limiter       *ipLimiter
	proxies       proxies
	countryHeader string
	corsMaxAge    string
	maxBatch      int
	metrics       *metrics
	now           func() time.Time
	srv           *fasthttp.Server
	scratch       sync.Pool // of *scratch, per one-event request
	// base is the parent of enqueue contexts; it outlives shutdown's start so accepted
	// requests in flight still finish.
	base context.Context
}

// batchPath is the multi-event route.
const batchPath = "/v1/batch"

// New builds the ingest server from a validated config.
func New(o Options) (*Server, error) {
	cfg := o.Config
	px, err := parseProxies(cfg.Server.TrustedProxies)
	if err != nil {
		return nil, err
	}
	s := &Server{
		log:           o.Log,
		queue:         o.Queue,
		routes:        make(map[string]*providers.Op, len(o.Ops)),
		prefix:        []byte(cfg.Server.PathPrefix),
		callers:       newCallers(cfg, o.Ops),
		limiter:       newIPLimiter(cfg.Server.MaxTrackedIPs),
		proxies:       px,
		countryHeader: cfg.Server.CountryHeader,
		corsMaxAge:    strconv.Itoa(int(cfg.Server.CORSMaxAge / time.Second)),
		maxBatch:      cfg.Server.MaxBatchEvents,
		now:           o.Now,
		base:          context.Background(),
	}
	if s.now == nil {
		s.now = time.Now
	}
	labels := []string{"batch", labelBrevoMirror, labelBrevoMirrorBatch}
	var provs []string
	for _, op := range o.Ops {
		s.routes["/v1/"+op.Route] = op
		if op.Route == brevoMirrorRoute {
			s.brevo = op
		}
		labels = append(labels, op.Route)
		if !slices.Contains(provs, op.Provider) {
			provs = append(provs, op.Provider)
		}
	}
	s.scratch.New = func() any { return new(scratch) }
	if s.metrics, err = newMetrics(o.Metrics, labels, provs); err != nil {
		return nil, fmt.Errorf("ingest metrics: %w", err)
	}
	s.exportFilterZeros(o.Ops)
	s.srv = &fasthttp.Server{
		Handler:                       s.handle,
		ErrorHandler:                  s.readError,
		Name:                          "relay",
		NoDefaultServerHeader:         true,
		NoDefaultContentType:          true,
		ReadTimeout:                   cfg.Server.ReadTimeout,
		WriteTimeout:                  cfg.Server.WriteTimeout,
		IdleTimeout:                   cfg.Server.IdleTimeout,
		MaxRequestBodySize:            cfg.Server.MaxBodyBytes,
		ReadBufferSize:                8192, // also the cap on request headers: 431 beyond
		DisablePreParseMultipartForm:  true,
		SecureErrorLogMessage:         true,
		DisableHeaderNamesNormalizing: false,
		Logger:                        fasthttpLogger{o.Log},
	}
	return s, nil
}

// Handler returns the request handler, for tests and benchmarks.
func (s *Server) Handler() fasthttp.RequestHandler { return s.handle }

// Run serves on ln until ctx is done, then stops accepting and waits (up to grace) for
// requests in flight to get their reply.
func (s *Server) Run(ctx context.Context, ln net.Listener, grace time.Duration) error {
	s.base = context.WithoutCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(s.base, grace)
	defer cancel()
	if err := s.srv.ShutdownWithContext(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return <-errc
}

// readError answers requests fasthttp refused while reading them, in the API's shape.
func (s *Server) readError(ctx *fasthttp.RequestCtx, err error) {
	write, whole := writeError, ""
	if path, ok := s.publicPath(ctx.Path()); ok && brevoMirrorPath(path) != "" {
		write = writeBrevoError // the Brevo SDK reads Brevo's error shape
	} else if ok && string(path) == batchPath {
		whole = "events" // a batch too large as a whole: the SDK sends smaller ones
	}
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		write(ctx, &apiError{status: fasthttp.StatusRequestEntityTooLarge, code: codeTooLarge, field: whole,
			message: "body is larger than server.max_body_bytes"})
	case errors.As(err, &small):
		write(ctx, &apiError{status: fasthttp.StatusRequestHeaderFieldsTooLarge, code: codeHeaderTooLarge,
			message: "request headers are too large"})
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			write(ctx, &apiError{status: fasthttp.StatusRequestTimeout, code: codeBadRequest, message: "request read timed out"})
			return
		}
		write(ctx, &apiError{status: fasthttp.StatusBadRequest, code: codeBadRequest, message: "malformed HTTP request"})
	}
	ctx.SetConnectionClose()
	s.metrics.request("unknown", ctx.Response.StatusCode())
}

// fasthttpLogger routes fasthttp's own messages to zap.
type fasthttpLogger struct{ log *zap.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}
