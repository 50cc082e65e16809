package redistest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

// do sends one inline command and returns the first reply line.
func do(t *testing.T, addr, cmd string) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := fmt.Fprintf(c, "%s\r\n", cmd); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func TestLifecycle(t *testing.T) {
	s := Start(t, Options{})
	if !strings.HasPrefix(s.URL(), "redis://127.0.0.1:") || !strings.HasSuffix(s.URL(), "/0") {
		t.Fatalf("URL() = %q", s.URL())
	}
	if got, err := do(t, s.Addr(), "SET k v"); err != nil || got != "+OK" {
		t.Fatalf("SET: %q %v", got, err)
	}

	s.Pause()
	if _, err := do(t, s.Addr(), "PING"); err == nil {
		t.Fatal("paused server answered PING")
	}
	s.Resume()
	if got, _ := do(t, s.Addr(), "PING"); got != "+PONG" {
		t.Fatalf("after Resume: %q", got)
	}

	// AOF is on by default, and a process kill loses nothing the server has written to
	// its AOF file (the kernel keeps it; fsync matters only for a machine crash): wait
	// until its AOF buffer is empty, as INFO persistence reports.
	deadline := time.Now().Add(10 * time.Second)
	for aofField(t, s.Addr(), "aof_buffer_length") != "0" {
		if time.Now().After(deadline) {
			t.Fatal("AOF buffer not written after 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.Kill()
	if _, err := do(t, s.Addr(), "PING"); err == nil {
		t.Fatal("killed server answered PING")
	}
	s.Restart()
	if got, err := do(t, s.Addr(), "EXISTS k"); err != nil || got != ":1" {
		t.Fatalf("after Kill+Restart EXISTS k = %q %v; want :1 (AOF)", got, err)
	}
	s.Stop()
	s.Restart()
	if got, _ := do(t, s.Addr(), "PING"); got != "+PONG" {
		t.Fatalf("after Stop+Restart: %q", got)
	}
}

func TestOptions(t *testing.T) {
	s := Start(t, Options{AOF: "no", MaxmemoryPolicy: "allkeys-lru"})
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONFIG GET appendonly\r\nCONFIG GET maxmemory-policy\r\n")
	r := bufio.NewReader(c)
	var lines []string
	for range 10 {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.TrimSpace(l))
	}
	joined := strings.Join(lines, " ")
	if !strings.Contains(joined, "appendonly $2 no") || !strings.Contains(joined, "allkeys-lru") {
		t.Fatalf("config = %s", joined)
	}
}

func TestPauseThenCleanup(t *testing.T) {
	// Cleanup must kill a stopped (SIGSTOP) process too.
	s := Start(t, Options{})
	s.Pause()
}

// With a password the server refuses clients that do not AUTH, URL carries the password,
// and Restart (which waits for PING after AUTH) still works.
func TestPassword(t *testing.T) {
	const pw = "redistest-pw/with:odd@chars"
	s := Start(t, Options{AOF: "no", Password: pw})
	if got, _ := do(t, s.Addr(), "PING"); !strings.HasPrefix(got, "-NOAUTH") {
		t.Fatalf("PING without AUTH = %q, want -NOAUTH", got)
	}
	u, err := url.Parse(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := u.User.Password(); !ok || got != pw || u.Host != s.Addr() {
		t.Fatalf("URL() = %q: password %q, host %q", s.URL(), got, u.Host)
	}
	if !pingOK(s.Addr(), pw) || pingOK(s.Addr(), pw+"x") {
		t.Fatal("pingOK does not tell the right password from a wrong one")
	}
	s.Kill()
	s.Restart()
	if !pingOK(s.Addr(), pw) {
		t.Fatal("no PONG after Restart")
	}
}

// aofField reads one field of INFO persistence ("" when absent).
func aofField(t *testing.T, addr, field string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(c, "INFO persistence\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, "$") {
		t.Fatalf("INFO persistence: %q %v", head, err)
	}
	var n int
	if _, err := fmt.Sscanf(head, "$%d", &n); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v
		}
	}
	return ""
}
