package chaos

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Provider names, as the relay and its Redis keys spell them.
const (
	ENS        = "ens"
	BannerFlex = "bannerflex"
	Linkrunner = "linkrunner"
	Brevo      = "brevo"
)

// Providers are the providers every scenario enables, in table order.
var Providers = []string{ENS, BannerFlex, Linkrunner, Brevo}

// Credentials of the generated configs: fixed, test-only.
const (
	ClientToken = "chaos-backend-token-0123456789"
	AdminToken  = "chaos-admin-token-0123456789"
	Prefix      = "chaos"
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
	args = append(args, "eventrelay/cmd/relay")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// FreeAddr returns a free 127.0.0.1:port (another process may take it before it is used;
// a relay that cannot bind fails its start loudly).
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
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
redis: {url: %q, prefix: %s, allow_unsafe: %t}
log: {level: %s}
clients:
  - {name: chaos, token: %q}
providers:
`, AdminToken, s.RedisURL, Prefix, s.AllowUnsafe, level, ClientToken)
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
		}
	}
	return b.String()
}

// ---------------------------------------------------------------------------------------
// Relay processes

// Relay is one `relay serve` process (restartable on the same addresses). Only its own
// PID is ever signalled.
type Relay struct {
	t       testing.TB
	bin     string
	cfgPath string
	logPath string
	// Ingest and Admin are its loopback listen addresses.
	Ingest, Admin string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
	starts  int
}

// NewRelay writes cfg (placeholders replaced by free loopback addresses) to a temporary
// file; Start runs it. t.Cleanup kills the process if it is still running.
func NewRelay(t testing.TB, bin, cfg string) *Relay {
	t.Helper()
	dir := t.TempDir()
	r := &Relay{t: t, bin: bin, Ingest: FreeAddr(t), Admin: FreeAddr(t),
		cfgPath: filepath.Join(dir, "relay.yaml"), logPath: filepath.Join(dir, "relay.log")}
	text := strings.NewReplacer("{{ingest}}", r.Ingest, "{{admin}}", r.Admin).Replace(cfg)
	if err := os.WriteFile(r.cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.killQuietly()
		if t.Failed() {
			t.Logf("tail of relay log %s:\n%s", r.logPath, r.LogTail(logTail))
		}
	})
	return r
}

// StartRelay is NewRelay and Start.
func StartRelay(t testing.TB, bin, cfg string) *Relay {
	t.Helper()
	r := NewRelay(t, bin, cfg)
	r.Start()
	return r
}

// Start runs the process and waits until /healthz answers 200 (at most startTimeout).
func (r *Relay) Start() {
	r.t.Helper()
	if err := r.spawn(); err != nil {
		r.t.Fatal(err)
	}
	deadline := time.Now().Add(startTimeout)
	client := &http.Client{Timeout: time.Second}
	for {
		res, err := client.Get("http://" + r.Admin + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		r.mu.Lock()
		exited := r.exited
		r.mu.Unlock()
		select {
		case <-exited:
			r.t.Fatalf("relay exited at start: %v\n%s", r.exitError(), r.LogTail(logTail))
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("relay not healthy within %s\n%s", startTimeout, r.LogTail(logTail))
		}
		time.Sleep(30 * time.Millisecond)
	}
}

func (r *Relay) spawn() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		select {
		case <-r.exited:
		default:
			return fmt.Errorf("relay (pid %d) is already running", r.cmd.Process.Pid)
		}
	}
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	r.starts++
	fmt.Fprintf(logf, "=== chaos: start %d: %s serve --config %s\n", r.starts, r.bin, r.cfgPath)
	cmd := exec.Command(r.bin, "serve", "--config", r.cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan struct{})
	r.cmd, r.exited, r.exitErr = cmd, exited, nil
	go func() {
		err := cmd.Wait()
		logf.Close()
		r.mu.Lock()
		r.exitErr = err
		r.mu.Unlock()
		close(exited)
	}()
	return nil
}

// PID is the running process's id (0 before the first start).
func (r *Relay) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Running reports whether the process is alive (paused counts as alive).
func (r *Relay) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return false
	}
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

func (r *Relay) exitError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.exitErr
}

// signal sends sig to this relay's process only.
func (r *Relay) signal(sig syscall.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return errors.New("relay not started")
	}
	return r.cmd.Process.Signal(sig)
}

// wait waits up to d for the process to exit.
func (r *Relay) wait(d time.Duration) bool {
	r.mu.Lock()
	exited := r.exited
	r.mu.Unlock()
	if exited == nil {
		return true
	}
	select {
	case <-exited:
		return true
	case <-time.After(d):
		return false
	}
}

// Kill sends SIGKILL and waits for the exit: a crash at an arbitrary moment.
func (r *Relay) Kill() {
	r.t.Helper()
	if !r.Running() {
		return
	}
	if err := r.signal(syscall.SIGKILL); err != nil {
		r.t.Fatalf("SIGKILL relay: %v", err)
	}
	if !r.wait(exitTimeout) {
		r.t.Fatalf("relay (pid %d) did not exit within %s of SIGKILL", r.PID(), exitTimeout)
	}
}

// Pause sends SIGSTOP: the process keeps its sockets but does nothing.
func (r *Relay) Pause() {
	r.t.Helper()
	if err := r.signal(syscall.SIGSTOP); err != nil {
		r.t.Fatalf("SIGSTOP relay: %v", err)
	}
}

// Resume sends SIGCONT.
func (r *Relay) Resume() {
	r.t.Helper()
	if err := r.signal(syscall.SIGCONT); err != nil {
		r.t.Fatalf("SIGCONT relay: %v", err)
	}
}

// Term sends SIGTERM and waits up to within for the exit. It returns the exit code, or
// -1 after killing a process that did not stop in time.
func (r *Relay) Term(within time.Duration) int {
	r.t.Helper()
	if err := r.signal(syscall.SIGTERM); err != nil {
		r.t.Fatalf("SIGTERM relay: %v", err)
	}
	if !r.wait(within) {
		r.Kill()
		return -1
	}
	return exitCode(r.exitError())
}

func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	default:
		return -1
	}
}

// killQuietly is the cleanup: SIGKILL (a stopped process dies too) and a bounded wait.
func (r *Relay) killQuietly() {
	if r.Running() {
		_ = r.signal(syscall.SIGKILL)
		r.wait(exitTimeout)
	}
}

// LogTail returns the last n bytes of the relay's log (every start appends to it).
func (r *Relay) LogTail(n int) string {
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Log returns the whole log.
func (r *Relay) Log() string { return r.LogTail(math.MaxInt) }

// RunRelayExpectExit runs `relay serve` with cfg and waits up to within for it to exit on
// its own (a refused start). It returns the exit code (-1: killed after within) and the
// output.
func RunRelayExpectExit(t testing.TB, bin, cfg string, within time.Duration) (int, string) {
	t.Helper()
	r := NewRelay(t, bin, cfg)
	if err := r.spawn(); err != nil {
		t.Fatal(err)
	}
	if !r.wait(within) {
		r.killQuietly()
		return -1, r.Log()
	}
	return exitCode(r.exitError()), r.Log()
}

// ---------------------------------------------------------------------------------------
// Metrics

// Sample is one Prometheus series.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Metrics is a scrape of /metrics.
type Metrics []Sample

// Metrics scrapes the relay's /metrics (2 s timeout).
func (r *Relay) Metrics() (Metrics, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	res, err := client.Get("http://" + r.Admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("/metrics: HTTP %d", res.StatusCode)
	}
	return ParseMetrics(res.Body)
}

// ParseMetrics reads the Prometheus text format (enough of it for the relay's metrics).
func ParseMetrics(rd io.Reader) (Metrics, error) {
	var out Metrics
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s := Sample{Labels: map[string]string{}}
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return nil, fmt.Errorf("bad metric line %q", line)
			}
			s.Name = line[:i]
			for _, kv := range splitLabels(line[i+1 : j]) {
				k, v, _ := strings.Cut(kv, "=")
				uq, err := strconv.Unquote(v)
				if err != nil {
					uq = strings.Trim(v, `"`)
				}
				s.Labels[k] = uq
			}
			rest = strings.TrimSpace(line[j+1:])
		} else {
			name, r, _ := strings.Cut(line, " ")
			s.Name, rest = name, strings.TrimSpace(r)
		}
		val, _, _ := strings.Cut(rest, " ")
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return nil, fmt.Errorf("bad value in %q", line)
		}
		s.Value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

