package redistest

import (
	"bufio"
	"fmt"
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

	// AOF is on by default, and everysec loses nothing on a process kill.
	time.Sleep(1100 * time.Millisecond)
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
