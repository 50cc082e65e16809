package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/relay/admin"
	"github.com/eventrelay/relay/relay/queue"
)

const tailToken = "tail-admin-token-0123456789"

// startTailServer runs an admin server with tail (no Redis: the tail needs none).
func startTailServer(t *testing.T, tail *admin.Tail) string {
	t.Helper()
	srv := admin.New(admin.Options{Gatherer: prometheus.NewRegistry(), Log: zap.NewNop(),
		Providers: []string{"ens", "brevo"}, Token: tailToken, Tail: tail})
	return serveAdmin(t, srv)
}

// bigEvent is an outcome with a long error, so that a few thousand fill socket buffers.
func bigEvent(tail *admin.Tail, i int) {
	m := &delivery.Message{ID: fmt.Sprintf("ev-%d", i), Route: "ens/click", Source: "client:backend"}
	tail.Observe("ens", m, &queue.TraceRecord{At: time.Now().UnixMilli(), Attempt: 1, Outcome: queue.TraceRetry,
		Status: 503, Class: "5xx", Error: strings.Repeat("x", 4000)})
}

// waitCond polls cond for up to d.
func waitCond(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rawTail opens the tail on a plain TCP connection that the test reads only when it
// wants to, and returns it once the stream has started (its first line read).
func rawTail(t *testing.T, addr, query string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	fmt.Fprintf(c, "GET /admin/api/tail?%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", query, tailToken)
	r := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("tail start: %v", err)
		}
		if strings.HasPrefix(line, ": live tail") {
			return c, r
		}
	}
}

// A client that stops reading never slows publishing: events are published while it
// reads nothing, each publish staying quick, until the relay drops it (its socket full,
// a write did not go through within the wait).
func TestTailSlowClientNeverBlocksPublishing(t *testing.T) {
	tail := admin.NewTail(64)
	addr := startTailServer(t, tail)
	stalled, _ := rawTail(t, addr, "")
	waitCond(t, 5*time.Second, "the subscriber", tail.Active)

	start := time.Now()
	var worst time.Duration
	n := 0
	for ; tail.Readers() > 0; n++ {
		if time.Since(start) > 90*time.Second {
			t.Fatalf("the stalled client was not dropped after %d events in 90 s", n)
		}
		t0 := time.Now()
		bigEvent(tail, n)
		worst = max(worst, time.Since(t0))
		if n%1000 == 999 {
			time.Sleep(time.Millisecond) // let the stream's goroutine run on a busy machine
		}
	}
	t.Logf("stalled client dropped after %d publishes in %v; slowest publish %v", n, time.Since(start), worst)
	// A publish that waited for the client would have waited for its write deadline (5 s).
	if worst > 2*time.Second {
		t.Errorf("a publish took %v: publishing waited for the client", worst)
	}
	_ = stalled.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.Copy(io.Discard, stalled); err != nil {
		t.Errorf("stalled client: its stream did not end: %v", err)
	}
}

// A reader that falls more than the ring behind is told how many events it skipped, then
// goes on with the newest.
func TestTailLaggingReaderSkips(t *testing.T) {
	tail := admin.NewTail(64)
	addr := startTailServer(t, tail)
	lagging, r := rawTail(t, addr, "provider=ens")
	// Far more than the socket buffers hold: the stream's writes block and the ring
	// overwrites what it has not sent.
	for i := range 20_000 {
		bigEvent(tail, i)
	}
	_ = lagging.SetReadDeadline(time.Now().Add(20 * time.Second))
	sawSkip, events := false, 0
	for !sawSkip || events == 0 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("lagging reader: %v (skip %v, events %d)", err, sawSkip, events)
		}
		sawSkip = sawSkip || strings.HasPrefix(line, "event: skipped")
		if sawSkip && strings.HasPrefix(line, "data: {\"seq\"") {
			events++
		}
	}
}

