package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Limits enforced by Validate.
const (
	minBodyBytes      = 1024
	maxBodyBytes      = 16 << 20
	maxEnqueueTimeout = 30 * time.Second
	maxReplicasAcked  = 16
	// MaxShards bounds redis.shards (and the shards checked at start for leftovers).
	MaxShards            = 64
	maxWorkers           = 256
	maxUpstreamTimeout   = 5 * time.Minute
	minSiteKeyLen        = 8
	minTokenLen          = 16 // client and admin tokens
	minIdentitySecretLen = 32 // HS256 keys shorter than the hash are weak
)

// Validate reports every problem of the configuration at once, as *Errors whose paths
// locate the values (e.g. "providers.ens.timeout must be > 0"). Parse calls it after
// applying defaults; a Config built in code should be validated the same way. Messages
// never contain secrets.
func (c *Config) Validate() error {
	var v Validator
	c.validateServer(&v)
	c.validateAdmin(&v)
	c.validateRedis(&v)
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		v.Add("log.level", "must be debug, info, warn or error")
	}
	v.atLeast("trace.keep", c.Trace.Keep, 1)
	v.atLeast("trace.tail_buffer", c.Trace.TailBuffer, 1)
	c.validateSites(&v)
	c.validateClients(&v)
	c.validateProviders(&v)
	return v.errs.errOrNil()
}

// Validator collects problems; its helpers each check one kind of value. Provider
// sections report theirs through it (ProviderSection.Validate).
type Validator struct {
	errs Errors
}

// Add reports a problem at path; the message reads as the rest of a sentence starting
// with the path ("must be > 0") and never quotes a secret.
func (v *Validator) Add(path, format string, args ...any) {
	v.errs.add(0, path, format, args...)
}

func (v *Validator) positive(path string, d time.Duration) {
	if d <= 0 {
		v.Add(path, "must be > 0")
	}
}

func (v *Validator) atLeast(path string, n, low int) {
	if n < low {
		v.Add(path, "must be >= %d", low)
	}
}

// hostPort checks a listen address such as ":8080" or "127.0.0.1:9090".
func (v *Validator) hostPort(path, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		v.Add(path, "%q must be host:port, e.g. \":8080\" or \"127.0.0.1:9090\"", addr)
	}
}

// secret checks a value sent in an HTTP header or compared as a token. Its value is never
// quoted.
func (v *Validator) Secret(path, s string, minLen int) {
	switch {
	case s == "":
		v.Add(path, "is required")
	case len(s) < minLen:
		v.Add(path, "is too short (at least %d characters)", minLen)
	case strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0:
		v.Add(path, "must be printable ASCII without spaces (a stray newline from a secret file?)")
	}
}

// upstreamURL checks an upstream base URL: absolute, no query, and https unless the host
// is loopback (local fakes in tests).
func (v *Validator) UpstreamURL(path, s string) {
	u, err := url.Parse(s)
	switch {
	case s == "":
		v.Add(path, "is required")
	case strings.Contains(s, "@"):
		// Checked before anything quotes s: user:password@ must not reach a log.
		v.Add(path, "must not contain credentials (user@)")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "":
		v.Add(path, "%q must be an absolute http or https URL", s)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		v.Add(path, "%q must not have a query or fragment", s)
	case u.Scheme == "http" && !IsLoopback(u.Hostname()):
		v.Add(path, "%q must use https (http only for localhost, 127.0.0.0/8 or ::1)", s)
	}
}

// readableFile checks that name can be opened for reading and is not a directory.
func (v *Validator) ReadableFile(path, name string) bool {
	f, err := os.Open(name)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			v.Add(path, "%q does not exist", name)
		case errors.Is(err, fs.ErrPermission):
			v.Add(path, "%q is not readable (permission denied)", name)
		default:
			v.Add(path, "%q cannot be read", name)
		}
		return false
	}
	defer f.Close()
	if info, err := f.Stat(); err != nil || info.IsDir() {
		v.Add(path, "%q must be a regular file", name)
		return false
	}
	return true
}

