package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// readyTimeout bounds the wait for a fresh server to answer PING (AOF loading included).
	readyTimeout = 10 * time.Second
	// exitTimeout bounds the wait for the process to exit after a signal.
	exitTimeout = 10 * time.Second
	// startAttempts covers the race between picking a free port and redis binding it.
	startAttempts = 5
	// logTail is how much of the server log a failed test prints.
	logTail = 4096
)

// errExited means redis-server exited before it answered PING: usually the port was taken
// between freePort and the bind, so Start retries on another port.
var errExited = errors.New("redis-server exited before it was ready")

// Options configure the server. The zero value is production-like: AOF on, noeviction.
type Options struct {
	// AOF is "yes" or "no" (--appendonly). Empty means "yes".
	AOF string
	// MaxmemoryPolicy is --maxmemory-policy. Empty means "noeviction".
	MaxmemoryPolicy string
	// Args are extra redis-server arguments, e.g. "--maxmemory", "64mb".
	Args []string
	// ClusterBus picks a port whose cluster bus port (port + 10000) is free too, below
	// 55535 (an ephemeral port from the kernel can be too high for its bus port).
	ClusterBus bool
	// Password, when set, is the server's --requirepass: clients must AUTH, and URL
	// carries it (redis://:password@host:port/0), as a production redis.url would.
	Password string
}

// Server is one redis-server process owned by a test.
type Server struct {
	t       testing.TB
	bin     string
	dir     string
	port    int
	opts    Options
	logPath string
	logFile *os.File

	cmd    *exec.Cmd     // the running process, nil when none
	exited chan struct{} // closed when cmd has exited
	paused bool
}

// Start runs redis-server on a free 127.0.0.1 port with its working directory in
// t.TempDir() and waits until it answers PING. t.Cleanup kills it and, if the test
// failed, logs the tail of the server's log.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redistest: redis-server not found on PATH; run the test command in README.md, which installs it")
	}
	if opts.AOF == "" {
		opts.AOF = "yes"
	}
	if opts.AOF != "yes" && opts.AOF != "no" {
		t.Fatalf("redistest: Options.AOF is %q; want \"yes\" or \"no\"", opts.AOF)
	}
	if opts.MaxmemoryPolicy == "" {
		opts.MaxmemoryPolicy = "noeviction"
	}
	// TempDir before Cleanup: cleanups run last-in first-out, so the process is dead
	// before its directory is removed.
	dir := t.TempDir()
	logPath := filepath.Join(dir, "redis.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	s := &Server{t: t, bin: bin, dir: dir, opts: opts, logPath: logPath, logFile: logFile}
	t.Cleanup(s.cleanup)

	for attempt := 1; ; attempt++ {
		pick := freePort
		if opts.ClusterBus {
			pick = freeBusPort
		}
		port, err := pick()
		if err != nil {
			t.Fatalf("redistest: find a free port: %v", err)
		}
		err = s.start(port)
		if err == nil {
			return s
		}
		if !errors.Is(err, errExited) || attempt == startAttempts {
			t.Fatalf("redistest: start redis-server on port %d: %v\n%s", port, err, s.tail())
		}
	}
}

// Addr is "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is "redis://127.0.0.1:port/0", or "redis://:password@127.0.0.1:port/0" with
// Options.Password.
func (s *Server) URL() string {
	if s.opts.Password != "" {
		return "redis://:" + url.QueryEscape(s.opts.Password) + "@" + s.Addr() + "/0"
	}
	return "redis://" + s.Addr() + "/0"
}

// Dir is the server's working directory (AOF files, log).
func (s *Server) Dir() string { return s.dir }

// Kill sends SIGKILL and waits for the process to exit: a crash. With AOF (everysec) on,
// writes acknowledged before the kill survive a Restart.
func (s *Server) Kill() {
	s.t.Helper()
	s.signalAndWait(syscall.SIGKILL)
}

// Stop sends SIGTERM and waits for a clean shutdown.
func (s *Server) Stop() {
	s.t.Helper()
	s.signalAndWait(syscall.SIGTERM)
}

