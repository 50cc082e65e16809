package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eventrelay/relay/internal/redistest"
	"github.com/eventrelay/relay/relay/admin"
)

// traceEmail is in the upstream's refusal: the trace and the tail must mask it.
const traceEmail = "jane.doe@example.com"

// text is what w got so far.
func (w lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// sseReader collects a tail stream's events.
type sseReader struct {
	mu     sync.Mutex
	raw    strings.Builder
	events []admin.TailEvent
	ready  chan struct{}
}

// openTail opens GET /admin/api/tail?query with the admin token and reads it until the
// test ends; it returns once the relay has subscribed it (the stream's first comment).
func openTail(t *testing.T, adminAddr, query string) *sseReader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+adminAddr+"/admin/api/tail?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+e2eAdminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("tail: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	s := &sseReader{ready: make(chan struct{})}
	go func() {
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		first := true
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.raw.WriteString(line + "\n")
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				var ev admin.TailEvent
				if json.Unmarshal([]byte(data), &ev) == nil {
					s.events = append(s.events, ev)
				}
			}
			s.mu.Unlock()
			if first {
				first = false
				close(s.ready)
			}
		}
	}()
	select {
	case <-s.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("tail: no first line within 10 s")
	}
	return s
}

func (s *sseReader) got() ([]admin.TailEvent, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]admin.TailEvent(nil), s.events...), s.raw.String()
}

// has reports whether the stream carried an event of kind for id.
func (s *sseReader) has(id, kind string) bool {
	evs, _ := s.got()
	for _, e := range evs {
		if e.ID == id && e.Kind == kind {
			return true
		}
	}
	return false
}

// getTrace calls the trace API; it returns the status and the decoded trace.
func getTrace(t *testing.T, adminAddr, provider, id string) (int, admin.EventTrace, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+adminAddr+"/admin/api/events/"+provider+"/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+e2eAdminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b strings.Builder
	_, _ = bufio.NewReader(res.Body).WriteTo(&b)
	var tr admin.EventTrace
	if res.StatusCode == 200 {
		if err := json.Unmarshal([]byte(b.String()), &tr); err != nil {
			t.Fatalf("trace reply: %v: %s", err, b.String())
		}
	}
	return res.StatusCode, tr, b.String()
}

