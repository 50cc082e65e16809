package ingest

import (
	"net/netip"
	"testing"
	"time"
)

func TestLimiterMemoryStaysBoundedUnderIPFlood(t *testing.T) {
	const maxTracked = 1000
	l := newIPLimiter(maxTracked)
	now := time.Now()
	for i := range 200_000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if ok, _ := l.allow(limiterKey{ip: a.As16()}, 1, 1, now); !ok {
			t.Fatalf("first request from a new address %v refused", a)
		}
	}
	if n := l.tracked(); n > maxTracked {
		t.Fatalf("%d buckets tracked, cap %d", n, maxTracked)
	}
}

func TestLimiterRetryAfter(t *testing.T) {
	l := newIPLimiter(100)
	k := limiterKey{ip: netip.MustParseAddr("192.0.2.1").As16()}
	now := time.Now()
	for i := range 3 {
		if ok, _ := l.allow(k, 0.5, 3, now); !ok {
			t.Fatalf("request %d within burst refused", i)
		}
	}
	ok, wait := l.allow(k, 0.5, 3, now)
	if ok || wait != 2 {
		t.Fatalf("after burst: ok=%v wait=%d, want refused with 2 s", ok, wait)
	}
	if ok, _ := l.allow(k, 0.5, 3, now.Add(2*time.Second)); !ok {
		t.Fatal("refused after waiting Retry-After")
	}
	// Another site's bucket for the same IP is separate.
	if ok, _ := l.allow(limiterKey{site: 1, ip: k.ip}, 0.5, 3, now); !ok {
		t.Fatal("site buckets are shared")
	}
}

func TestClientIP(t *testing.T) {
	px, err := parseProxies([]string{"10.0.0.0/8", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	peerProxy := netip.MustParseAddr("10.1.2.3")
	peerOther := netip.MustParseAddr("203.0.113.5")
	cases := []struct {
		peer netip.Addr
		xff  string
		want string
	}{
		{peerOther, "198.51.100.1", "203.0.113.5"},                     // untrusted peer: XFF ignored
		{peerProxy, "198.51.100.1", "198.51.100.1"},                    // trusted peer
		{peerProxy, "6.6.6.6, 198.51.100.1", "198.51.100.1"},           // client-written left part ignored
		{peerProxy, "6.6.6.6, 198.51.100.1, 10.9.9.9", "198.51.100.1"}, // chain of proxies
		{peerProxy, "198.51.100.1, 192.0.2.7", "198.51.100.1"},
		{peerProxy, "garbage", "10.1.2.3"},
		{peerProxy, "", "10.1.2.3"},
		{peerProxy, "10.0.0.1, 10.0.0.2", "10.0.0.1"},
		{netip.MustParseAddr("::ffff:10.1.2.3"), "2001:db8::1", "2001:db8::1"},
	}
	for _, c := range cases {
		if got := px.clientIP(c.peer, []byte(c.xff)).String(); got != c.want {
			t.Errorf("clientIP(%v, %q) = %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
}
