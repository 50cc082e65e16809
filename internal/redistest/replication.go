package redistest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StartReplica runs a redis-server replicating master (same production-like options, AOF
// on). It returns once the replica answers PING; the link to the master may still be
// syncing: wait for the master to count it (e.g. INFO replication) before relying on it.
func StartReplica(t testing.TB, master *Server) *Server {
	t.Helper()
	opts := master.opts
	opts.Args = append(append([]string(nil), opts.Args...), "--replicaof", "127.0.0.1", strconv.Itoa(master.port))
	return Start(t, opts)
}

// Sentinel is one redis-server running in Sentinel mode, owned by a test.
type Sentinel struct {
	t      testing.TB
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

// Addr is "127.0.0.1:port".
func (s *Sentinel) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// StartSentinels runs n sentinels monitoring master under name, with a quorum of n/2+1,
// 1 s down-after and a 5 s failover timeout, so a killed master fails over within a few
// seconds. Each sentinel has its own writable config file (a sentinel rewrites it) in
// t.TempDir(); t.Cleanup kills them by PID.
func StartSentinels(t testing.TB, master *Server, name string, n int) []*Sentinel {
	t.Helper()
	var out []*Sentinel
	for i := 0; i < n; i++ {
		out = append(out, startSentinel(t, master, name, n/2+1))
	}
	return out
}

// SentinelURL is the relay's redis+sentinel:// URL for these sentinels and master name.
func SentinelURL(ss []*Sentinel, name string) string {
	addrs := make([]string, len(ss))
	for i, s := range ss {
		addrs[i] = s.Addr()
	}
	return "redis+sentinel://" + strings.Join(addrs, ",") + "/0?master=" + name
}

func startSentinel(t testing.TB, master *Server, name string, quorum int) *Sentinel {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redistest: redis-server not found on PATH; run the test command in README.md, which installs it")
	}
	dir := t.TempDir()
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: find a free port: %v", err)
		}
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nprotected-mode no\n"+
			"sentinel monitor %s 127.0.0.1 %d %d\n"+
			"sentinel down-after-milliseconds %s 1000\n"+
			"sentinel failover-timeout %s 5000\n"+
			"sentinel parallel-syncs %s 1\n",
			port, dir, name, master.port, quorum, name, name, name)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		s := &Sentinel{t: t, port: port, log: filepath.Join(dir, "sentinel.log")}
		logFile, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, conf, "--sentinel")
		cmd.Dir, cmd.Stdout, cmd.Stderr, cmd.SysProcAttr = dir, logFile, logFile, procAttr()
		if err := cmd.Start(); err != nil {
			t.Fatalf("redistest: start sentinel: %v", err)
		}
		s.cmd, s.exited = cmd, make(chan struct{})
		go func() { _ = cmd.Wait(); _ = logFile.Close(); close(s.exited) }()
		t.Cleanup(s.kill)
		if s.ready() {
			return s
		}
		s.kill()
		if attempt == startAttempts {
			b, _ := os.ReadFile(s.log)
			t.Fatalf("redistest: sentinel on port %d did not start:\n%s", port, b)
		}
	}
}

// ready waits until the sentinel answers PING, or reports false when it exited first.
func (s *Sentinel) ready() bool {
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		if pingOK(s.Addr(), "") {
			return true
		}
		select {
		case <-s.exited:
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	return false
}

// kill sends SIGKILL to this sentinel's process (by its PID) and waits for it to exit.
func (s *Sentinel) kill() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-s.exited:
	case <-time.After(exitTimeout):
		s.t.Errorf("redistest: sentinel pid %d did not exit", s.cmd.Process.Pid)
	}
}
