package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventrelay/relay/internal/loopback"
)

// Provider names, as the relay and its Redis keys spell them.
const (
	ENS        = "ens"
	BannerFlex = "bannerflex"
	Linkrunner = "linkrunner"
	Brevo      = "brevo"
	Cardlytics = "cardlytics"
)

// Providers are the providers every scenario enables, in table order.
var Providers = []string{ENS, BannerFlex, Linkrunner, Brevo, Cardlytics}

// Credentials of the generated configs: fixed, test-only.
const (
	ClientToken = "chaos-backend-token-0123456789"
	AdminToken  = "chaos-admin-token-0123456789"
	// CardlyticsClientID and CardlyticsSecret are the fake Cardlytics's bearer-mode
	// credentials (startSession).
	CardlyticsClientID = "chaos-cdlx-client-0005"
	CardlyticsSecret   = "chaos-cdlx-secret-0006"
	Prefix             = "chaos"
)

// Bounds of the harness's own waits.
const (
	// startTimeout bounds a relay's start until /healthz answers.
	startTimeout = 20 * time.Second
	// exitTimeout bounds the wait for a signalled relay to exit.
	exitTimeout = 15 * time.Second
	// holdMax bounds how long a held upstream request waits for Release.
	holdMax = 60 * time.Second
	// logTail is how much of a relay's log a failed test prints.
	logTail = 12 << 10
)

// Scale is the multiplier of durations and loads: 1 by default; with CHAOS_LONG=1 (or
// true/yes) 6; with CHAOS_LONG=N, N > 1, N.
func Scale() int {
	v := strings.TrimSpace(os.Getenv("CHAOS_LONG"))
	switch strings.ToLower(v) {
	case "", "0", "false", "no":
		return 1
	case "1", "true", "yes":
		return 6
	}
	if n, err := strconv.Atoi(v); err == nil && n > 1 {
		return n
	}
	return 6
}

// Long reports whether long mode is on.
func Long() bool { return Scale() > 1 }

// Dur scales d by Scale.
func Dur(d time.Duration) time.Duration { return d * time.Duration(Scale()) }

// BuildRelay builds ./cmd/relay into dir once (with -race when CHAOS_RACE_RELAY=1) and
// returns the binary's path. It runs from the caller's working directory, which must be
// inside the module (a test's package directory is).
func BuildRelay(dir string) (string, error) {
	bin := filepath.Join(dir, "relay")
	args := []string{"build", "-o", bin}
	if os.Getenv("CHAOS_RACE_RELAY") == "1" {
		args = append(args, "-race")
	}
	args = append(args, "github.com/eventrelay/relay/cmd/relay")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// FreeAddrs returns n distinct free 127.0.0.1:port addresses (another process may take
// one before it is used; a relay that cannot bind fails its start loudly).
func FreeAddrs(t testing.TB, n int) []string {
	t.Helper()
	addrs, err := loopback.FreeAddrs(n)
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}

// ---------------------------------------------------------------------------------------
// Relay configuration

// Tune is one provider's delivery settings in a generated config.
type Tune struct {
	Workers     int
	RateLimit   float64
	Timeout     time.Duration
	Visibility  time.Duration
	MaxAttempts int
	BackoffBase time.Duration
	BackoffMax  time.Duration
	Failures    int
	OpenFor     time.Duration
	// BrevoBatch sets providers.brevo.batch (Brevo only).
	BrevoBatch bool
}

// DefaultTune is fast enough for bounded scenarios: 1 s upstream timeout, 3 s visibility
// timeout, short backoff, a breaker that reopens after 2 s, and rate limits well above the
// driver's load.
func DefaultTune() Tune {
	return Tune{Workers: 4, RateLimit: 200, Timeout: time.Second, Visibility: 3 * time.Second,
		MaxAttempts: 1000, BackoffBase: 100 * time.Millisecond, BackoffMax: time.Second,
		Failures: 5, OpenFor: 2 * time.Second}
}

func (tu Tune) yaml() string {
	return fmt.Sprintf("workers: %d, rate_limit: %g, timeout: %s, visibility_timeout: %s, max_attempts: %d, "+
		"backoff: {base: %s, max: %s}, breaker: {failures: %d, open_for: %s}",
		tu.Workers, tu.RateLimit, tu.Timeout, tu.Visibility, tu.MaxAttempts, tu.BackoffBase, tu.BackoffMax, tu.Failures, tu.OpenFor)
}

// Setup describes one relay deployment: a Redis, the fake upstreams and the delivery
// settings per provider. Config renders it; every relay of a scenario shares it.
type Setup struct {
	RedisURL    string
	Upstreams   map[string]*Upstream
	Tune        map[string]*Tune
	AllowUnsafe bool
	// MinReplicasAcked is redis.min_replicas_acked.
	MinReplicasAcked int
	// LogLevel is log.level; default "info".
	LogLevel string
}

// NewSetup enables every provider of ups with DefaultTune.
func NewSetup(redisURL string, ups map[string]*Upstream) *Setup {
	s := &Setup{RedisURL: redisURL, Upstreams: ups, Tune: map[string]*Tune{}}
	for p := range ups {
		tu := DefaultTune()
		s.Tune[p] = &tu
	}
	return s
}

// Config renders the relay config with {{ingest}} and {{admin}} placeholders.
func (s *Setup) Config() string {
	level := s.LogLevel
	if level == "" {
		level = "info"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `server: {listen: "{{ingest}}"}
admin: {listen: "{{admin}}", token: %q}
redis: {url: %q, prefix: %s, allow_unsafe: %t, min_replicas_acked: %d}
log: {level: %s}
clients:
  - {name: chaos, token: %q}
providers:
`, AdminToken, s.RedisURL, Prefix, s.AllowUnsafe, s.MinReplicasAcked, level, ClientToken)
	for _, p := range Providers {
		u := s.Upstreams[p]
		if u == nil {
			continue
		}
		tu := s.Tune[p]
		switch p {
		case ENS:
			fmt.Fprintf(&b, "  ens: {base_url: %q, api_key: ens-key-chaos-0001, %s}\n", u.URL(), tu.yaml())
		case BannerFlex:
			fmt.Fprintf(&b, "  bannerflex: {base_url: %q, %s}\n", u.URL(), tu.yaml())
		case Linkrunner:
			fmt.Fprintf(&b, "  linkrunner: {base_url: %q, server_key: lr-key-chaos-0002, %s}\n", u.URL(), tu.yaml())
		case Brevo:
			fmt.Fprintf(&b, "  brevo: {base_url: %q, tracker_url: %q, api_key: brevo-key-chaos-0003, ma_key: brevo-ma-chaos-0004, batch: %t, %s}\n",
				u.URL(), u.URL(), tu.BrevoBatch, tu.yaml())
		case Cardlytics:
			// Bearer mode over mutual TLS, like production.
			fmt.Fprintf(&b, "  cardlytics: {base_url: %q, auth: bearer, client_id: %s, secret: %s, tls_cert_file: %q, "+
				"tls_key_file: %q, tls_ca_file: %q, %s}\n", u.URL(), CardlyticsClientID, CardlyticsSecret,
				u.PKI.ClientCertFile, u.PKI.ClientKeyFile, u.PKI.CAFile, tu.yaml())
		}
	}
	return b.String()
}