// splitLabels splits `a="x",b="y,z"` at the commas outside quotes.
func splitLabels(s string) []string {
	var out []string
	inQ, esc, start := false, false, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case esc:
			esc = false
		case c == '\\':
			esc = true
		case c == '"':
			inQ = !inQ
		case c == ',' && !inQ:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	if rest := strings.TrimSpace(s[start:]); rest != "" {
		out = append(out, rest)
	}
	return out
}

// Get returns the first series named name whose labels include the given key/value
// pairs.
func (m Metrics) Get(name string, kv ...string) (float64, bool) {
outer:
	for _, s := range m {
		if s.Name != name {
			continue
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if s.Labels[kv[i]] != kv[i+1] {
				continue outer
			}
		}
		return s.Value, true
	}
	return 0, false
}

// ---------------------------------------------------------------------------------------
// Fake upstreams

// Reply is what a fake upstream answers.
type Reply struct {
	Status int
	Header map[string]string
	Body   string
	// Delay is how long the fake waits before answering (a slow upstream). It waits the
	// whole delay even when the relay hangs up first, and then still counts the reply:
	// a real upstream would have processed the request.
	Delay time.Duration
}

// Behavior decides the reply to one request; nil (or a zero Status) means the
// provider's normal success reply.
type Behavior func(h Hit) Reply

