package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/internal/redistest"
	"github.com/eventrelay/relay/relay/admin"
	"github.com/eventrelay/relay/relay/queue"
)

const cliToken = "cli-admin-token-0123456789abcdef"

// closedBreaker is a breaker that is always closed.
type closedBreaker struct{}

func (closedBreaker) BreakerState() gobreaker.State { return gobreaker.StateClosed }

var _ admin.BreakerStater = closedBreaker{}

// cliRelay is a real Redis and an in-process admin server, and a config file pointing
// the CLI at it.
type cliRelay struct {
	t    *testing.T
	rdb  *redis.Client
	keys queue.Keys
	port string
	dir  string
}

func startCLIRelay(t *testing.T) *cliRelay {
	t.Helper()
	rs := redistest.Start(t, redistest.Options{})
	opt, err := redis.ParseURL(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	r := &cliRelay{t: t, rdb: rdb, keys: queue.Keys{Prefix: "cli"}, dir: t.TempDir()}
	srv := admin.New(admin.Options{Gatherer: prometheus.NewRegistry(), Log: zap.NewNop(), Client: rdb, Keys: r.keys,
		Providers: []string{"bannerflex", "ens"}, Breakers: map[string]admin.BreakerStater{"ens": closedBreaker{}},
		Token: cliToken})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, r.port, _ = net.SplitHostPort(ln.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("admin server: %v", err)
		}
	})
	return r
}

// config writes a relay configuration whose admin section is listen and token.
func (r *cliRelay) config(listen, token string) string {
	r.t.Helper()
	path := filepath.Join(r.dir, fmt.Sprintf("relay-%d.yaml", time.Now().UnixNano()))
	cfg := fmt.Sprintf(`
admin: {listen: %q, token: %q}
redis: {url: "redis://127.0.0.1:1/0", prefix: cli}
providers:
  bannerflex: {}
  ens: {api_key: ens-key-0123}
`, listen, token)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		r.t.Fatal(err)
	}
	return path
}

// good is a configuration that reaches the admin server with the right token; the
// listen address has no host, as in many deployments (":9090").
func (r *cliRelay) good() string { return r.config(":"+r.port, cliToken) }

