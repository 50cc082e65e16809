package queue

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/config"
)

// Client settings the relay relies on, set explicitly because go-redis defaults move
// between versions.
const (
	// maxRetries is 1: go-redis retries a command after io.EOF or a read timeout even
	// when it was already written, so more retries only stretch the wait. Enqueue
	// pipelines, where a re-send would write an event without a marker twice, are never
	// retried (onceCmd).
	maxRetries  = 1
	dialTimeout = time.Second
	// readTimeout also bounds WAIT (maxWait), hence min_replicas_acked.
	readTimeout  = 2 * time.Second
	writeTimeout = 2 * time.Second
	poolTimeout  = 2 * time.Second
	// startTimeout bounds PING and the durability checks at start.
	startTimeout = 5 * time.Second
)

// ErrUnsafeRedis means the Redis server may lose accepted events: AOF off, an evicting
// maxmemory-policy, or settings the relay could not read. The relay refuses to start on
// it unless redis.allow_unsafe is true.
var ErrUnsafeRedis = errors.New("queue: redis may lose accepted events")

// Conn is the relay's connection to Redis: the real server(s) behind redis.url, or an
// embedded in-memory miniredis when redis.url is empty.
type Conn struct {
	// Client is shared by ingest, forwarders and admin. Single node, Sentinel or Cluster.
	Client redis.UniversalClient
	// Addr names the server(s) for logs and errors; it never holds credentials.
	Addr string
	// Embedded is true for the in-memory development queue.
	Embedded bool

	mini *miniredis.Miniredis
}

// Open connects to cfg.URL and checks at start that Redis answers PING (within 5 s) and
// keeps what it accepts: `INFO persistence` must show aof_enabled:1 and `INFO memory`
// maxmemory_policy:noeviction. On a failed check it returns an error wrapping
// ErrUnsafeRedis that names the fix, or with cfg.AllowUnsafe logs a warning and goes on.
// An INFO the server refuses (ACL) counts as failed: durability unknown.
//
// cfg.URL forms:
//
//	redis://[user:pass@]host:port[/db][?client_name=N]     single node (rediss:// for TLS)
//	redis+sentinel://[user:pass@]host1:port,host2:port[/db]?master=NAME[&sentinel_username=U&sentinel_password=P]
//	redis+cluster://[user:pass@]host1:port,host2:port
//
// In the Sentinel form user:pass authenticate to the Redis master, the sentinel_* query
// parameters to the Sentinels. rediss+sentinel:// and rediss+cluster:// use TLS. Other
// query parameters are refused: the relay sets its own timeouts and retries.
//
// An empty cfg.URL starts an embedded miniredis (nothing is durable; a loud warning is
// logged). Close the Conn to release the client and the embedded server.
func Open(ctx context.Context, cfg config.Redis, log *zap.Logger) (*Conn, error) {
	if cfg.URL == "" {
		return openEmbedded(ctx, cfg, log)
	}
	opts, addr, err := parseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("redis.url: %w", err)
	}
	setClientOptions(opts, cfg)
	c := &Conn{Client: redis.NewUniversalClient(opts), Addr: addr}
	if err := c.checkStart(ctx, cfg, log); err != nil {
		_ = c.Client.Close()
		return nil, err
	}
	return c, nil
}

// Ping reports whether Redis answers (for /readyz).
func (c *Conn) Ping(ctx context.Context) error {
	if err := c.Client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w: redis at %s: %w", ErrUnavailable, c.Addr, err)
	}
	return nil
}

// Close closes the client and stops the embedded server, if any.
func (c *Conn) Close() error {
	err := c.Client.Close()
	if c.mini != nil {
		c.mini.Close()
	}
	return err
}