// Hit is one request a fake upstream received.
type Hit struct {
	// N is the request's index at this upstream, from 0.
	N int
	// At is when the request arrived (its body read).
	At time.Time
	// Done is when the reply was decided and written; zero while in flight.
	Done time.Time
	// Left is when the relay stopped waiting for this request, as far as the fake can
	// tell: the reply, or the relay hanging up (seen when the fake reads EOF, a little
	// late), whichever came first. Zero while it waits.
	Left time.Time
	Path string
	// IDs are the event ids found in the body (several for a batch).
	IDs []string
	// Status is the reply's status; 0 while in flight.
	Status int
	// RetryAfter is the delay the reply asked for (Retry-After or x-sib-ratelimit-reset).
	RetryAfter time.Duration
	// Gone means the relay had hung up (timed out, or died) before the reply.
	Gone bool
	// Held means the request was held by HoldNext.
	Held bool
}

// OK reports whether the upstream accepted the request (2xx).
func (h Hit) OK() bool { return h.Status >= 200 && h.Status < 300 }

// Upstream is a fake provider on 127.0.0.1 that records every request by event id.
type Upstream struct {
	Provider string
	srv      *httptest.Server

	mu      sync.Mutex
	hits    []*Hit
	behave  Behavior
	hold    *Held
	active  int // handlers running (including those whose relay hung up)
	closing chan struct{}
}

// NewUpstream starts a fake for provider; t.Cleanup closes it (releasing held requests).
func NewUpstream(t testing.TB, provider string) *Upstream {
	u := &Upstream{Provider: provider, closing: make(chan struct{})}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	u.srv.Config.ReadHeaderTimeout = 10 * time.Second
	u.srv.Start()
	t.Cleanup(func() {
		close(u.closing)
		u.srv.CloseClientConnections()
		u.srv.Close()
	})
	return u
}