func (c *Config) validateServer(v *Validator) {
	s := c.Server
	v.hostPort("server.listen", s.Listen)
	if s.MaxBodyBytes < minBodyBytes || s.MaxBodyBytes > maxBodyBytes {
		v.Add("server.max_body_bytes", "must be between %d and %d (16 MiB)", minBodyBytes, maxBodyBytes)
	}
	for i, p := range s.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(p); err != nil {
			v.Add(fmt.Sprintf("server.trusted_proxies[%d]", i), "%q must be a CIDR (10.0.0.0/8) or an IP address", p)
		}
	}
	if s.CountryHeader != "" && !isHeaderName(s.CountryHeader) {
		v.Add("server.country_header", "%q must be an HTTP header name", s.CountryHeader)
	}
	v.positive("server.read_timeout", s.ReadTimeout)
	v.positive("server.write_timeout", s.WriteTimeout)
	v.positive("server.idle_timeout", s.IdleTimeout)
	v.positive("server.cors_max_age", s.CORSMaxAge)
	v.atLeast("server.max_tracked_ips", s.MaxTrackedIPs, 1)
	v.atLeast("server.max_batch_events", s.MaxBatchEvents, 1)
	if s.PathPrefix != "" {
		if msg := pathPrefixProblem(s.PathPrefix); msg != "" {
			v.Add("server.path_prefix", "%q %s", s.PathPrefix, msg)
		}
	}
}

// pathPrefixProblem says what is wrong with a non-empty server.path_prefix, or "". The
// prefix is compared with fasthttp's normalised, decoded path, so anything normalisation
// would rewrite ("//", "..", "%") could never match.
func pathPrefixProblem(p string) string {
	switch {
	case p[0] != '/':
		return `must start with "/" (e.g. "/t")`
	case strings.HasSuffix(p, "/"):
		return `must not end with "/" (leave it empty to serve at the root)`
	case strings.Contains(p, "//"):
		return `must not contain "//"`
	case strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") || strings.Contains(p, "/./") || strings.HasSuffix(p, "/."):
		return `must not contain "." or ".." segments`
	case strings.ContainsAny(p, "?#%"):
		return `must not contain "?", "#" or "%"`
	case strings.IndexFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f || unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return "must not contain spaces or control characters"
	}
	return ""
}

func (c *Config) validateAdmin(v *Validator) {
	if c.Admin.Listen == "" {
		return
	}
	v.hostPort("admin.listen", c.Admin.Listen)
	// Port 0 picks a free port on each listen (tests), so only fixed ports can collide.
	if _, port, err := net.SplitHostPort(c.Admin.Listen); err == nil && port != "0" && c.Admin.Listen == c.Server.Listen {
		v.Add("admin.listen", "must differ from server.listen")
	}
	v.Secret("admin.token", c.Admin.Token, minTokenLen)
}

func (c *Config) validateRedis(v *Validator) {
	r := c.Redis
	if r.URL != "" {
		u, err := url.Parse(r.URL)
		schemes := []string{"redis", "rediss", "redis+sentinel", "redis+cluster"}
		if err != nil || !slices.Contains(schemes, u.Scheme) || u.Host == "" {
			// Never quoted: a Redis URL often carries a password.
			v.Add("redis.url", "must be a redis://, rediss://, redis+sentinel:// or redis+cluster:// URL with a host")
		}
	}
	if r.Prefix == "" || strings.ContainsAny(r.Prefix, " \t\r\n{}") {
		v.Add("redis.prefix", "must be non-empty, without spaces or braces (braces would break the {provider} hash tags)")
	}
	if r.EnqueueTimeout <= 0 || r.EnqueueTimeout > maxEnqueueTimeout {
		v.Add("redis.enqueue_timeout", "must be > 0 and <= %s", shortDuration(maxEnqueueTimeout))
	}
	if r.HighWaterMark < -1 {
		v.Add("redis.high_water_mark", "must be > 0, or -1 to disable the check")
	}
	v.atLeast("redis.writers", r.Writers, 1)
	v.atLeast("redis.max_batch", r.MaxBatch, 1)
	v.atLeast("redis.pool_size", r.PoolSize, 1)
	if r.Shards < 1 || r.Shards > MaxShards {
		v.Add("redis.shards", "must be between 1 and %d", MaxShards)
	}
	switch {
	case r.MinReplicasAcked < 0 || r.MinReplicasAcked > maxReplicasAcked:
		v.Add("redis.min_replicas_acked", "must be between 0 and %d", maxReplicasAcked)
	case r.MinReplicasAcked > 0 && r.URL == "":
		v.Add("redis.min_replicas_acked", "needs redis.url: the embedded development queue has no replicas")
	}
	if r.ConsumerExpiry < time.Minute {
		v.Add("redis.consumer_expiry", "must be >= 1m (a live relay reads several times a second; a shorter bound would remove stalled ones that still hold work)")
	}
}

