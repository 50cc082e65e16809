package config

import "time"

// Config is the whole relay configuration: one YAML file (see Load).
// Field comments give the default applied by setDefaults when a field is left out.
type Config struct {
	// Server is the public ingest listener.
	Server Server `yaml:"server"`
	// Admin is the operator listener (/metrics, /healthz, /readyz, /admin/).
	Admin Admin `yaml:"admin"`
	// Redis is the durable queue.
	Redis Redis `yaml:"redis"`
	// Log sets the logger.
	Log Log `yaml:"log"`
	// Trace configures the delivery trace and the live tail.
	Trace Trace `yaml:"trace"`
	// Sites are browser-facing callers identified by a public key.
	Sites []Site `yaml:"sites"`
	// Clients are backends identified by a secret bearer token.
	Clients []Client `yaml:"clients"`
	// Providers lists the enabled upstreams: a provider is enabled by being present. Each
	// section is decoded into the type its ProviderSpec gives (see provider.go).
	Providers Providers `yaml:"-"`
}

// Server configures the ingest listener.
type Server struct {
	// Listen is the ingest address. Default ":8080".
	Listen string `yaml:"listen"`
	// MaxBodyBytes caps every request body, /v1/batch included; larger bodies get 413. Default 65536.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// TrustedProxies are CIDRs (or single IPs) whose X-Forwarded-For is honoured. Default none.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// CountryHeader names a geo header set by the edge (e.g. CF-IPCountry), read only from
	// peers in TrustedProxies. Default none.
	CountryHeader string `yaml:"country_header"`
	// ReadTimeout bounds reading one request, headers and body (slowloris). Default 10s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing one response. Default 10s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes idle keep-alive connections. Default 60s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxTrackedIPs caps how many client IPs the per-IP rate limiter remembers. Default 100000.
	MaxTrackedIPs int `yaml:"max_tracked_ips"`
	// MaxBatchEvents caps the events of one /v1/batch request. Default 100.
	MaxBatchEvents int `yaml:"max_batch_events"`
	// CORSMaxAge is sent as Access-Control-Max-Age on preflight replies. Default 10m.
	CORSMaxAge time.Duration `yaml:"cors_max_age"`
	// PathPrefix, e.g. "/t", moves every public path under it (/t/v1/ens/click,
	// /t/brevo/v3/events) and off the bare paths, so the relay can sit on the site's own
	// domain under a neutral path that ad blockers' rules do not match. It starts with
	// "/", has no trailing "/" and no "//", "..", "?", "#", "%", spaces or control
	// characters. Default "" (paths at the root).
	PathPrefix string `yaml:"path_prefix"`
}

// Admin configures the operator listener.
type Admin struct {
	// Listen is the admin address; keep it private. Default "127.0.0.1:9090".
	Listen string `yaml:"listen"`
	// Token is the bearer token for /admin/. Required when admin.listen is set.
	Token string `yaml:"token"`
}

// Trace configures the delivery trace (GET /admin/api/events/{provider}/{id}, relay
// trace) and the live tail (GET /admin/api/tail, relay tail).
type Trace struct {
	// Enabled records each delivery attempt in the provider's trace in Redis (one extra
	// script call per recorder pipeline). Default true.
	Enabled *bool `yaml:"enabled"`
	// Keep is how many attempt records each provider's trace keeps, the newest (about
	// that many events: most take one attempt). Default 100000.
	Keep int `yaml:"keep"`
	// TailBuffer is how many events the in-memory live tail holds for a slow reader
	// before it skips. Default 4096.
	TailBuffer int `yaml:"tail_buffer"`
}

// On reports whether the trace is enabled (after defaults).
func (t Trace) On() bool { return t.Enabled == nil || *t.Enabled }