// relay runs the CLI in-process.
func relayCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// addDead appends n dead letters to provider's dead-letter stream and returns their ids.
func (r *cliRelay) addDead(provider string, n int, reason string) []string {
	r.t.Helper()
	ctx := context.Background()
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, n)
	for i := range cmds {
		cmds[i] = pipe.XAdd(ctx, &redis.XAddArgs{Stream: r.keys.Dead(provider), Values: []any{
			"id", fmt.Sprintf("evt-%d", i), "route", provider + "/click", "body", `{"campaignId":1}`,
			"at", strconv.FormatInt(time.Now().UnixMilli(), 10), "ip", "", "ua", "", "country", "", "customer", "", "src", "shop",
			"attempts", "1", "status", "400", "error", "HTTP 400:\tunknown\ncampaign", "reason", reason,
			"dead_at", strconv.FormatInt(time.Now().UnixMilli(), 10), "stream_id", "1-0"}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		r.t.Fatal(err)
	}
	ids := make([]string, n)
	for i, c := range cmds {
		ids[i] = c.Val()
	}
	return ids
}

func (r *cliRelay) xlen(key string) int64 {
	r.t.Helper()
	n, err := r.rdb.XLen(context.Background(), key).Result()
	if err != nil {
		r.t.Fatal(err)
	}
	return n
}

func TestCLIStatusTable(t *testing.T) {
	r := startCLIRelay(t)
	r.addDead("ens", 3, "permanent")
	ctx := context.Background()
	for range 2 {
		r.rdb.XAdd(ctx, &redis.XAddArgs{Stream: r.keys.Events("ens"), Values: []any{"id", "e", "route", "ens/click",
			"body", "{}", "at", strconv.FormatInt(time.Now().Add(-95*time.Second).UnixMilli(), 10)}})
	}
	now, _ := r.rdb.Time(ctx).Result()
	r.rdb.HSet(ctx, r.keys.Stats("ens", now.Unix()/60), "delivered", 7, "retried", 2, "dead", 1)

	code, out, errOut := relayCLI(t, "status", "--config", r.good())
	if code != 0 {
		t.Fatalf("status: exit %d\n%s%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("status output:\n%s", out)
	}
	head := strings.Fields(lines[0])
	wantHead := []string{"PROVIDER", "BREAKER", "READY", "PENDING", "RETRY", "DEAD", "OLDEST", "DELIVERED/1m", "RETRIED/1m", "DEAD/1m"}
	if strings.Join(head, " ") != strings.Join(wantHead, " ") {
		t.Errorf("header %q", lines[0])
	}
	if bf := strings.Fields(lines[1]); strings.Join(bf, " ") != "bannerflex unknown 0 0 0 0 - 0 0 0" {
		t.Errorf("bannerflex row %q", lines[1])
	}
	ens := strings.Fields(lines[2])
	if len(ens) != 10 || ens[0] != "ens" || ens[1] != "closed" || ens[2] != "2" || ens[3] != "0" || ens[4] != "0" ||
		ens[5] != "3" || !strings.HasPrefix(ens[6], "1m3") || ens[7] != "7" || ens[8] != "2" || ens[9] != "1" {
		t.Errorf("ens row %q", lines[2])
	}
	// Aligned: every column starts at the same offset on every line.
	for _, l := range lines[1:] {
		if got, want := cellStarts(l), cellStarts(lines[0]); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("columns not aligned (%v vs %v):\n%s", got, want, out)
		}
	}
}

// cellStarts are the offsets where the cells of a table line start.
func cellStarts(line string) []int {
	var out []int
	for i := range line {
		if line[i] != ' ' && (i == 0 || line[i-1] == ' ') {
			out = append(out, i)
		}
	}
	return out
}

func TestCLIDLQListReplayPurge(t *testing.T) {
	r := startCLIRelay(t)
	ids := r.addDead("ens", 3, "permanent")
	cfg := r.good()

	code, out, errOut := relayCLI(t, "dlq", "list", "--config", cfg, "--provider", "ens", "--limit", "2")
	if code != 0 {
		t.Fatalf("list: exit %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "STREAM ID") || !strings.HasPrefix(lines[1], ids[2]) ||
		!strings.HasPrefix(lines[2], ids[1]) || lines[3] != "2 of 3 dead letters of ens, newest first" {
		t.Errorf("list output:\n%s", out)
	}
	if !strings.Contains(lines[1], "permanent") || !strings.Contains(lines[1], "HTTP 400: unknown campaign") ||
		!strings.Contains(lines[1], "evt-2") || !strings.Contains(lines[1], "ens/click") {
		t.Errorf("list row %q", lines[1])
	}

	code, out, _ = relayCLI(t, "dlq", "replay", "--config", cfg, "--provider", "ens", "--id", ids[0], "--id", ids[1])
	if code != 0 || out != "replayed 2 dead letters of ens\n" {
		t.Errorf("replay by id: exit %d %q", code, out)
	}
	code, out, _ = relayCLI(t, "dlq", "replay", "--config", cfg, "--provider", "ens", "--id", ids[0])
	if code != 0 || !strings.Contains(out, "replayed 0 dead letters of ens; 1 already gone") {
		t.Errorf("replay again: exit %d %q", code, out)
	}
	if n := r.xlen(r.keys.Events("ens")); n != 2 {
		t.Errorf("events after replays: %d, want 2", n)
	}

	code, out, _ = relayCLI(t, "dlq", "purge", "--config", cfg, "--provider", "ens", "--id", ids[2])
	if code != 0 || out != "purged 1 dead letters of ens\n" {
		t.Errorf("purge by id: exit %d %q", code, out)
	}
	code, out, _ = relayCLI(t, "dlq", "list", "--config", cfg, "--provider", "ens")
	if code != 0 || out != "no dead letters for ens\n" {
		t.Errorf("empty list: exit %d %q", code, out)
	}
}

func TestCLIPurgeAllNeedsYes(t *testing.T) {
	r := startCLIRelay(t)
	r.addDead("ens", 4, "max_attempts")
	cfg := r.good()
	code, out, errOut := relayCLI(t, "dlq", "purge", "--config", cfg, "--provider", "ens")
	if code != 2 || out != "" || !strings.Contains(errOut, "--yes") {
		t.Errorf("purge all without --yes: exit %d %q %q", code, out, errOut)
	}
	if n := r.xlen(r.keys.Dead("ens")); n != 4 {
		t.Fatalf("refused purge deleted something: %d left", n)
	}
	code, out, _ = relayCLI(t, "dlq", "purge", "--config", cfg, "--provider", "ens", "--yes")
	if code != 0 || out != "purged 4 dead letters of ens\n" || r.xlen(r.keys.Dead("ens")) != 0 {
		t.Errorf("purge all --yes: exit %d %q", code, out)
	}
}

func TestCLIReplayAllShowsProgress(t *testing.T) {
	r := startCLIRelay(t)
	r.addDead("ens", 1100, "permanent")
	code, out, errOut := relayCLI(t, "dlq", "replay", "--config", r.good(), "--provider", "ens")
	want := "replayed 500/1100\nreplayed 1000/1100\nreplayed 1100/1100\nreplayed 1100 dead letters of ens\n"
	if code != 0 || out != want {
		t.Errorf("replay all: exit %d\n%s%s\nwant\n%s", code, out, errOut, want)
	}
	if ev, dead := r.xlen(r.keys.Events("ens")), r.xlen(r.keys.Dead("ens")); ev != 1100 || dead != 0 {
		t.Errorf("events %d, dead %d", ev, dead)
	}
	// Nothing left: a second run replays nothing.
	code, out, _ = relayCLI(t, "dlq", "replay", "--config", r.good(), "--provider", "ens")
	if code != 0 || out != "replayed 0 dead letters of ens\n" || r.xlen(r.keys.Events("ens")) != 1100 {
		t.Errorf("second replay all: exit %d %q", code, out)
	}
}

func TestCLIErrors(t *testing.T) {
	r := startCLIRelay(t)
	// Nothing listens on a port just freed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, closed, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	for _, args := range [][]string{
		{"status"}, {"dlq", "list", "--provider", "ens"}, {"dlq", "replay", "--provider", "ens"},
		{"dlq", "purge", "--provider", "ens", "--yes"},
	} {
		code, _, errOut := relayCLI(t, append(args, "--config", r.config("0.0.0.0:"+closed, cliToken))...)
		want := "cannot reach the relay's admin API at http://127.0.0.1:" + closed + ": is `relay serve` running?"
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("%v against nothing: exit %d %q", args, code, errOut)
		}
		code, _, errOut = relayCLI(t, append(args, "--config", r.config(":"+r.port, "wrong-token-0123456789abcdef"))...)
		if code != 1 || !strings.Contains(errOut, "admin.token does not match the running relay's") {
			t.Errorf("%v with a wrong token: exit %d %q", args, code, errOut)
		}
	}
	code, _, errOut := relayCLI(t, "dlq", "list", "--config", r.good(), "--provider", "nope")
	if code != 1 || !strings.Contains(errOut, `unknown provider "nope"`) {
		t.Errorf("unknown provider: exit %d %q", code, errOut)
	}
	code, _, errOut = relayCLI(t, "dlq", "replay", "--config", r.good(), "--provider", "ens", "--id", "not-an-id")
	if code != 1 || !strings.Contains(errOut, "not a stream id") {
		t.Errorf("bad id: exit %d %q", code, errOut)
	}
	code, _, errOut = relayCLI(t, "status", "--config", filepath.Join(r.dir, "missing.yaml"))
	if code != 1 || !strings.Contains(errOut, "missing.yaml") {
		t.Errorf("missing config: exit %d %q", code, errOut)
	}
}

func TestCLIUsage(t *testing.T) {
	for _, args := range [][]string{
		{"status"},
		{"status", "--config", "x.yaml", "extra"},
		{"dlq"},
		{"dlq", "frobnicate"},
		{"dlq", "list", "--config", "x.yaml"},
		{"dlq", "list", "--provider", "ens"},
		{"dlq", "list", "--config", "x.yaml", "--provider", "ens", "--limit", "0"},
		{"dlq", "replay", "--config", "x.yaml", "--provider", "ens", "--bogus"},
	} {
		if code, out, errOut := relayCLI(t, args...); code != 2 || errOut == "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and a usage message", args, code, out, errOut)
		}
	}
	code, out, _ := relayCLI(t, "help")
	if code != 0 || !strings.Contains(out, "dlq replay") || !strings.Contains(out, "status --config FILE") {
		t.Errorf("help: %d %q", code, out)
	}
}