// TestTraceAndTailEndToEnd runs the relay against a fake ENS that fails the first
// attempt of one event with 503 and refuses another with 400 (its reply echoing the
// relay's key and an e-mail address): the trace API and `relay trace` show two attempts
// then the delivery, and the dead letter's reason; an unknown id is 404; the live tail
// streams each step, filtered by provider, route and status, without the secret or the
// address.
func TestTraceAndTailEndToEnd(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	f := newFakes(t)
	var mu sync.Mutex
	failed := false
	f.ens = newFake(t, func(_ int, h fakeHit) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.Contains(h.body, `"campaignId":2`):
			return 400, `{"error":"campaign 2 unknown to ` + traceEmail + ` (key ` + h.header.Get("Authorization") + `)"}`
		case strings.Contains(h.body, `"campaignId":1`) && !failed:
			failed = true
			return 503, `{"error":"busy"}`
		}
		return 200, `{"status":"success"}`
	})
	cfg := e2eConfig(rs.URL(), f, "") + "trace: {keep: 1000}\n"
	p := startRelay(t, cfg)
	cfgPath := filepath.Join(t.TempDir(), "cli.yaml")
	if err := os.WriteFile(cfgPath, []byte(strings.NewReplacer("{{ingest}}", p.ingest, "{{admin}}", p.admin).Replace(cfg)), 0o600); err != nil {
		t.Fatal(err)
	}

	all := openTail(t, p.admin, "provider=ens")
	dead := openTail(t, p.admin, "status=dead")
	impressions := openTail(t, p.admin, "route=ens/impression")

	auth := map[string]string{"Authorization": "Bearer " + e2eBackend}
	post := func(route, body string) string {
		status, reply := p.post(t, "/v1/"+route, body, auth)
		if status != 202 {
			t.Fatalf("%s: %d %s", route, status, reply)
		}
		var r struct{ IDs []string }
		if err := json.Unmarshal([]byte(reply), &r); err != nil || len(r.IDs) != 1 {
			t.Fatalf("%s: reply %s", route, reply)
		}
		return r.IDs[0]
	}
	retried := post("ens/click", `{"campaignId":1,"placement":"article_inline"}`)
	refused := post("ens/click", `{"campaignId":2,"placement":"article_inline"}`)
	shown := post("ens/impression", `{"campaignId":3,"placement":"header_banner","location":"US","device":"mobile"}`)

	var tr admin.EventTrace
	waitFor(t, 20*time.Second, "the retried event delivered", func() bool {
		code, got, _ := getTrace(t, p.admin, "ens", retried)
		tr = got
		return code == 200 && got.Now.State == "delivered"
	})
	if len(tr.Attempts) != 2 {
		t.Fatalf("attempts %+v, want 2", tr.Attempts)
	}
	a1, a2 := tr.Attempts[0], tr.Attempts[1]
	if a1.Attempt != 1 || a1.Outcome != "retry" || a1.Status != 503 || a1.Class != "5xx" || a1.RetryDueAt == "" || a1.At == "" {
		t.Errorf("first attempt %+v", a1)
	}
	if a2.Attempt != 2 || a2.Outcome != "delivered" || a2.At < a1.At {
		t.Errorf("second attempt %+v", a2)
	}
	if tr.Received.Route != "ens/click" || tr.Received.Source != "client:backend" || tr.Received.At == "" || tr.Received.At > a1.At {
		t.Errorf("received %+v", tr.Received)
	}

	waitFor(t, 20*time.Second, "the refused event dead", func() bool {
		code, got, _ := getTrace(t, p.admin, "ens", refused)
		tr = got
		return code == 200 && got.Now.State == "dead"
	})
	_, _, raw := getTrace(t, p.admin, "ens", refused)
	if tr.Now.Reason != "permanent" || len(tr.Attempts) != 1 || tr.Attempts[0].Status != 400 || tr.Attempts[0].Class != "permanent" {
		t.Errorf("dead trace %+v", tr)
	}
	for _, leak := range []string{e2eENSKey, traceEmail} {
		if strings.Contains(raw, leak) {
			t.Errorf("trace reply contains %q: %s", leak, raw)
		}
	}

	if code, _, body := getTrace(t, p.admin, "ens", "no-such-event-0000"); code != 404 {
		t.Errorf("unknown id: %d %s", code, body)
	}
	if code, _, _ := getTrace(t, p.admin, "nope", retried); code != 404 {
		t.Errorf("unknown provider: %d", code)
	}

	// The CLI prints the same.
	out, err := exec.Command(relayBin, "trace", "--config", cfgPath, "--provider", "ens", retried).CombinedOutput()
	if err != nil {
		t.Fatalf("relay trace: %v\n%s", err, out)
	}
	for _, want := range []string{"event " + retried + " (ens)", "route ens/click", "source client:backend",
		"retry", "503", "5xx", "delivered", "now       delivered"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("relay trace output lacks %q:\n%s", want, out)
		}
	}
	out, err = exec.Command(relayBin, "trace", "--config", cfgPath, "--provider", "ens", "no-such-event-0000").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no trace of this event") {
		t.Errorf("relay trace of an unknown id: %v\n%s", err, out)
	}

	// The tail saw every step, filtered.
	waitFor(t, 10*time.Second, "the tail's events", func() bool {
		return all.has(retried, "ingested") && all.has(retried, "retry") && all.has(retried, "delivered") &&
			all.has(refused, "dead") && dead.has(refused, "dead") && impressions.has(shown, "delivered")
	})
	evs, _ := all.got()
	for _, e := range evs {
		if e.Provider != "ens" {
			t.Errorf("provider=ens tail got %+v", e)
		}
		if e.ID == retried && e.Kind == "retry" && (e.Status != 503 || e.Class != "5xx" || e.Attempt != 1) {
			t.Errorf("tail retry event %+v", e)
		}
	}
	if evs, _ := dead.got(); len(evs) != 1 || evs[0].Reason != "permanent" || evs[0].Status != 400 {
		t.Errorf("status=dead tail got %+v", evs)
	}
	evs, _ = impressions.got()
	for _, e := range evs {
		if e.Route != "ens/impression" {
			t.Errorf("route=ens/impression tail got %+v", e)
		}
	}
	for _, s := range []*sseReader{all, dead, impressions} {
		_, raw := s.got()
		for _, leak := range []string{e2eENSKey, e2eBackend, e2eAdminToken, traceEmail, "campaignId"} {
			if strings.Contains(raw, leak) {
				t.Errorf("tail stream contains %q:\n%s", leak, raw)
			}
		}
	}

	// `relay tail` prints events as they come: post until it has printed two.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, relayBin, "tail", "--config", cfgPath, "--provider", "ens", "--status", "ingested", "--count", "2")
	cliOut := lockedWriter{&sync.Mutex{}, &bytes.Buffer{}}
	cmd.Stdout, cmd.Stderr = cliOut, cliOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var posted []string
	for i := 0; ; i++ {
		posted = append(posted, post("ens/click", `{"campaignId":5,"placement":"article_inline"}`))
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("relay tail: %v\n%s", err, cliOut.String())
			}
		case <-time.After(200 * time.Millisecond):
			if i < 100 {
				continue
			}
			t.Fatalf("relay tail printed no two events:\n%s", cliOut.String())
		}
		break
	}
	out2 := cliOut.String()
	lines := strings.Split(strings.TrimSpace(out2), "\n")
	if len(lines) != 2 {
		t.Fatalf("relay tail printed %d lines:\n%s", len(lines), out2)
	}
	for _, l := range lines {
		if !strings.Contains(l, "ingested") || !strings.Contains(l, "ens/click") || !slices.ContainsFunc(posted, func(id string) bool { return strings.Contains(l, id) }) {
			t.Errorf("relay tail line %q", l)
		}
	}
}