// NewUpstreams starts one fake per provider.
func NewUpstreams(t testing.TB, providers ...string) map[string]*Upstream {
	out := map[string]*Upstream{}
	for _, p := range providers {
		out[p] = NewUpstream(t, p)
	}
	return out
}

// URL is the fake's base URL (http://127.0.0.1:port).
func (u *Upstream) URL() string { return u.srv.URL }

// SetBehavior replaces the reply policy (nil: always the normal success).
func (u *Upstream) SetBehavior(b Behavior) {
	u.mu.Lock()
	u.behave = b
	u.mu.Unlock()
}

// Held is a request held by HoldNext: Received yields it once it has arrived; the fake
// answers (with its behaviour) only after Release.
type Held struct {
	Received chan Hit
	release  chan struct{}
	once     sync.Once
}

// Release lets the held request be answered.
func (h *Held) Release() { h.once.Do(func() { close(h.release) }) }

// HoldNext holds the next request carrying an event id until Release (at most holdMax).
func (u *Upstream) HoldNext() *Held {
	h := &Held{Received: make(chan Hit, 1), release: make(chan struct{})}
	u.mu.Lock()
	u.hold = h
	u.mu.Unlock()
	return h
}

// normalReply is the provider's documented success.
func normalReply(provider string) Reply {
	switch provider {
	case ENS:
		return Reply{Status: 200, Body: `{"status":"success"}`}
	case Linkrunner:
		return Reply{Status: 201, Body: `{"msg":"ok","status":200,"data":null}`}
	case Brevo:
		return Reply{Status: 204}
	default:
		return Reply{Status: 200, Body: `{"ok":true}`}
	}
}

func (u *Upstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	ids := ExtractIDs(r.URL.Path, body)
	h := &Hit{At: time.Now(), Path: r.URL.Path, IDs: ids}

	u.mu.Lock()
	h.N = len(u.hits)
	u.hits = append(u.hits, h)
	behave := u.behave
	hold := u.hold
	if hold != nil && len(ids) > 0 {
		u.hold = nil
		h.Held = true
	} else {
		hold = nil
	}
	u.active++
	snapshot := *h
	u.mu.Unlock()

	// The relay waits until the reply or until it hangs up, whichever is first. The server
	// cancels the request's context when the connection closes (the body has been read,
	// so it is watching).
	var leaveOnce sync.Once
	leave := func() {
		leaveOnce.Do(func() {
			u.mu.Lock()
			h.Left = time.Now()
			u.mu.Unlock()
		})
	}
	stopWatch := context.AfterFunc(r.Context(), leave)
	defer func() {
		stopWatch()
		leave()
		u.mu.Lock()
		u.active--
		u.mu.Unlock()
	}()

	if hold != nil {
		hold.Received <- snapshot
		select {
		case <-hold.release:
		case <-u.closing:
		case <-time.After(holdMax):
		}
	}
	rep := Reply{}
	if behave != nil {
		rep = behave(snapshot)
	}
	if rep.Status == 0 {
		d := rep.Delay
		rep = normalReply(u.Provider)
		rep.Delay = d
	}
	if rep.Delay > 0 {
		t := time.NewTimer(rep.Delay)
		select {
		case <-t.C:
		case <-u.closing:
		}
		t.Stop()
	}
	var ra time.Duration
	for k, v := range rep.Header {
		if strings.EqualFold(k, "Retry-After") || strings.EqualFold(k, "x-sib-ratelimit-reset") {
			if s, err := strconv.ParseFloat(v, 64); err == nil {
				ra = time.Duration(s * float64(time.Second))
			}
		}
		w.Header().Set(k, v)
	}
	u.mu.Lock()
	h.Status, h.RetryAfter, h.Done = rep.Status, ra, time.Now()
	h.Gone = r.Context().Err() != nil
	u.mu.Unlock()
	leave()
	if rep.Body != "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(rep.Status)
	_, _ = io.WriteString(w, rep.Body)
}

