package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventrelay/relay/internal/redistest"
)

// brevoSDKDir is the pinned npm project holding Brevo's official Node SDK and the script
// that drives it. scripts/test.sh installs it (npm ci); node_modules is not committed.
const brevoSDKDir = "testdata/brevo-sdk"

// brevoSDK returns a directory where `node sdk.mjs` finds @getbrevo/brevo: the testdata
// project when scripts/test.sh installed it, else a copy installed here with npm ci. It
// skips the test only when node or the npm registry is out of reach, and never in CI.
func brevoSDK(t *testing.T) string {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (CI=true: the Brevo SDK test must run; scripts/test.sh installs node, npm and the SDK)", msg)
		}
		t.Skipf("%s: skipping the Brevo SDK test (scripts/test.sh installs what it needs)", msg)
	}
	if _, err := exec.LookPath("node"); err != nil {
		unavailable("node is not installed")
	}
	if _, err := os.Stat(filepath.Join(brevoSDKDir, "node_modules", "@getbrevo", "brevo", "package.json")); err == nil {
		abs, err := filepath.Abs(brevoSDKDir)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	if _, err := exec.LookPath("npm"); err != nil {
		unavailable("npm is not installed and %s/node_modules is missing", brevoSDKDir)
	}
	dir := t.TempDir()
	for _, name := range []string{"package.json", "package-lock.json", "sdk.mjs"} {
		b, err := os.ReadFile(filepath.Join(brevoSDKDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	npm := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	npm.Dir = dir
	if out, err := npm.CombinedOutput(); err != nil {
		unavailable("npm ci of %s failed (registry unreachable?): %v\n%s", brevoSDKDir, err, tail(string(out), 2000))
	}
	return dir
}

// sdkStep is one line of sdk.mjs's output.
type sdkStep struct {
	Step   string          `json:"step"`
	Status int             `json:"status"`
	Data   json.RawMessage `json:"data"`
	Body   json.RawMessage `json:"body"`
	Name   string          `json:"name"`
}

func runSDK(t *testing.T, dir, baseURL, mode string) map[string]sdkStep {
	t.Helper()
	cmd := sdkCommand(dir, baseURL, mode)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node sdk.mjs %s: %v\nstdout:\n%s\nstderr:\n%s", mode, err, out, tail(stderr.String(), 4000))
	}
	return parseSDK(t, out)
}

func sdkCommand(dir, baseURL, mode string) *exec.Cmd {
	cmd := exec.Command("node", "sdk.mjs", mode)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RELAY_BASE_URL="+baseURL, "RELAY_TOKEN="+e2eBackend)
	return cmd
}

func parseSDK(t *testing.T, out []byte) map[string]sdkStep {
	t.Helper()
	steps := map[string]sdkStep{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var s sdkStep
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("sdk.mjs printed %q: %v", sc.Text(), err)
		}
		steps[s.Step] = s
	}
	return steps
}

// ingestCount reads relay_ingest_requests_total{route,code} from the relay's /metrics.
func ingestCount(t *testing.T, admin, route string, code int) int {
	t.Helper()
	res, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	want := []string{`code="` + strconv.Itoa(code) + `"`, `route="` + route + `"`}
	for line := range strings.Lines(string(b)) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), "{")
		if !ok || name != "relay_ingest_requests_total" {
			continue
		}
		labels, value, _ := strings.Cut(rest, "} ")
		if slices.Equal(strings.Split(labels, ","), want) {
			n, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("metric line %q", line)
			}
			return int(n)
		}
	}
	return 0
}

