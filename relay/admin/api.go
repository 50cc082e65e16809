package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/relay/queue"
)

// BreakerStater reports one provider's circuit breaker state (forward.Forwarder).
type BreakerStater interface {
	BreakerState() gobreaker.State
}

// Limits of the API.
const (
	// maxBody caps a request body.
	maxBody = 1 << 20
	// maxIDs caps the ids of one replay or purge.
	maxIDs = 10000
	// chunk is how many entries one pipeline or page handles.
	chunk = 500
)

// api serves /admin/api/. Every handler runs behind requireToken.
type api struct {
	client    redis.Cmdable
	keys      queue.Keys
	providers []string
	breakers  map[string]BreakerStater
	timeout   time.Duration
	log       *zap.Logger
	audit     *zap.Logger
	rd        reader
}

func newAPI(o Options) *api {
	return &api{client: o.Client, keys: o.Keys, providers: o.Providers, breakers: o.Breakers,
		timeout: o.Timeout, log: o.Log, audit: o.Audit, rd: reader{client: o.Client, keys: o.Keys}}
}

// handler routes the API. Unknown paths under /admin/api/ get a JSON 404.
func (a *api) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/api/providers", a.providersStatus)
	mux.HandleFunc("GET /admin/api/series", a.series)
	mux.HandleFunc("GET /admin/api/dead/{provider}", a.withProvider(a.deadList))
	mux.HandleFunc("GET /admin/api/dead/{provider}/{stream_id}", a.withProvider(a.deadGet))
	mux.HandleFunc("POST /admin/api/dead/{provider}/replay", a.withProvider(a.replay))
	mux.HandleFunc("DELETE /admin/api/dead/{provider}", a.withProvider(a.purge))
	mux.HandleFunc("/admin/api/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no such admin API path")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.client == nil {
			writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "the admin API has no queue")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// withProvider answers 404 for a provider that is not enabled.
func (a *api) withProvider(h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := r.PathValue("provider")
		if !slices.Contains(a.providers, p) {
			writeError(w, http.StatusNotFound, CodeUnknownProvider, fmt.Sprintf("unknown provider %q (enabled: %v)", p, a.providers))
			return
		}
		h(w, r, p)
	}
}

// redisCtx bounds one call's (or one page's) Redis work.
func (a *api) redisCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.timeout)
}

// redisFailed answers 503 for a failed Redis call and logs it.
func (a *api) redisFailed(w http.ResponseWriter, r *http.Request, err error) {
	a.log.Warn("admin API: redis failed", zap.String("path", r.URL.Path), zap.Error(err))
	writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "redis failed or timed out")
}

// auditLog records one mutation. It never logs the token or an event body.
func (a *api) auditLog(r *http.Request, provider, action, scope string, count int64) {
	a.audit.Info("admin "+action, zap.String("provider", provider), zap.String("action", action),
		zap.String("scope", scope), zap.Int64("count", count), zap.String("caller", callerIP(r)))
}

// callerIP is the peer address. The admin listener trusts no forwarding header.
func callerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// errBadBody wraps every problem with a request body.
var errBadBody = errors.New("bad request body")

// decodeBody decodes an optional JSON body into dst: an empty body leaves dst as is.
// Unknown fields, trailing data and bodies over maxBody are errors wrapping errBadBody.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("%w: over %d bytes", errBadBody, maxBody)
		}
		return fmt.Errorf("%w: %w", errBadBody, err)
	}
	if len(b) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("%w: %w", errBadBody, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after the JSON value", errBadBody)
	}
	return nil
}

// checkIDs validates stream ids from a request body and drops repeats (keeping the
// first), so that a dry run counts what the real call does: the real one finds a
// repeated id gone after its first use.
func checkIDs(ids []string) ([]string, error) {
	if len(ids) > maxIDs {
		return nil, fmt.Errorf("%w: at most %d ids per call", errBadBody, maxIDs)
	}
	if ids == nil {
		return nil, nil
	}
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		shard, sid, ok := parseHandle(id)
		if !ok {
			return nil, fmt.Errorf("%w: %q is not a stream id", errBadBody, id)
		}
		if !strings.Contains(sid, "-") {
			sid += "-0" // Redis reads "<ms>" as "<ms>-0"
		}
		if key := handle(shard, sid); !seen[key] {
			seen[key] = true
			out = append(out, id)
		}
	}
	return out, nil
}

// validStreamID reports whether s is a Redis stream id: "<ms>-<seq>" or "<ms>".
func validStreamID(s string) bool {
	if s == "" || len(s) > 41 {
		return false
	}
	digits, dash := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '-' && !dash && digits > 0 && i < len(s)-1:
			dash, digits = true, 0
		default:
			return false
		}
	}
	return digits > 0
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"ok":false,"error":{"code":"internal","message":"encoding the reply failed"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, ErrorReply{Error: ErrorBody{Code: code, Message: msg}})
}
