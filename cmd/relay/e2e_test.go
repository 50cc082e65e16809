package main_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/internal/loopback"
	"github.com/eventrelay/relay/relay/queue"
)

// relayBin is the relay binary built once for every end-to-end test.
var relayBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "relay-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	relayBin = filepath.Join(dir, "relay")
	args := []string{"build", "-o", relayBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building relay:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddrs returns n distinct free 127.0.0.1:port addresses.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs, err := loopback.FreeAddrs(n)
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}

func freeAddr(t *testing.T) string { return freeAddrs(t, 1)[0] }

// relayProc is one relay process started by a test; only its own PID is ever signalled.
type relayProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	ingest  string
	admin   string
	logs    *bytes.Buffer
	logMu   *sync.Mutex
	exited  chan struct{}
	exitErr error
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// startRelay writes cfg (with {{ingest}} and {{admin}} replaced by free loopback
// addresses) and runs `relay serve`, waiting until /healthz answers.
func startRelay(t *testing.T, cfg string) *relayProc {
	t.Helper()
	addrs := freeAddrs(t, 2)
	p := &relayProc{t: t, ingest: addrs[0], admin: addrs[1], logs: &bytes.Buffer{}, logMu: &sync.Mutex{}, exited: make(chan struct{})}
	path := filepath.Join(t.TempDir(), "relay.yaml")
	if err := os.WriteFile(path, []byte(strings.NewReplacer("{{ingest}}", p.ingest, "{{admin}}", p.admin).Replace(cfg)), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(relayBin, "serve", "--config", path)
	p.cmd.Stdout = lockedWriter{p.logMu, p.logs}
	p.cmd.Stderr = lockedWriter{p.logMu, p.logs}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exitErr = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("relay output:\n%s", p.output())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get("http://" + p.admin + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("relay exited at start: %v\n%s", p.exitErr, p.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay not healthy after 15 s\n%s", p.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *relayProc) output() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.logs.String()
}

func (p *relayProc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

func (p *relayProc) post(t *testing.T, path, body string, header map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+p.ingest+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// fake is an upstream over real HTTP on loopback that records every request.
type fake struct {
	srv   *httptest.Server
	mu    sync.Mutex
	hits  []fakeHit
	reply func(n int, h fakeHit) (int, string)
}

type fakeHit struct {
	path   string
	header http.Header
	body   string
	at     time.Time
}

func newFake(t *testing.T, reply func(n int, h fakeHit) (int, string)) *fake {
	f := &fake{reply: reply}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// newTLSFake is newFake over TLS with conf, e.g. one that requires a client certificate
// (an upstream with mutual TLS): a client without one is refused at the handshake, so
// nothing it sends is recorded.
func newTLSFake(t *testing.T, conf *tls.Config, reply func(n int, h fakeHit) (int, string)) *fake {
	f := &fake{reply: reply}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.TLS = conf
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

// serve records the request and answers with f.reply (200 {"ok":true} without one); n is
// the request's index, from 0.
func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h := fakeHit{path: r.URL.Path, header: r.Header.Clone(), body: string(b), at: time.Now()}
	f.mu.Lock()
	n := len(f.hits)
	f.hits = append(f.hits, h)
	f.mu.Unlock()
	status, body := 200, `{"ok":true}`
	if f.reply != nil {
		status, body = f.reply(n, h)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (f *fake) got() []fakeHit {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeHit(nil), f.hits...)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// waitRelayQuiescent polls Redis (bounded by d) until every listed provider's events
// stream under prefix is empty with nothing pending in the consumer group and its retry set
// is empty: no relay holds, owes or will retry any event, so no further upstream request
// can come from what was sent, and counting upstream requests after it is exact.
func waitRelayQuiescent(t *testing.T, redisURL, prefix string, d time.Duration, providers ...string) {
	t.Helper()
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	keys := queue.Keys{Prefix: prefix}
	busy := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var out []string
		for _, p := range providers {
			ready, err := rdb.XLen(ctx, keys.Events(p)).Result()
			if err != nil {
				out = append(out, p+": "+err.Error())
				continue
			}
			retry, err := rdb.ZCard(ctx, keys.Retry(p)).Result()
			if err != nil {
				out = append(out, p+": "+err.Error())
				continue
			}
			// The relay creates the stream and its group at start: a missing one means a
			// wrong prefix or provider here, which must not pass as "nothing pending".
			pend, err := rdb.XPending(ctx, keys.Events(p), queue.Group).Result()
			if err != nil {
				out = append(out, p+": XPENDING "+keys.Events(p)+": "+err.Error())
				continue
			}
			pending := pend.Count
			if ready+retry+pending > 0 {
				out = append(out, fmt.Sprintf("%s: %d in stream, %d pending, %d retrying", p, ready, pending, retry))
			}
		}
		return strings.Join(out, "; ")
	}
	deadline := time.Now().Add(d)
	for {
		state := busy()
		if state == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay not quiescent after %v: %s", d, state)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