// Hits returns a copy of every request so far.
func (u *Upstream) Hits() []Hit {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]Hit, len(u.hits))
	for i, h := range u.hits {
		out[i] = *h
	}
	return out
}

// Active is the number of requests still being answered (slow or held ones included).
func (u *Upstream) Active() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.active
}

// Deliveries maps every event id the upstream accepted to the times it accepted it.
func (u *Upstream) Deliveries() map[string][]time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := map[string][]time.Time{}
	for _, h := range u.hits {
		if h.Status >= 200 && h.Status < 300 {
			for _, id := range h.IDs {
				out[id] = append(out[id], h.Done)
			}
		}
	}
	return out
}

// ExtractIDs finds the event ids in an upstream request body (see the package doc).
func ExtractIDs(path string, body []byte) []string {
	var v map[string]any
	if json.Unmarshal(body, &v) != nil {
		return nil
	}
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	obj := func(m map[string]any, k string) map[string]any { o, _ := m[k].(map[string]any); return o }
	one := func(s string) []string {
		if s == "" {
			return nil
		}
		return []string{s}
	}
	switch path {
	case "/api/v1/campaigns/impression", "/api/v1/campaigns/click":
		return one(strings.TrimPrefix(str(v, "placement"), "p-"))
	case "/api/public/banner-events":
		return one(strings.TrimPrefix(str(v, "campaignId"), "bnrflx-"))
	case "/api/v1/capture-event":
		return one(str(obj(v, "event_data"), "rid"))
	case "/api/v1/capture-payment":
		return one(str(v, "payment_id"))
	case "/v3/events":
		return one(str(obj(v, "event_properties"), "rid"))
	case "/api/v2/trackEvent":
		return one(str(obj(v, "properties"), "rid"))
	case "/v3/events/batch":
		evs, _ := v["events"].([]any)
		var out []string
		for _, e := range evs {
			if m, ok := e.(map[string]any); ok {
				out = append(out, one(str(obj(m, "event_properties"), "rid"))...)
			}
		}
		return out
	}
	return nil
}

// MaxInFlight is the most requests the relay(s) had waiting at once among hits, each from
// its arrival until it Left, shortened by slack: the fake notices a hang-up only when it
// reads EOF, which may come a few milliseconds after the relay's next request. A request
// still waiting counts until now.
func MaxInFlight(hits []Hit, slack time.Duration) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	now := time.Now()
	for _, h := range hits {
		end := h.Left
		if end.IsZero() {
			end = now
		}
		end = end.Add(-slack)
		if !end.After(h.At) {
			continue
		}
		edges = append(edges, edge{h.At, 1}, edge{end, -1})
	}
	// Ends before starts at the same instant: touching intervals do not overlap.
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at.Equal(edges[j].at) {
			return edges[i].delta < edges[j].delta
		}
		return edges[i].at.Before(edges[j].at)
	})
	best, cur := 0, 0
	for _, e := range edges {
		cur += e.delta
		best = max(best, cur)
	}
	return best
}