func openEmbedded(ctx context.Context, cfg config.Redis, log *zap.Logger) (*Conn, error) {
	m, err := miniredis.Run()
	if err != nil {
		return nil, fmt.Errorf("queue: start the embedded in-memory queue: %w", err)
	}
	opts := &redis.UniversalOptions{Addrs: []string{m.Addr()}}
	setClientOptions(opts, cfg)
	c := &Conn{Client: redis.NewUniversalClient(opts), Addr: "embedded:" + m.Addr(), Embedded: true, mini: m}
	pctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := c.Ping(pctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	log.Warn("EMBEDDED IN-MEMORY QUEUE: events are NOT durable and are lost on exit; set redis.url for production",
		zap.String("addr", c.Addr))
	return c, nil
}

// setClientOptions sets every client option the relay relies on.
func setClientOptions(o *redis.UniversalOptions, cfg config.Redis) {
	o.MaxRetries = maxRetries
	o.MinRetryBackoff = 8 * time.Millisecond
	o.MaxRetryBackoff = 256 * time.Millisecond
	o.DialTimeout = dialTimeout
	// One dial per command attempt: go-redis's default (5 dials, 100 ms apart) would hold
	// an enqueue for the whole enqueue timeout when Redis is down, instead of failing fast.
	o.DialerRetries = 1
	o.ReadTimeout = readTimeout
	o.WriteTimeout = writeTimeout
	o.PoolTimeout = poolTimeout
	o.PoolSize = cfg.PoolSize
	// Deadlines of the caller's context bound each command: that is how an enqueue gives
	// up at redis.enqueue_timeout on a stalled server.
	o.ContextTimeoutEnabled = true
	// RESP2: the widest server and proxy support; the relay needs nothing from RESP3.
	o.Protocol = 2
	// Maintenance notifications are a Redis Enterprise feature: skip the extra handshake.
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
}

// checkStart pings and runs the durability checks.
func (c *Conn) checkStart(ctx context.Context, cfg config.Redis, log *zap.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := c.Client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w: redis at %s did not answer PING within %s (is it running, and is redis.url right?): %w",
			ErrUnavailable, c.Addr, startTimeout, err)
	}
	problems := c.durabilityProblems(ctx)
	if len(problems) == 0 {
		log.Info("redis ready", zap.String("addr", c.Addr))
		return nil
	}
	if cfg.AllowUnsafe {
		log.Warn("REDIS MAY LOSE ACCEPTED EVENTS: starting anyway because redis.allow_unsafe is true",
			zap.String("addr", c.Addr), zap.Strings("problems", problems))
		return nil
	}
	return fmt.Errorf("%w: redis at %s: %s; fix the server, or set redis.allow_unsafe: true (development only)",
		ErrUnsafeRedis, c.Addr, strings.Join(problems, "; "))
}

// durabilityProblems checks every master (all of them in a cluster) and describes each
// problem with its fix.
func (c *Conn) durabilityProblems(ctx context.Context) []string {
	cc, ok := c.Client.(*redis.ClusterClient)
	if !ok {
		return nodeProblems(ctx, c.Client, "")
	}
	var (
		mu       sync.Mutex
		problems []string
	)
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		p := nodeProblems(ctx, node, node.Options().Addr+": ")
		mu.Lock()
		problems = append(problems, p...)
		mu.Unlock()
		return nil
	})
	if err != nil {
		problems = append(problems, "cannot reach every cluster master to check it: "+err.Error())
	}
	return problems
}

func nodeProblems(ctx context.Context, node redis.Cmdable, where string) []string {
	var problems []string
	pers, err := node.Info(ctx, "persistence").Result()
	if err != nil {
		return []string{where + "cannot read INFO persistence (" + err.Error() +
			"), so durability is unknown; allow INFO for the relay's user, with `appendonly yes` and `maxmemory-policy noeviction`"}
	}
	switch v, _ := infoField(pers, "aof_enabled"); v {
	case "1":
	case "":
		problems = append(problems, where+"INFO persistence has no aof_enabled; make sure of `appendonly yes`")
	default:
		problems = append(problems, where+"appendonly is off (aof_enabled:"+v+"), so a Redis crash loses accepted events; set `appendonly yes`")
	}
	mem, err := node.Info(ctx, "memory").Result()
	if err != nil {
		return append(problems, where+"cannot read INFO memory ("+err.Error()+
			"), so the eviction policy is unknown; allow INFO for the relay's user, with `maxmemory-policy noeviction`")
	}
	switch v, _ := infoField(mem, "maxmemory_policy"); v {
	case "noeviction":
	case "":
		problems = append(problems, where+"INFO memory has no maxmemory_policy; make sure of `maxmemory-policy noeviction`")
	default:
		problems = append(problems, where+"maxmemory-policy is "+v+", so Redis may evict queued events; set `maxmemory-policy noeviction`")
	}
	return problems
}