func (c *Config) validateSites(v *Validator) {
	names := make(map[string]string)
	keys := make(map[string]string)
	for i, s := range c.Sites {
		p := fmt.Sprintf("sites[%d]", i)
		v.unique(names, p, "name", s.Name, true)
		if s.Key != "" && (len(s.Key) < minSiteKeyLen || strings.IndexFunc(s.Key, notKeyChar) >= 0) {
			v.Add(p+".key", "must be at least %d characters of A-Z a-z 0-9 _ -", minSiteKeyLen)
		} else {
			v.unique(keys, p, "key", s.Key, false)
		}
		for j, o := range s.Origins {
			if problem := originProblem(o); problem != "" {
				v.Add(fmt.Sprintf("%s.origins[%d]", p, j), "%q %s", o, problem)
			}
		}
		c.validateRoutes(v, p+".routes", s.Routes)
		switch {
		case s.IdentitySecret != "" && s.TrustClientIdentity:
			v.Add(p+".trust_client_identity", "cannot be used with identity_secret (identities come only from signed tokens)")
		case s.IdentitySecret != "" && len(s.IdentitySecret) < minIdentitySecretLen:
			v.Add(p+".identity_secret", "is too short (at least %d bytes)", minIdentitySecretLen)
		}
		if !(s.RateLimit.PerIP > 0) {
			v.Add(p+".rate_limit.per_ip", "must be > 0")
		}
		v.atLeast(p+".rate_limit.burst", s.RateLimit.Burst, 1)
		validateEventPatterns(v, p+".events.allow", s.Events.Allow)
		validateEventPatterns(v, p+".events.deny", s.Events.Deny)
		if s.Consent != ConsentNone && s.Consent != ConsentRequired {
			v.Add(p+".consent", "%q must be %s or %s", s.Consent, ConsentRequired, ConsentNone)
		}
		c.validatePurposes(v, p+".purposes", s.Purposes)
	}
}

// maxEventPattern caps filter patterns: event names are capped at 255 by every provider.
const maxEventPattern = 255

// validateEventPatterns checks event filter patterns: non-empty, "*" only as the last
// character (a prefix), no control characters, no repeats.
func validateEventPatterns(v *Validator, path string, patterns []string) {
	seen := make(map[string]int, len(patterns))
	for i, pat := range patterns {
		at := fmt.Sprintf("%s[%d]", path, i)
		star := strings.IndexByte(pat, '*')
		switch {
		case pat == "":
			v.Add(at, "is empty: write an event name, or a prefix ending in * (\"debug_*\")")
		case len(pat) > maxEventPattern:
			v.Add(at, "is longer than %d bytes", maxEventPattern)
		case star >= 0 && star != len(pat)-1:
			v.Add(at, "%q has * before its end: * is allowed only as the last character (a prefix)", pat)
		case strings.IndexFunc(pat, unicode.IsControl) >= 0:
			v.Add(at, "must not contain control characters")
		default:
			if j, dup := seen[pat]; dup {
				v.Add(at, "%q repeats %s[%d]", pat, path, j)
			}
			seen[pat] = i
		}
	}
}

// validatePurposes checks a site's purpose overrides: keys are routes, values purpose
// names as X-Relay-Consent writes them.
func (c *Config) validatePurposes(v *Validator, path string, purposes map[string]string) {
	names := c.Providers.RouteNames()
	for _, route := range slices.Sorted(maps.Keys(purposes)) {
		at := path + "." + route
		if !slices.Contains(names, route) {
			v.Add(at, "%q is not a route (one of: %s)", route, strings.Join(names, ", "))
		}
		if p := purposes[route]; !IsPurpose(p) {
			v.Add(at, "%q must be a purpose name: 1 to %d characters of a-z 0-9 _ -", p, MaxPurposeLen)
		}
	}
}

// MaxPurposeLen caps purpose names.
const MaxPurposeLen = 64