// MaxRequestsPerWindow is the most requests that arrived at u within any window of
// length w (a sliding window over arrival times), counting only hits that arrived in
// [from, to).
func MaxRequestsPerWindow(hits []Hit, from, to time.Time, w time.Duration) int {
	var ts []time.Time
	for _, h := range hits {
		if !h.At.Before(from) && h.At.Before(to) {
			ts = append(ts, h.At)
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	best, j := 0, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= w {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// ---------------------------------------------------------------------------------------
// Load driver

// Route is one ingest route with a body that carries the event id where the upstream
// can see it.
type Route struct {
	Name     string // "ens/click"
	Provider string
	Body     func(id string) string
}

// AllRoutes are the routes of the four providers, each with its id carrier.
var AllRoutes = []Route{
	{"ens/click", ENS, func(id string) string {
		return `{"campaignId":7,"placement":"p-` + id + `"}`
	}},
	{"bannerflex/banner-events", BannerFlex, func(id string) string {
		return `{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","event":"click","campaignId":"bnrflx-` + id + `"}`
	}},
	{"linkrunner/capture-event", Linkrunner, func(id string) string {
		return `{"event_name":"chaos_event","event_data":{"rid":"` + id + `","amount":1.5},"user_id":"chaos-user-1"}`
	}},
	{"brevo/events", Brevo, func(id string) string {
		return `{"event_name":"chaos_event","identifiers":{"email_id":"chaos@example.com"},"event_properties":{"rid":"` + id + `"}}`
	}},
	{"ens/impression", ENS, func(id string) string {
		return `{"campaignId":7,"placement":"p-` + id + `","location":"US","device":"mobile"}`
	}},
	{"bannerflex/banner-events", BannerFlex, func(id string) string {
		return `{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","event":"impression","campaignId":"bnrflx-` + id + `"}`
	}},
	// No payment_id: the relay fills in its event id (Guarantee 4).
	{"linkrunner/capture-payment", Linkrunner, func(string) string {
		return `{"user_id":"chaos-user-1","amount":9.99,"type":"FIRST_PAYMENT"}`
	}},
	{"brevo/track-event", Brevo, func(id string) string {
		return `{"email":"chaos@example.com","event":"chaos_event","properties":{"rid":"` + id + `"}}`
	}},
}

// RoutesOf returns the routes of the given providers.
func RoutesOf(providers ...string) []Route {
	var out []Route
	for _, r := range AllRoutes {
		for _, p := range providers {
			if r.Provider == p {
				out = append(out, r)
			}
		}
	}
	return out
}

// Attempt is one ingest request the driver made.
type Attempt struct {
	ID     string
	Target string
	Start  time.Time
	Took   time.Duration
	// Status is the HTTP status, 0 when the request failed (connection refused, reset,
	// client timeout).
	Status int
}

// Driver sends a bounded, paced load of events with unique ids through the relays'
// ingest, resending after anything but a 202 with the same Idempotency-Key, and writes
// every 202 to the Ledger.
type Driver struct {
	Ledger  *Ledger
	Routes  []Route
	Targets []string
	// Rate is events per second, all routes together. Default 60.
	Rate float64
	// Workers bounds the events in flight. Default 6.
	Workers int
	// GiveUp bounds the resends of one event (then it is recorded as not accepted).
	// Default 60 s.
	GiveUp time.Duration
	// ClientTimeout bounds one ingest request. Default 3 s.
	ClientTimeout time.Duration

	tag        string
	clientOnce sync.Once
	client     *http.Client
	seq        atomic.Int64
	cancel     context.CancelFunc
	abort      chan struct{}
	aborted    sync.Once
	wg         sync.WaitGroup

	mu       sync.Mutex
	attempts []Attempt
}

// NewDriver returns a Driver with defaults and a random id tag; t.Cleanup aborts it.
func NewDriver(t testing.TB, l *Ledger, targets []string, routes []Route) *Driver {
	var b [3]byte
	_, _ = rand.Read(b[:])
	d := &Driver{Ledger: l, Routes: routes, Targets: targets, Rate: 60, Workers: 6, GiveUp: 60 * time.Second,
		ClientTimeout: 3 * time.Second, tag: "c" + hex.EncodeToString(b[:]), abort: make(chan struct{})}
	t.Cleanup(d.Abort)
	return d
}

func (d *Driver) httpClient() *http.Client {
	d.clientOnce.Do(func() {
		d.client = &http.Client{
			Timeout: d.ClientTimeout,
			Transport: &http.Transport{
				Proxy:               nil,
				DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
				MaxIdleConnsPerHost: d.Workers + 2,
				IdleConnTimeout:     5 * time.Second,
			},
		}
	})
	return d.client
}

// Start begins sending at Rate with Workers concurrent events until Stop.
func (d *Driver) Start() {
	d.httpClient()
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	lim := rate.NewLimiter(rate.Limit(d.Rate), 1)
	for range d.Workers {
		d.wg.Go(func() {
			for ctx.Err() == nil {
				if lim.Wait(ctx) != nil {
					return
				}
				n := d.seq.Add(1)
				d.Send(d.Routes[int(n-1)%len(d.Routes)], d.ID(n))
			}
		})
	}
}

// ID is the id of the n-th event.
func (d *Driver) ID(n int64) string { return fmt.Sprintf("%s-%06d", d.tag, n) }

// NextID reserves an id outside the paced load (for events a test sends itself).
func (d *Driver) NextID() string { return d.ID(d.seq.Add(1)) }

// Stop stops starting new events and waits for those in flight to be accepted or given
// up (bounded by GiveUp plus the client timeout).
func (d *Driver) Stop() {
	if d.cancel != nil {
		d.cancel()
	}
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d.GiveUp + d.ClientTimeout + 5*time.Second):
		d.Abort()
		<-done
	}
}

// Abort makes every event in flight give up at once (test cleanup).
func (d *Driver) Abort() {
	d.aborted.Do(func() { close(d.abort) })
	if d.cancel != nil {
		d.cancel()
	}
}

// Send posts one event until it is accepted, refused for good (4xx other than 408/429) or
// GiveUp passes, and records the outcome in the ledger. It returns the last status.
func (d *Driver) Send(r Route, id string) int {
	client := d.httpClient()
	body := r.Body(id)
	deadline := time.Now().Add(d.GiveUp)
	target := int(hashID(id))
	for try := 0; ; try++ {
		addr := d.Targets[(target+try)%len(d.Targets)]
		start := time.Now()
		status, retryAfter := d.post(client, addr, r.Name, id, body)
		d.mu.Lock()
		d.attempts = append(d.attempts, Attempt{ID: id, Target: addr, Start: start, Took: time.Since(start), Status: status})
		d.mu.Unlock()
		switch {
		case status == 202:
			d.Ledger.Accept(r.Provider, r.Name, id, start, time.Now())
			return status
		case status >= 400 && status < 500 && status != 408 && status != 429:
			d.Ledger.Refuse(r.Provider, id, fmt.Sprintf("HTTP %d", status))
			return status
		}
		wait := time.Duration(min(try+1, 5)) * 100 * time.Millisecond
		if retryAfter > 0 {
			wait = min(retryAfter, time.Second)
		}
		wait += time.Duration(mrand.Int64N(int64(50 * time.Millisecond)))
		if time.Now().Add(wait).After(deadline) {
			d.Ledger.Refuse(r.Provider, id, fmt.Sprintf("gave up after %d tries (last status %d)", try+1, status))
			return status
		}
		select {
		case <-time.After(wait):
		case <-d.abort:
			d.Ledger.Refuse(r.Provider, id, "aborted")
			return status
		}
	}
}

func (d *Driver) post(client *http.Client, addr, route, id, body string) (int, time.Duration) {
	req, err := http.NewRequest("POST", "http://"+addr+"/v1/"+route, strings.NewReader(body))
	if err != nil {
		return 0, 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+ClientToken)
	req.Header.Set("Idempotency-Key", id)
	res, err := client.Do(req)
	if err != nil {
		return 0, 0
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	var ra time.Duration
	if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && s > 0 {
		ra = time.Duration(s) * time.Second
	}
	return res.StatusCode, ra
}

func hashID(id string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return h
}

// Attempts returns every ingest request made so far.
func (d *Driver) Attempts() []Attempt {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Attempt(nil), d.attempts...)
}

// Sent is the number of events started so far.
func (d *Driver) Sent() int64 { return d.seq.Load() }

// ---------------------------------------------------------------------------------------
// Redis inspection

// Inspector reads the relay's Redis keys (prefix Prefix) for the checker and the bounds.
type Inspector struct {
	c *redis.Client
}

// NewInspector connects to addr (host:port); t.Cleanup closes it.
func NewInspector(t testing.TB, addr string) *Inspector {
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DialTimeout: 500 * time.Millisecond,
		ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1, PoolSize: 4})
	t.Cleanup(func() { _ = c.Close() })
	return &Inspector{c: c}
}