// Restart starts the server again on the same port and directory and waits until it
// answers PING (after loading its AOF). A server still running is stopped first.
// The script cache and client connections do not survive; data does when AOF is on.
func (s *Server) Restart() {
	s.t.Helper()
	if s.cmd != nil {
		s.Stop()
	}
	var err error
	// The old process has exited, but give a slow kernel a few tries to free the port.
	for attempt := 1; attempt <= startAttempts; attempt++ {
		if err = s.start(s.port); !errors.Is(err, errExited) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("redistest: restart redis-server on port %d: %v\n%s", s.port, err, s.tail())
	}
}

// Pause sends SIGSTOP: the server keeps its port and accepts TCP connections (the kernel
// does) but answers nothing, like a Redis stuck in a long command or a swap storm.
func (s *Server) Pause() {
	s.t.Helper()
	s.signal(syscall.SIGSTOP)
	s.paused = true
}

// Resume sends SIGCONT after Pause.
func (s *Server) Resume() {
	s.t.Helper()
	s.signal(syscall.SIGCONT)
	s.paused = false
}

// start runs the process on port and waits until it is ready. It returns errExited when
// the process died first (typically: port taken).
func (s *Server) start(port int) error {
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--appendonly", s.opts.AOF,
		"--appendfsync", "everysec",
		"--maxmemory-policy", s.opts.MaxmemoryPolicy,
		"--daemonize", "no",
		"--protected-mode", "no",
		"--logfile", "",
		// A replica syncs at once instead of after the default 5 s delay.
		"--repl-diskless-sync-delay", "0",
	}
	if s.opts.Password != "" {
		args = append(args, "--requirepass", s.opts.Password)
	}
	args = append(args, s.opts.Args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.Stdout = s.logFile
	cmd.Stderr = s.logFile
	cmd.SysProcAttr = procAttr()
	fmt.Fprintf(s.logFile, "=== redistest: %s %s\n", s.bin, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited, s.port, s.paused = cmd, exited, port, false

	deadline := time.Now().Add(readyTimeout)
	for {
		if pingOK(s.Addr(), s.opts.Password) {
			return nil
		}
		select {
		case <-exited:
			s.cmd = nil
			return errExited
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.signalAndWait(syscall.SIGKILL)
			return fmt.Errorf("no PONG within %s", readyTimeout)
		}
	}
}

// signal sends sig to the process this Server started, and only to it.
func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	if s.cmd == nil {
		s.t.Fatalf("redistest: %v: redis-server is not running", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redistest: send %v to redis-server (pid %d): %v", sig, s.cmd.Process.Pid, err)
	}
}

// signalAndWait sends sig and waits for the process to exit. A paused process also gets
// SIGCONT, else it would never handle SIGTERM.
func (s *Server) signalAndWait(sig syscall.Signal) {
	s.t.Helper()
	if s.cmd == nil {
		return
	}
	select {
	case <-s.exited:
	default:
		s.signal(sig)
		if s.paused && sig != syscall.SIGKILL {
			s.signal(syscall.SIGCONT)
		}
	}
	select {
	case <-s.exited:
	case <-time.After(exitTimeout):
		s.t.Fatalf("redistest: redis-server (pid %d) did not exit within %s of %v", s.cmd.Process.Pid, exitTimeout, sig)
	}
	s.cmd, s.paused = nil, false
}

func (s *Server) cleanup() {
	if s.cmd != nil {
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Signal(syscall.SIGKILL)
			select {
			case <-s.exited:
			case <-time.After(exitTimeout):
			}
		}
		s.cmd = nil
	}
	if s.t.Failed() {
		s.t.Logf("redistest: tail of %s:\n%s", s.logPath, s.tail())
	}
	_ = s.logFile.Close()
}

// tail returns the end of the server log.
func (s *Server) tail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > logTail {
		b = b[len(b)-logTail:]
	}
	return string(b)
}

// freePort asks the kernel for a free port. Another process may take it before redis
// binds it; Start retries then.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// pingOK reports whether addr answers PING with PONG (not LOADING, not silence), after
// AUTH with password when there is one.
func pingOK(addr, password string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	r := bufio.NewReader(c)
	if password != "" {
		// A RESP array, so any byte of the password goes through unquoted.
		if _, err := fmt.Fprintf(c, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(password), password); err != nil {
			return false
		}
		if line, err := r.ReadString('\n'); err != nil || strings.TrimSpace(line) != "+OK" {
			return false
		}
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := r.ReadString('\n')
	return err == nil && strings.TrimSpace(line) == "+PONG"
}