// IsPurpose reports whether s is a valid purpose name (1 to MaxPurposeLen characters of
// a-z 0-9 _ -), the alphabet of X-Relay-Consent.
func IsPurpose(s string) bool {
	if s == "" || len(s) > MaxPurposeLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (c *Config) validateClients(v *Validator) {
	names := make(map[string]string)
	tokens := make(map[string]string)
	for i, cl := range c.Clients {
		p := fmt.Sprintf("clients[%d]", i)
		v.unique(names, p, "name", cl.Name, true)
		v.Secret(p+".token", cl.Token, minTokenLen) // reports an empty token
		if cl.Token != "" {
			v.unique(tokens, p, "token", cl.Token, false)
		}
		for j, s := range c.Sites {
			if cl.Token != "" && cl.Token == s.Key {
				// A secret token that is also a public site key is no secret.
				v.Add(p+".token", "equals sites[%d].key", j)
			}
		}
		c.validateRoutes(v, p+".routes", cl.Routes)
	}
}

// unique reports owner.field missing, or holding a value an earlier item already used;
// seen maps values to their first owner. Only public values are quoted.
func (v *Validator) unique(seen map[string]string, owner, field, value string, public bool) {
	path := owner + "." + field
	first, dup := seen[value]
	switch {
	case value == "":
		v.Add(path, "is required")
	case !dup:
		seen[value] = owner
	case public:
		v.Add(path, "%q is already used by %s", value, first)
	default:
		v.Add(path, "is already used by %s", first)
	}
}

func (c *Config) validateRoutes(v *Validator, path string, routes []string) {
	if routes != nil && len(routes) == 0 {
		v.Add(path, "is empty: list routes, or leave it out for the default")
	}
	for i, r := range routes {
		if problem := c.routeProblem(r); problem != "" {
			v.Add(fmt.Sprintf("%s[%d]", path, i), "%q %s", r, problem)
		}
	}
}

func (c *Config) validateProviders(v *Validator) {
	enabled := c.Providers.Enabled()
	if len(enabled) == 0 {
		v.Add("providers", "must enable at least one of %s", strings.Join(c.Providers.Names(), ", "))
	}
	for _, p := range enabled {
		path := "providers." + p.Name
		validateDelivery(v, path, p.Delivery)
		p.Section.Validate(v, path)
	}
}

func validateDelivery(v *Validator, path string, d *Delivery) {
	v.UpstreamURL(path+".base_url", d.BaseURL)
	if d.Workers < 1 || d.Workers > maxWorkers {
		v.Add(path+".workers", "must be between 1 and %d", maxWorkers)
	}
	if !(d.RateLimit > 0) {
		v.Add(path+".rate_limit", "must be > 0")
	} else if d.RateLimit > 1e6 {
		// The shared limiter spaces requests in whole µs.
		v.Add(path+".rate_limit", "must be at most 1e6 (requests/s)")
	}
	if d.Timeout <= 0 || d.Timeout > maxUpstreamTimeout {
		v.Add(path+".timeout", "must be > 0 and <= %s", shortDuration(maxUpstreamTimeout))
	}
	if d.VisibilityTimeout <= d.Timeout {
		v.Add(path+".visibility_timeout", "must be > timeout (a slow attempt would be taken over and sent twice)")
	}
	v.atLeast(path+".max_attempts", d.MaxAttempts, 1)
	v.positive(path+".max_age", d.MaxAge)
	v.positive(path+".backoff.base", d.Backoff.Base)
	if d.Backoff.Max < d.Backoff.Base {
		v.Add(path+".backoff.max", "must be >= backoff.base")
	}
	v.atLeast(path+".breaker.failures", d.Breaker.Failures, 1)
	v.positive(path+".breaker.open_for", d.Breaker.OpenFor)
	v.positive(path+".dead_letters.max_age", d.DeadLetters.MaxAge)
	if d.DeadLetters.MaxCount < 1 {
		v.Add(path+".dead_letters.max_count", "must be >= 1")
	}
}

// originProblem says why s is not an exact browser origin, or returns "". Browsers send
// Origin as lower-case scheme://host[:port] with the default port left out, so anything
// else could never match and only hides a typo.
func originProblem(s string) string {
	if s == "null" || s == "*" {
		return "is refused: list exact origins (sandboxed pages send null, and * would allow any site)"
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" ||
		s != u.Scheme+"://"+u.Host || strings.HasSuffix(u.Host, ":") {
		return "must be an origin (scheme://host[:port], no path)"
	}
	if strings.IndexFunc(u.Host, func(r rune) bool { return r >= 0x80 }) >= 0 {
		return "must spell the host in ASCII (punycode xn--...), as browsers send it"
	}
	if u.Host != strings.ToLower(u.Host) {
		return "must be lower-case, as browsers send it"
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "must have a port between 1 and 65535"
		}
		if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
			return "must leave out the default port, as browsers do"
		}
	}
	return ""
}

// shortDuration formats d as people write it: 5m rather than time's 5m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// IsLoopback reports whether host is localhost or a loopback IP: the only hosts an
// upstream may be reached on without TLS (local fakes in tests).
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.IsLoopback()
}

func notKeyChar(r rune) bool {
	return !(r == '_' || r == '-' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
}

// isHeaderName reports whether s is an RFC 9110 token.
func isHeaderName(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool {
		return r >= 0x7f || r <= ' ' || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r)
	}) < 0
}