func TestAdminBaseURL(t *testing.T) {
	for listen, want := range map[string]string{
		":9090":               "http://127.0.0.1:9090",
		"0.0.0.0:9090":        "http://127.0.0.1:9090",
		"[::]:9090":           "http://127.0.0.1:9090",
		"127.0.0.1:9191":      "http://127.0.0.1:9191",
		"10.1.2.3:9090":       "http://10.1.2.3:9090",
		"[::1]:9090":          "http://[::1]:9090",
		"admin.internal:9090": "http://admin.internal:9090",
	} {
		if got, err := adminBaseURL(listen); err != nil || got != want {
			t.Errorf("adminBaseURL(%q) = %q, %v; want %q", listen, got, err, want)
		}
	}
	if _, err := adminBaseURL("9090"); err == nil {
		t.Error("adminBaseURL accepted a bare port")
	}
}

// The end of the tail stream before --count events is an error that says what happened,
// whether the relay ended it cleanly or the connection broke.
func TestPrintTailStreamEndIsAnError(t *testing.T) {
	event := `data: {"seq":0,"at":"2026-12-03T00:00:00.000Z","kind":"ingested","provider":"ens","route":"ens/click","id":"e1"}` + "\n\n"
	for name, r := range map[string]io.Reader{
		"clean end":  strings.NewReader(": live tail\n\n" + event),
		"broken end": io.MultiReader(strings.NewReader(": live tail\n\n"+event), iotest.ErrReader(io.ErrUnexpectedEOF)),
	} {
		var out strings.Builder
		err := printTail(r, &out, 2)
		if !errors.Is(err, errStreamClosed) {
			t.Errorf("%s: printTail = %v, want errStreamClosed", name, err)
		}
		if !strings.Contains(out.String(), "e1") {
			t.Errorf("%s: the event before the end was not printed: %q", name, out.String())
		}
	}
	if err := printTail(strings.NewReader(event), io.Discard, 1); !errors.Is(err, errEnough) {
		t.Errorf("--count 1 after one event: %v, want errEnough", err)
	}
}