func key(provider, suffix string) string { return Prefix + ":{" + provider + "}:" + suffix }

// DeadIDs maps the event ids in provider's dead-letter stream to their reasons.
func (in *Inspector) DeadIDs(ctx context.Context, provider string) (map[string]string, error) {
	out := map[string]string{}
	start := "-"
	for range 1000 { // bounded: 1000 pages of 1000
		msgs, err := in.c.XRangeN(ctx, key(provider, "dead"), start, "+", 1000).Result()
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			id, _ := m.Values["id"].(string)
			reason, _ := m.Values["reason"].(string)
			out[id] = reason
		}
		if len(msgs) < 1000 {
			return out, nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
	return out, errors.New("dead-letter stream too long to read")
}

// Backlog is provider's undelivered entries in Redis: stream (ready and pending) plus
// retry set.
func (in *Inspector) Backlog(ctx context.Context, provider string) (int64, error) {
	pipe := in.c.Pipeline()
	xl := pipe.XLen(ctx, key(provider, "events"))
	zc := pipe.ZCard(ctx, key(provider, "retry"))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, err
	}
	return xl.Val() + zc.Val(), nil
}

// HeldBy is the number of entries pending (read, not acked) under the consumers of the
// relay process pid, over the given providers: what that process held when it died or
// stalled. Consumer names are "<host>-<pid>-<random>-w<N>" (and "-r").
func (in *Inspector) HeldBy(ctx context.Context, pid int, providers ...string) (int64, error) {
	var n int64
	mark := fmt.Sprintf("-%d-", pid)
	for _, p := range providers {
		x, err := in.c.XPending(ctx, key(p, "events"), "relay").Result()
		if err != nil {
			if strings.Contains(err.Error(), "NOGROUP") || errors.Is(err, redis.Nil) {
				continue
			}
			return 0, err
		}
		for consumer, c := range x.Consumers {
			if strings.Contains(consumer, mark) {
				n += c
			}
		}
	}
	return n, nil
}

