package chaos

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

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
	addrs := FreeAddrs(t, 2)
	r := &Relay{t: t, bin: bin, Ingest: addrs[0], Admin: addrs[1],
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
