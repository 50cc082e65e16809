package queue

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/eventrelay/relay/internal/redistest"
)

func TestParseURL(t *testing.T) {
	t.Run("single", func(t *testing.T) {
		o, addr, err := parseURL("redis://u:s3cret@10.0.0.1:6380/3?client_name=relay")
		if err != nil {
			t.Fatal(err)
		}
		if addr != "10.0.0.1:6380" || o.Addrs[0] != addr || o.Username != "u" || o.Password != "s3cret" ||
			o.DB != 3 || o.ClientName != "relay" || o.TLSConfig != nil || o.MasterName != "" || o.IsClusterMode {
			t.Fatalf("%q %+v", addr, o)
		}
		o, _, err = parseURL("rediss://h:6379")
		if err != nil || o.TLSConfig == nil {
			t.Fatalf("rediss: %v %+v", err, o)
		}
	})
	t.Run("sentinel", func(t *testing.T) {
		o, addr, err := parseURL("redis+sentinel://u:p%40ss@s1:26379,s2:26379/2?master=mymaster&sentinel_password=sp")
		if err != nil {
			t.Fatal(err)
		}
		if o.MasterName != "mymaster" || len(o.Addrs) != 2 || o.Addrs[1] != "s2:26379" || o.DB != 2 ||
			o.Username != "u" || o.Password != "p@ss" || o.SentinelPassword != "sp" || o.IsClusterMode {
			t.Fatalf("%+v", o)
		}
		if addr != "sentinel master mymaster via s1:26379,s2:26379" {
			t.Fatalf("addr %q", addr)
		}
		if o, _, err := parseURL("rediss+sentinel://s1:26379?master=m"); err != nil || o.TLSConfig == nil {
			t.Fatalf("rediss+sentinel: %v", err)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		o, addr, err := parseURL("redis+cluster://:pw@c1:7000,c2:7001,[::1]:7002")
		if err != nil {
			t.Fatal(err)
		}
		if !o.IsClusterMode || len(o.Addrs) != 3 || o.Addrs[2] != "[::1]:7002" || o.Password != "pw" ||
			addr != "cluster c1:7000,c2:7001,[::1]:7002" {
			t.Fatalf("%q %+v", addr, o)
		}
	})
	t.Run("errors never quote the password", func(t *testing.T) {
		for _, raw := range []string{
			"http://x:s3cret@h:1",
			"redis://x:s3cret@h:1?dial_timeout=9s",
			"redis://x:s3cret@h:port/0",
			"redis://x:s3cret@h:1/notadb",
			"redis+sentinel://x:s3cret@s1:26379/0",
			"redis+sentinel://x:s3cret@s1:26379/zero?master=m",
			"redis+sentinel://x:s3cret@s1:26379?master=m&read_timeout=1",
			"redis+cluster://x:s3cret@c1:7000,c2/0",
			"redis+cluster://x:s3cret@c1:7000/1",
			"redis+cluster://x:s3cret@c1:7000?master=m",
			"x:s3cret@h:1",
		} {
			_, _, err := parseURL(raw)
			if err == nil {
				t.Errorf("%s: no error", raw)
				continue
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("%s: error quotes the password: %v", raw, err)
			}
		}
	})
}

func TestOpenEmbedded(t *testing.T) {
	log, logs := observed(t)
	conn, err := Open(t.Context(), testConfig(""), log)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if !conn.Embedded || logs.FilterMessageSnippet("NOT durable").Len() != 1 {
		t.Fatalf("embedded=%v, want a loud warning; logs: %v", conn.Embedded, logs.All())
	}
	if err := conn.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	e := runEnqueuer(t, conn.Client, defaultEnqOpts())
	m := testMessage("ens", 1)
	if dup, err := e.Enqueue(t.Context(), m, ClientID); err != nil || dup {
		t.Fatalf("Enqueue: %v %v", dup, err)
	}
	if dup, err := e.Enqueue(t.Context(), m, ClientID); err != nil || !dup {
		t.Fatalf("second Enqueue: dup=%v %v", dup, err)
	}
	got := entries(t, conn.Client, "ens")
	if len(got) != 1 || !equalMessage(got[0], *m) {
		t.Fatalf("entries %+v", got)
	}
}

func TestOpenChecks(t *testing.T) {
	t.Run("production settings pass", func(t *testing.T) {
		openRedis(t, redistest.Options{})
	})
	t.Run("appendonly no is refused", func(t *testing.T) {
		srv := redistest.Start(t, redistest.Options{AOF: "no"})
		_, err := Open(t.Context(), testConfig(srv.URL()), zaptest.NewLogger(t))
		if !errors.Is(err, ErrUnsafeRedis) || !strings.Contains(err.Error(), "appendonly yes") ||
			!strings.Contains(err.Error(), srv.Addr()) {
			t.Fatalf("err = %v", err)
		}
		t.Log(err)
	})
	t.Run("allow_unsafe warns and goes on", func(t *testing.T) {
		srv := redistest.Start(t, redistest.Options{AOF: "no"})
		cfg := testConfig(srv.URL())
		cfg.AllowUnsafe = true
		log, logs := observed(t)
		conn, err := Open(t.Context(), cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
		if logs.FilterMessageSnippet("MAY LOSE").Len() != 1 {
			t.Fatalf("no warning: %v", logs.All())
		}
	})
	t.Run("evicting policy is refused", func(t *testing.T) {
		srv := redistest.Start(t, redistest.Options{MaxmemoryPolicy: "allkeys-lru"})
		_, err := Open(t.Context(), testConfig(srv.URL()), zaptest.NewLogger(t))
		if !errors.Is(err, ErrUnsafeRedis) || !strings.Contains(err.Error(), "maxmemory-policy noeviction") ||
			strings.Contains(err.Error(), "appendonly is off") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("INFO not permitted counts as unsafe", func(t *testing.T) {
		srv := redistest.Start(t, redistest.Options{})
		admin, err := Open(t.Context(), testConfig(srv.URL()), zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		err = admin.Client.Do(t.Context(), "ACL", "SETUSER", "relay", "on", ">pw", "~*", "+@all", "-info").Err()
		if err != nil {
			t.Fatal(err)
		}
		url := "redis://relay:pw@" + srv.Addr() + "/0"
		_, err = Open(t.Context(), testConfig(url), zaptest.NewLogger(t))
		if !errors.Is(err, ErrUnsafeRedis) || !strings.Contains(err.Error(), "cannot read INFO") ||
			strings.Contains(err.Error(), ":pw") {
			t.Fatalf("err = %v", err)
		}
		cfg := testConfig(url)
		cfg.AllowUnsafe = true
		conn, err := Open(t.Context(), cfg, zaptest.NewLogger(t))
		if err != nil {
			t.Fatalf("with allow_unsafe: %v", err)
		}
		conn.Close()
	})
	t.Run("unreachable names the address, not the password", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		ln.Close() // nothing listens there now
		_, err = Open(t.Context(), testConfig("redis://:s3cret@127.0.0.1:"+port+"/0"), zaptest.NewLogger(t))
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "127.0.0.1:"+port) ||
			strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("err = %v", err)
		}
	})
}