// TestBrevoSDKThroughMirror drives Brevo's official Node SDK (@getbrevo/brevo 6.0.3)
// against a relay with path_prefix "/t": only baseUrl and apiKey change. One event, a
// batch and a 503 the SDK retries by itself all reach the fake Brevo with the relay's key,
// never the client token.
func TestBrevoSDKThroughMirror(t *testing.T) {
	dir := brevoSDK(t)
	rs := redistest.Start(t, redistest.Options{})
	brevo := newFake(t, func(_ int, h fakeHit) (int, string) {
		if h.path == "/v3/events/batch" {
			return 202, `{"status":"success","total_events":1,"successful_events":1,"failed_events":0,"errors":[]}`
		}
		return 204, ``
	})
	p := startRelay(t, fmt.Sprintf(`
server: {listen: "{{ingest}}", path_prefix: /t}
admin: {listen: "{{admin}}", token: "admin-token-e2e-0123456789"}
redis: {url: %q, prefix: e2e, enqueue_timeout: 300ms}
clients:
  - {name: backend, token: %s}
providers:
  brevo: {base_url: %q, api_key: %s, timeout: 2s, backoff: {base: 50ms, max: 200ms}}
`, rs.URL(), e2eBackend, brevo.srv.URL, e2eBVKey))
	base := "http://" + p.ingest + "/t/brevo/v3"

	steps := runSDK(t, dir, base, "track")
	if s := steps["createEvent"]; s.Status != 204 || string(s.Data) != "null" {
		t.Errorf("createEvent: %+v, want 204 without data", s)
	}
	s := steps["createBatchEvents"]
	if want := `{"status":"success","total_events":2,"successful_events":2,"failed_events":0,"errors":[]}`; s.Status != 202 || !jsonEqual(string(s.Data), want) {
		t.Errorf("createBatchEvents: %d %s, want 202 %s", s.Status, s.Data, want)
	}
	if s := steps["unknownKey"]; s.Status != 401 || s.Name != "UnauthorizedError" || !jsonEqual(string(s.Body),
		`{"code":"unauthorized","message":"api-key is not a known relay client token"}`) {
		t.Errorf("unknown api-key: %+v", s)
	}

	// Redis paused: the relay answers 503 with Retry-After; the SDK retries on its own, and
	// once Redis is back its retry is accepted. Resuming waits for the first 503, so the
	// retry is the SDK's, not luck.
	before204 := ingestCount(t, p.admin, "brevo/v3/events", 204)
	rs.Pause()
	paused := true
	defer func() {
		if paused {
			rs.Resume()
		}
	}()
	cmd := sdkCommand(dir, base, "retry")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitFor(t, 20*time.Second, "a 503 from the relay", func() bool { return ingestCount(t, p.admin, "brevo/v3/events", 503) >= 1 })
	rs.Resume()
	paused = false
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("node sdk.mjs retry: %v\n%s\n%s", err, stdout.String(), tail(stderr.String(), 4000))
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("the SDK did not finish within 60 s of Redis resuming\n%s", tail(stderr.String(), 4000))
	}
	if s := parseSDK(t, stdout.Bytes())["retried"]; s.Status != 204 {
		t.Errorf("retried event: %+v", s)
	}
	refused := ingestCount(t, p.admin, "brevo/v3/events", 503)
	accepted := ingestCount(t, p.admin, "brevo/v3/events", 204) - before204
	if refused < 1 || refused > 10 || accepted != 1 {
		t.Errorf("relay saw %d attempts answered 503 and %d answered 204; want 1-10 (the SDK's maxRetries) then exactly 1", refused, accepted)
	}
	t.Logf("the SDK made %d attempts (%d answered 503)", refused+accepted, refused)

	// Upstream: every event once, with the relay's Brevo key and nothing of the client's.
	want := []string{"sdk_batch_a", "sdk_batch_b", "sdk_retried", "sdk_single"}
	var names []string
	waitFor(t, 15*time.Second, "4 events at the fake Brevo", func() bool {
		names = names[:0]
		for _, h := range brevo.got() {
			var ev struct {
				EventName string `json:"event_name"`
			}
			_ = json.Unmarshal([]byte(h.body), &ev)
			names = append(names, ev.EventName)
		}
		return len(names) >= len(want)
	})
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Errorf("fake Brevo got events %q, want %q (each once)", names, want)
	}
	for _, h := range brevo.got() {
		if h.path != "/v3/events" || h.header.Get("api-key") != e2eBVKey {
			t.Errorf("upstream %s with api-key %q, want /v3/events with the relay's key", h.path, h.header.Get("api-key"))
		}
		if strings.Contains(fmt.Sprint(h.header)+h.body, e2eBackend) {
			t.Errorf("the client token reached Brevo: %v %s", h.header, h.body)
		}
		for k := range h.header {
			if strings.HasPrefix(strings.ToLower(k), "x-fern") {
				t.Errorf("SDK header %s forwarded upstream", k)
			}
		}
	}
	if out := p.output(); strings.Contains(out, e2eBackend) || strings.Contains(out, e2eBVKey) {
		t.Error("a secret is in the relay's logs")
	}
}