// `relay tail` whose relay stops says so and exits 1 (it ran "until interrupted": an end
// it did not ask for is no success).
func TestTailCLIExitsWhenRelayStops(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	f := newFakes(t)
	cfg := e2eConfig(rs.URL(), f, "")
	p := startRelay(t, cfg)
	cfgPath := filepath.Join(t.TempDir(), "cli.yaml")
	if err := os.WriteFile(cfgPath, []byte(strings.NewReplacer("{{ingest}}", p.ingest, "{{admin}}", p.admin).Replace(cfg)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, relayBin, "tail", "--config", cfgPath, "--status", "ingested")
	stdout, stderr := lockedWriter{&sync.Mutex{}, &bytes.Buffer{}}, lockedWriter{&sync.Mutex{}, &bytes.Buffer{}}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Post until the tail printed one: it is subscribed.
	auth := map[string]string{"Authorization": "Bearer " + e2eBackend}
	waitFor(t, 20*time.Second, "relay tail printing an event", func() bool {
		if status, reply := p.post(t, "/v1/ens/click", `{"campaignId":5,"placement":"article_inline"}`, auth); status != 202 {
			t.Fatalf("post: %d %s", status, reply)
		}
		return strings.Contains(stdout.String(), "ingested")
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("relay tail after the relay stopped: %v, want exit status 1\nstderr: %s", err, stderr.String())
		}
		if !strings.Contains(stderr.String(), "the relay closed the stream") {
			t.Errorf("relay tail's stderr does not say the relay closed the stream: %q", stderr.String())
		}
	case <-ctx.Done():
		t.Fatalf("relay tail still running 60 s after the relay was stopped\nstderr: %s", stderr.String())
	}
}