// PendingIDs returns the entries pending under the consumers of the relay process pid,
// as "provider/stream id" → event id.
func (in *Inspector) PendingIDs(ctx context.Context, pid int, providers ...string) (map[string]string, error) {
	out := map[string]string{}
	mark := fmt.Sprintf("-%d-", pid)
	for _, p := range providers {
		stream := key(p, "events")
		x, err := in.c.XPending(ctx, stream, "relay").Result()
		if err != nil {
			if strings.Contains(err.Error(), "NOGROUP") || errors.Is(err, redis.Nil) {
				continue
			}
			return nil, err
		}
		for consumer, n := range x.Consumers {
			if !strings.Contains(consumer, mark) || n == 0 {
				continue
			}
			ps, err := in.c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: "relay",
				Start: "-", End: "+", Count: n + 100, Consumer: consumer}).Result()
			if err != nil {
				return nil, err
			}
			for _, e := range ps {
				id := ""
				if msgs, err := in.c.XRange(ctx, stream, e.ID, e.ID).Result(); err == nil && len(msgs) == 1 {
					id, _ = msgs[0].Values["id"].(string)
				}
				out[p+"/"+e.ID] = id
			}
		}
	}
	return out, nil
}

// Client is the underlying Redis client.
func (in *Inspector) Client() *redis.Client { return in.c }

// ---------------------------------------------------------------------------------------
// Small helpers

// WaitFor polls cond every 25 ms until it holds or d passes; it reports whether it held.
func WaitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Percentile returns the p-th percentile (0..100) of ds, 0 for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}