// The tail needs the admin token, and refuses unknown filters by name.
func TestTailAuthAndFilters(t *testing.T) {
	tail := admin.NewTail(16)
	addr := startTailServer(t, tail)
	for _, c := range []struct {
		query, token string
		want         int
		field        string
	}{
		{"", "", 401, ""},
		{"", "wrong-token-0123456789", 401, ""},
		{"provider=nope", tailToken, 400, "provider"},
		{"status=weird", tailToken, 400, "status"},
		{"status=700", tailToken, 400, "status"},
	} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/admin/api/tail?"+c.query, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != c.want || !strings.HasPrefix(string(b), `{"ok":false`) || !strings.Contains(string(b), c.field) {
			t.Errorf("%q: %d %s", c.query, res.StatusCode, b)
		}
	}
	if tail.Active() {
		t.Error("a refused request subscribed")
	}
}

// Ingested publishes what the wrapped queue accepted, and nothing when it failed; with
// nobody tailing it publishes nothing at all.
func TestTailIngested(t *testing.T) {
	tail := admin.NewTail(16)
	addr := startTailServer(t, tail)
	q := tail.Ingested(fakeQueue{})
	m := &delivery.Message{ID: "before", Provider: "ens", Route: "ens/click", Body: []byte(`{"email":"jane@example.com"}`)}
	if _, err := q.Enqueue(context.Background(), m, queue.RelayID); err != nil {
		t.Fatal(err)
	}
	_, r := rawTail(t, addr, "status=ingested")
	for _, id := range []string{"fails", "ok-1"} {
		m := &delivery.Message{ID: id, Provider: "ens", Route: "ens/click", Source: "site:shop", ClientIP: "203.0.113.9",
			Body: []byte(`{"email":"jane@example.com"}`), ReceivedAt: time.Now()}
		_, _ = q.Enqueue(context.Background(), m, queue.RelayID)
	}
	var data string
	for data == "" {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			data = d
		}
	}
	for _, want := range []string{`"kind":"ingested"`, `"id":"ok-1"`, `"route":"ens/click"`, `"source":"site:shop"`} {
		if !strings.Contains(data, want) {
			t.Errorf("tail event %s lacks %s", data, want)
		}
	}
	for _, leak := range []string{"jane", "203.0.113.9", "before", "fails"} {
		if strings.Contains(data, leak) {
			t.Errorf("tail event %s contains %q", data, leak)
		}
	}
	// A reader starts at the ring's next event, so "before" could never be seen; its
	// sequence shows whether it was published: with nobody tailing nothing is, so the
	// first event published is ok-1, sequence 0.
	var ev admin.TailEvent
	if err := json.Unmarshal([]byte(data), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Seq != 0 {
		t.Errorf("the first event published has seq %d, want 0: events were published with nobody tailing", ev.Seq)
	}
}

// fakeQueue accepts every event but the one with id "fails".
type fakeQueue struct{}

func (fakeQueue) Enqueue(_ context.Context, m *delivery.Message, _ queue.IDSource) (bool, error) {
	if m.ID == "fails" {
		return false, queue.ErrUnavailable
	}
	return false, nil
}

// A tail stream outlives the admin server's read and write timeouts (10 s, 30 s for
// other requests): it still delivers events after 11 s.
func TestTailOutlivesServerTimeouts(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 11 s")
	}
	tail := admin.NewTail(16)
	addr := startTailServer(t, tail)
	c, r := rawTail(t, addr, "")
	time.Sleep(11 * time.Second) // past the server's ReadTimeout: what is tested
	bigEvent(tail, 1)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("the stream ended after the server's read timeout: %v", err)
		}
		if strings.HasPrefix(line, "data: ") {
			return
		}
	}
}

// Shutting the server down ends tail streams cleanly (the terminating chunk, so a client
// sees the end) instead of leaving them open past the shutdown's deadline.
func TestTailEndsCleanlyOnShutdown(t *testing.T) {
	srv := admin.New(admin.Options{Gatherer: prometheus.NewRegistry(), Log: zap.NewNop(),
		Providers: []string{"ens"}, Token: tailToken, Tail: admin.NewTail(16)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+ln.Addr().String()+"/admin/api/tail", nil)
	req.Header.Set("Authorization", "Bearer "+tailToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	r := bufio.NewReader(res.Body)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, ": live tail") {
		t.Fatalf("tail start: %q %v", line, err)
	}
	cancel()
	if _, err := io.ReadAll(r); err != nil {
		t.Errorf("the tail stream did not end cleanly on shutdown: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