// infoField finds "name:value" in an INFO reply.
func infoField(info, name string) (string, bool) {
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimRight(line, "\r\n"), ":")
		if ok && k == name {
			return v, true
		}
	}
	return "", false
}

// parseURL turns redis.url into client options and a credential-free address for
// messages. Errors never quote the URL: it may hold a password.
func parseURL(raw string) (*redis.UniversalOptions, string, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, "", errors.New("want redis://, rediss://, redis+sentinel:// or redis+cluster://")
	}
	switch scheme {
	case "redis", "rediss":
		return parseSingle(raw)
	case "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster":
		return parseMulti(scheme, rest)
	default:
		return nil, "", fmt.Errorf("unknown scheme %q: want redis://, rediss://, redis+sentinel:// or redis+cluster://", scheme)
	}
}

func parseSingle(raw string) (*redis.UniversalOptions, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error quotes the whole URL, password included
		}
		return nil, "", err
	}
	if err := onlyQuery(u.Query(), "client_name"); err != nil {
		return nil, "", err
	}
	o, err := redis.ParseURL(raw)
	if err != nil {
		return nil, "", err
	}
	return &redis.UniversalOptions{
		Addrs:      []string{o.Addr},
		Username:   o.Username,
		Password:   o.Password,
		DB:         o.DB,
		TLSConfig:  o.TLSConfig,
		ClientName: o.ClientName,
	}, o.Addr, nil
}

// parseMulti parses the Sentinel and Cluster forms by hand: net/url rejects a host list.
func parseMulti(scheme, rest string) (*redis.UniversalOptions, string, error) {
	rest, rawQuery, _ := strings.Cut(rest, "?")
	hostPart, path, _ := strings.Cut(rest, "/")
	o := &redis.UniversalOptions{}
	if i := strings.LastIndex(hostPart, "@"); i >= 0 {
		user, pass, _ := strings.Cut(hostPart[:i], ":")
		var err1, err2 error
		o.Username, err1 = url.PathUnescape(user)
		o.Password, err2 = url.PathUnescape(pass)
		if err1 != nil || err2 != nil {
			return nil, "", errors.New("bad %-escape in user:password")
		}
		hostPart = hostPart[i+1:]
	}
	for h := range strings.SplitSeq(hostPart, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" || port == "" {
			return nil, "", fmt.Errorf("bad host %q: want host:port, comma-separated", h)
		}
		o.Addrs = append(o.Addrs, net.JoinHostPort(host, port))
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, "", fmt.Errorf("bad query: %w", err)
	}
	if strings.HasPrefix(scheme, "rediss+") {
		// No ServerName: crypto/tls takes it from each host's address.
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	o.ClientName = q.Get("client_name")
	hosts := strings.Join(o.Addrs, ",")

	if strings.HasSuffix(scheme, "+cluster") {
		if err := onlyQuery(q, "client_name"); err != nil {
			return nil, "", err
		}
		if path != "" && path != "0" {
			return nil, "", errors.New("redis cluster has only database 0")
		}
		o.IsClusterMode = true
		return o, "cluster " + hosts, nil
	}

	if err := onlyQuery(q, "client_name", "master", "sentinel_username", "sentinel_password"); err != nil {
		return nil, "", err
	}
	o.MasterName = q.Get("master")
	if o.MasterName == "" {
		return nil, "", errors.New("redis+sentinel:// needs ?master=NAME")
	}
	o.SentinelUsername = q.Get("sentinel_username")
	o.SentinelPassword = q.Get("sentinel_password")
	if path != "" {
		db, err := strconv.Atoi(path)
		if err != nil || db < 0 {
			return nil, "", fmt.Errorf("bad database number %q", path)
		}
		o.DB = db
	}
	return o, "sentinel master " + o.MasterName + " via " + hosts, nil
}

// onlyQuery refuses query parameters other than allowed.
func onlyQuery(q url.Values, allowed ...string) error {
	for k := range q {
		if !slices.Contains(allowed, k) {
			return fmt.Errorf("unsupported query parameter %q (allowed: %s); the relay sets timeouts and retries itself",
				k, strings.Join(allowed, ", "))
		}
	}
	return nil
}
