package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/eventrelay/relay/internal/loopback"
)

// proc is one child process the harness started; it is only ever signalled by its PID.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

// freeAddrs is n distinct free 127.0.0.1:port addresses.
func freeAddrs(n int) []string {
	addrs, err := loopback.FreeAddrs(n)
	if err != nil {
		fatalf("%v", err)
	}
	return addrs
}

func freeAddr() string { return freeAddrs(1)[0] }

// start runs bin with args, its output in logDir/<name>.log; the kernel kills it if the
// harness dies (Pdeathsig), so no orphans keep ports.
func start(name, logDir, bin string, args ...string) *proc {
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		fatalf("%v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); f.Close(); close(p.exited) }()
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM to this PID, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	if p == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	}
}

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// waitTCP waits until addr accepts connections (or the process exits).
func (p *proc) waitTCP(addr string, within time.Duration) {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-p.exited:
			fatalf("%s exited at start:\n%s", p.name, p.tail())
		default:
		}
		if time.Now().After(deadline) {
			fatalf("%s not listening on %s after %s:\n%s", p.name, addr, within, p.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitHTTP waits until url answers 200.
func (p *proc) waitHTTP(url string, within time.Duration) {
	deadline := time.Now().Add(within)
	for {
		res, err := http.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		select {
		case <-p.exited:
			fatalf("%s exited at start:\n%s", p.name, p.tail())
		default:
		}
		if time.Now().After(deadline) {
			fatalf("%s not ready at %s after %s:\n%s", p.name, url, within, p.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// vmHWM is the process's peak resident set (kB → MB) from /proc/<pid>/status.
func vmHWM(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024
		}
	}
	return -1
}

// cpuSeconds is user+system CPU time of pid so far (/proc/<pid>/stat, clock ticks of 1/100 s).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+2:])
	// fields after the name: state(0) ... utime(11) stime(12)
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// startRedis runs redis-server like relay/redistest does: loopback, free port, its own
// temp dir, AOF everysec, noeviction.
func startRedis(dir string) (*proc, string) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		fatalf("redis-server not found: install the Debian package redis-server (./scripts/test.sh does)")
	}
	addr := freeAddr()
	_, port, _ := net.SplitHostPort(addr)
	data := filepath.Join(dir, "redis")
	_ = os.MkdirAll(data, 0o700)
	p := start("redis", dir, bin, "--port", port, "--bind", "127.0.0.1", "--dir", data, "--save", "",
		"--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction",
		"--daemonize", "no", "--protected-mode", "yes")
	p.waitTCP(addr, 10*time.Second)
	return p, addr
}

// startNginx writes an nginx config that proxies every ingest route synchronously to the
// upstream at up, injecting the provider's secret header, and runs nginx in the
// foreground (master + 2 workers) as its own process tree.
func startNginx(dir, up string, mix []shot) (*proc, string) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		for _, c := range []string{"/usr/sbin/nginx", "/sbin/nginx"} {
			if _, e := os.Stat(c); e == nil {
				bin, err = c, nil
			}
		}
	}
	if err != nil {
		fatalf("nginx not found: install the Debian package nginx (make bench does)")
	}
	addr := freeAddr()
	ndir := filepath.Join(dir, "nginx")
	_ = os.MkdirAll(filepath.Join(ndir, "tmp"), 0o700)
	var locs strings.Builder
	seen := map[string]bool{}
	for _, s := range mix {
		if seen[s.Route] {
			continue
		}
		seen[s.Route] = true
		fmt.Fprintf(&locs, "    location = /v1/%s {\n      proxy_pass http://upstream%s;\n", s.Route, s.UpPath)
		if s.UpHeader[0] != "" {
			fmt.Fprintf(&locs, "      proxy_set_header %s %q;\n", s.UpHeader[0], s.UpHeader[1])
		}
		fmt.Fprintf(&locs, "      proxy_set_header X-Relay-Key \"\";\n    }\n")
	}
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
%[5]sevents { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/tmp;
  proxy_temp_path %[1]s/tmp;
  fastcgi_temp_path %[1]s/tmp;
  uwsgi_temp_path %[1]s/tmp;
  scgi_temp_path %[1]s/tmp;
  upstream upstream {
    server %[2]s;
    keepalive 256;
  }
  server {
    listen %[3]s;
    keepalive_requests 1000000;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_buffering on;
%[4]s  }
}
`, ndir, up, addr, locs.String(), userLine())
	path := filepath.Join(ndir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		fatalf("%v", err)
	}
	p := start("nginx", dir, bin, "-p", ndir, "-c", path, "-e", filepath.Join(ndir, "error.log"))
	p.waitTCP(addr, 10*time.Second)
	return p, addr
}

// userLine keeps nginx workers as root when the harness runs as root, so they can use
// the temp dirs the harness created (0700); otherwise nginx keeps the current user.
func userLine() string {
	if os.Getuid() == 0 {
		return "user root;\n"
	}
	return ""
}