// Redis configures the queue.
type Redis struct {
	// URL is redis://, rediss://, redis+sentinel:// or redis+cluster://. Empty: an embedded
	// in-memory queue for development only (nothing is durable).
	URL string `yaml:"url"`
	// Prefix starts every key. Default "relay".
	Prefix string `yaml:"prefix"`
	// EnqueueTimeout bounds the wait for Redis on ingest; past it the request gets 503. Default 1s.
	EnqueueTimeout time.Duration `yaml:"enqueue_timeout"`
	// AllowUnsafe lets the relay start on a Redis without appendonly/noeviction (with a warning).
	AllowUnsafe bool `yaml:"allow_unsafe"`
	// HighWaterMark is the per-provider backlog (stream + retry set) above which ingest for
	// that provider answers 503. Default 1000000; -1 disables the check.
	HighWaterMark int64 `yaml:"high_water_mark"`
	// Writers is the number of group-commit writers pipelining enqueues. Default 2.
	Writers int `yaml:"writers"`
	// MaxBatch caps the enqueues of one group-commit pipeline. Default 256.
	MaxBatch int `yaml:"max_batch"`
	// PoolSize is the Redis connections kept for ingest and the admin API. Default 32. The
	// relay adds four per enabled provider on top (reader, recorder, mover, reclaimer; see
	// serve.go).
	PoolSize int `yaml:"pool_size"`
	// MinReplicasAcked makes every group commit end with WAIT: an event is answered 202
	// only once this many replicas hold it, else 503. Default 0 (no wait): Redis
	// replication is asynchronous, so a master that dies right after answering can lose
	// acknowledged events unless a replica already has them.
	MinReplicasAcked int `yaml:"min_replicas_acked"`
	// ConsumerExpiry removes a consumer (a relay process that stopped) from a provider's
	// consumer group once it has been idle this long and holds no pending entry.
	// Default 1h; at least 1m (a live relay reads several times a second).
	ConsumerExpiry time.Duration `yaml:"consumer_expiry"`
	// Shards spreads each provider's events over this many streams (each with its own
	// retry set, dead letters and consumer group), by a hash of the event's id; on Redis
	// Cluster the shards of one provider sit on different slots. Default 1, at most 64.
	// Raising it is safe online; lowering it is refused at start while a dropped shard
	// still holds entries (docs/storage.md, "Shards").
	Shards int `yaml:"shards"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Default "info".
	Level string `yaml:"level"`
}

// Site is a browser-facing caller with a public key.
type Site struct {
	// Name identifies the site in logs and metrics. Required, unique.
	Name string `yaml:"name"`
	// Key is the public site key (header X-Relay-Key or ?key=). Required, unique.
	Key string `yaml:"key"`
	// Origins are the exact origins (scheme://host[:port]) allowed to call with this key.
	Origins []string `yaml:"origins"`
	// Routes the key may use ("ens/click", ...). Default: all enabled routes except money
	// routes (linkrunner/capture-payment), which must be listed explicitly.
	Routes []string `yaml:"routes"`
	// IdentitySecret verifies X-Relay-Identity tokens (JWT HS256). When set, identities come
	// only from such tokens.
	IdentitySecret string `yaml:"identity_secret"`
	// TrustClientIdentity lets a site without identity_secret send identities in the body.
	TrustClientIdentity bool `yaml:"trust_client_identity"`
	// Revenue lets the site send revenue inside an event that is not a money route
	// (Linkrunner capture-event with event_data.amount). Default false: such an event from
	// the site is refused (403). Backends (clients) are not concerned.
	Revenue bool `yaml:"revenue"`
	// RateLimit is the per-client-IP token bucket.
	RateLimit RateLimit `yaml:"rate_limit"`
	// Events filters the site's events by name (docs/api.md, "Event filters"). Default:
	// every event passes. A filtered event is answered 202, marked, and never queued.
	Events EventFilter `yaml:"events"`
	// Consent is "required" (each event needs its route's purpose granted by the user, in
	// X-Relay-Consent, ?consent= or the identity token's consent claim) or "none". Default
	// "none".
	Consent string `yaml:"consent"`
	// Purposes overrides the purpose of routes for consent, keyed by route
	// ({"ens/click": "analytics"}). Default: each route's own purpose (ads, attribution,
	// marketing; docs/api.md).
	Purposes map[string]string `yaml:"purposes"`
}

// Consent modes of a site.
const (
	ConsentNone     = "none"
	ConsentRequired = "required"
)

// EventFilter selects events by name. A pattern is an exact name, or a prefix ending in
// "*" ("debug_*"). Deny wins over allow.
type EventFilter struct {
	// Allow lets only the matching events through. Default (empty): every event.
	Allow []string `yaml:"allow"`
	// Deny drops the matching events, even those Allow lists. Default: none.
	Deny []string `yaml:"deny"`
}

// RateLimit is a token bucket.
type RateLimit struct {
	// PerIP is the sustained requests per second per client IP. Default 20.
	PerIP float64 `yaml:"per_ip"`
	// Burst is the bucket size. Default 2 × per_ip.
	Burst int `yaml:"burst"`
}

// Client is a backend caller with a secret bearer token.
type Client struct {
	// Name identifies the client in logs and metrics. Required, unique.
	Name string `yaml:"name"`
	// Token is the secret bearer token (Authorization: Bearer). Required, unique, ≥ 16 chars.
	Token string `yaml:"token"`
	// Routes the client may use. Default: all enabled routes.
	Routes []string `yaml:"routes"`
}

// Delivery holds the settings every provider takes.
type Delivery struct {
	// BaseURL of the upstream. Default: the provider's documented URL.
	BaseURL string `yaml:"base_url"`
	// Workers is the number of concurrent deliveries. Default 4.
	Workers int `yaml:"workers"`
	// RateLimit is requests per second to the upstream. Default: per provider.
	RateLimit float64 `yaml:"rate_limit"`
	// Timeout bounds one upstream attempt. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// VisibilityTimeout is how long an entry may stay pending with one consumer before
	// another relay takes it over (the first one is presumed dead). It must exceed
	// timeout. Default 2×timeout + 10s.
	VisibilityTimeout time.Duration `yaml:"visibility_timeout"`
	// MaxAttempts before an event is dead-lettered. Default 12.
	MaxAttempts int `yaml:"max_attempts"`
	// MaxAge after which an undelivered event is dead-lettered. Default 24h.
	MaxAge time.Duration `yaml:"max_age"`
	// Backoff between attempts.
	Backoff Backoff `yaml:"backoff"`
	// Breaker is the per-provider circuit breaker.
	Breaker Breaker `yaml:"breaker"`
	// DeadLetters bounds the provider's dead-letter stream.
	DeadLetters DeadLetters `yaml:"dead_letters"`
}

// DeadLetters is the retention of a dead-letter stream: letters older than MaxAge, and
// the oldest beyond MaxCount, are dropped (counted in relay_dead_letters_dropped_total
// and logged), so the stream's memory stays bounded however many events fail.
type DeadLetters struct {
	// MaxAge drops letters dead longer than this. Default 168h (7 days).
	MaxAge time.Duration `yaml:"max_age"`
	// MaxCount keeps at most this many letters, dropping the oldest. Default 100000.
	MaxCount int64 `yaml:"max_count"`
}

// Backoff is exponential with full jitter.
type Backoff struct {
	// Base is the first delay. Default 1s.
	Base time.Duration `yaml:"base"`
	// Max caps every delay. Default 10m.
	Max time.Duration `yaml:"max"`
}

// Breaker configures a circuit breaker.
type Breaker struct {
	// Failures is the consecutive failures that open it. Default 5.
	Failures int `yaml:"failures"`
	// OpenFor is how long it stays open before a probe. Default 30s.
	OpenFor time.Duration `yaml:"open_for"`
}
