package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/internal/redistest"
)

func TestEnqueueOneEntryPerMessage(t *testing.T) {
	_, conn := openRedis(t, redistest.Options{})
	e := runEnqueuer(t, conn.Client, defaultEnqOpts())
	ens, brevo := testMessage("ens", 1), testMessage("brevo", 2)
	ens.Country, ens.CustomerID = "", "" // empty optional fields round-trip as empty
	for _, m := range []*delivery.Message{ens, brevo} {
		if dup, err := e.Enqueue(t.Context(), m, ClientID); err != nil || dup {
			t.Fatalf("Enqueue %s: dup=%v %v", m.ID, dup, err)
		}
	}
	for _, m := range []*delivery.Message{ens, brevo} {
		got := entries(t, conn.Client, m.Provider)
		if len(got) != 1 || !equalMessage(got[0], *m) {
			t.Fatalf("%s stream: %+v, want %+v", m.Provider, got, *m)
		}
	}
	// The Seen marker lives 24 h.
	ttl, err := conn.Client.TTL(t.Context(), Keys{Prefix: testPrefix}.Seen("ens", ens.Source, ens.ID)).Result()
	if err != nil || ttl < 23*time.Hour || ttl > 24*time.Hour {
		t.Fatalf("seen TTL %v %v", ttl, err)
	}
}

func TestEnqueueDuplicate(t *testing.T) {
	_, conn := openRedis(t, redistest.Options{})
	e := runEnqueuer(t, conn.Client, defaultEnqOpts())
	m := testMessage("ens", 1)
	if dup, err := e.Enqueue(t.Context(), m, ClientID); err != nil || dup {
		t.Fatalf("first: dup=%v %v", dup, err)
	}
	m2 := *m
	m2.Body = []byte(`{"other":true}`)
	if dup, err := e.Enqueue(t.Context(), &m2, ClientID); err != nil || !dup {
		t.Fatalf("second: dup=%v %v", dup, err)
	}
	if got := entries(t, conn.Client, "ens"); len(got) != 1 || !bytes.Equal(got[0].Body, m.Body) {
		t.Fatalf("entries %+v", got)
	}
}

// TestEnqueueRelayIDLeavesNoMarker: an event whose id the relay generated is written by
// a plain XADD and leaves no key besides its entry (nobody can resend it).
func TestEnqueueRelayIDLeavesNoMarker(t *testing.T) {
	_, conn := openRedis(t, redistest.Options{})
	e := runEnqueuer(t, conn.Client, defaultEnqOpts())
	var want []*delivery.Message
	for i := range 5 {
		m := testMessage("ens", i)
		if dup, err := e.Enqueue(t.Context(), m, RelayID); err != nil || dup {
			t.Fatalf("Enqueue %s: dup=%v %v", m.ID, dup, err)
		}
		want = append(want, m)
	}
	got := entries(t, conn.Client, "ens")
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if !equalMessage(got[i], *want[i]) {
			t.Fatalf("entry %d: %+v, want %+v", i, got[i], *want[i])
		}
	}
	keys, err := conn.Client.Keys(t.Context(), "*").Result()
	if err != nil || len(keys) != 1 || keys[0] != (Keys{Prefix: testPrefix}).Events("ens") {
		t.Fatalf("keys %v (%v), want only the events stream", keys, err)
	}
	if st := e.Stats(); st.Commands != 5 || st.Events != 5 {
		t.Errorf("stats %+v: want one XADD per event", st)
	}
}

// TestEnqueueClientIDScopedToCaller: the same client id from two callers is two events;
// a resend from the same caller is a duplicate of its own first event only.
func TestEnqueueClientIDScopedToCaller(t *testing.T) {
	_, conn := openRedis(t, redistest.Options{})
	e := runEnqueuer(t, conn.Client, defaultEnqOpts())
	shop := testMessage("ens", 1)
	backend := testMessage("ens", 1)
	backend.Source, backend.Body = "client:backend", []byte(`{"from":"backend"}`)
	for _, m := range []*delivery.Message{shop, backend} {
		if dup, err := e.Enqueue(t.Context(), m, ClientID); err != nil || dup {
			t.Fatalf("first from %s: dup=%v %v", m.Source, dup, err)
		}
	}
	for _, m := range []*delivery.Message{shop, backend} {
		if dup, err := e.Enqueue(t.Context(), m, ClientID); err != nil || !dup {
			t.Fatalf("resend from %s: dup=%v %v, want a duplicate", m.Source, dup, err)
		}
	}
	got := entries(t, conn.Client, "ens")
	if len(got) != 2 || got[0].Source != shop.Source || got[1].Source != backend.Source {
		t.Fatalf("entries %+v, want one per caller", got)
	}
	k := Keys{Prefix: testPrefix}
	for _, m := range []*delivery.Message{shop, backend} {
		if n, _ := conn.Client.Exists(t.Context(), k.Seen("ens", m.Source, m.ID)).Result(); n != 1 {
			t.Errorf("no marker %s", k.Seen("ens", m.Source, m.ID))
		}
	}
}

// TestEnqueueMixedPipeline: keyed and unkeyed events of several providers in one
// pipeline each get their own answer, a failing stream failing only its own events.
func TestEnqueueMixedPipeline(t *testing.T) {
	_, conn := openRedis(t, redistest.Options{})
	k := Keys{Prefix: testPrefix}
	// brevo's stream is a string: every XADD to it fails with WRONGTYPE.
	if err := conn.Client.Set(t.Context(), k.Events("brevo"), "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	e := runEnqueuer(t, conn.Client, defaultEnqOpts())
	type call struct {
		m   *delivery.Message
		src IDSource
	}
	var calls []call
	for i := range 8 {
		p := []string{"ens", "brevo"}[i%2]
		calls = append(calls, call{testMessage(p, i), IDSource(i / 2 % 2)})
	}
	var wg sync.WaitGroup
	errs := make([]error, len(calls))
	for i, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.Enqueue(t.Context(), c.m, c.src)
		}()
	}
	wg.Wait()
	for i, c := range calls {
		if failed := errs[i] != nil; failed != (c.m.Provider == "brevo") {
			t.Errorf("%s (%v): err %v", c.m.ID, c.src, errs[i])
		}
		if c.m.Provider == "brevo" && c.src == ClientID {
			// The marker of an event that was not written is removed: a resend is not a duplicate.
			if n, _ := conn.Client.Exists(t.Context(), k.Seen("brevo", c.m.Source, c.m.ID)).Result(); n != 0 {
				t.Errorf("marker left for failed %s", c.m.ID)
			}
		}
	}
	if got := countIDs(entries(t, conn.Client, "ens")); len(got) != 4 {
		t.Errorf("ens entries %v, want 4", got)
	}
}

func TestEnqueueConcurrentGroupCommit(t *testing.T) {
	_, conn := openRedis(t, redistest.Options{})
	e := runEnqueuer(t, conn.Client, defaultEnqOpts())
	const goroutines, each = 200, 20
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				m := testMessage([]string{"ens", "brevo"}[g%2], g*each+i)
				if dup, err := e.Enqueue(t.Context(), m, ClientID); err != nil || dup {
					errs <- fmt.Errorf("%s: dup=%v %w", m.ID, dup, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for _, p := range []string{"ens", "brevo"} {
		n := countIDs(entries(t, conn.Client, p))
		for id, c := range n {
			if c != 1 {
				t.Errorf("%s: %d entries", id, c)
			}
		}
		total += len(n)
	}
	s := e.Stats()
	t.Logf("%d messages in %d script calls in %d pipelines", s.Events, s.Commands, s.Pipelines)
	if total != goroutines*each || s.Events != goroutines*each {
		t.Fatalf("%d distinct entries, %d events written; want %d", total, s.Events, goroutines*each)
	}
	if s.Pipelines >= s.Events || s.Commands >= s.Events {
		t.Fatalf("no batching: %d pipelines, %d script calls for %d messages", s.Pipelines, s.Commands, s.Events)
	}
	if s.Commands > 2*s.Pipelines {
		t.Fatalf("%d script calls in %d pipelines: want at most one per provider (2) per pipeline", s.Commands, s.Pipelines)
	}
}

// timedEnqueue enqueues m, which must be accepted, and returns how long that took: the
// baseline for enqueueUnavailable's allowance, measured on this machine under its load.
func timedEnqueue(t *testing.T, e *Enqueuer, m *delivery.Message) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := e.Enqueue(t.Context(), m, ClientID); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// enqueueUnavailable asserts that Enqueue fails with ErrUnavailable within the enqueue
// timeout (defaultEnqOpts) plus an allowance of max(500 ms, 4 × baseline), baseline being
// an accepted enqueue's time in the same test: a busy machine stretches both alike, while
// an enqueue that waited twice (stacked timeouts) or for ever still fails.
func enqueueUnavailable(t *testing.T, e *Enqueuer, m *delivery.Message, baseline time.Duration) {
	t.Helper()
	start := time.Now()
	_, err := e.Enqueue(t.Context(), m, ClientID)
	took := time.Since(start)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	timeout := defaultEnqOpts().Timeout
	if limit := timeout + max(500*time.Millisecond, 4*baseline); took > limit {
		t.Fatalf("took %v with a %v enqueue timeout (limit %v from a %v baseline)", took, timeout, limit, baseline)
	}
	t.Logf("unavailable after %v: %v", took, err)
}

// enqueueEventually resends m until it is accepted (new or duplicate), as a client does.
func enqueueEventually(t *testing.T, e *Enqueuer, m *delivery.Message) {
	t.Helper()
	var err error
	for range 20 {
		if _, err = e.Enqueue(t.Context(), m, ClientID); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("never accepted: %v", err)
}

func TestEnqueueRedisKilledAndRestarted(t *testing.T) {
	srv, conn := openRedis(t, redistest.Options{})
	e := runEnqueuer(t, conn.Client, defaultEnqOpts())
	var baseline time.Duration
	for i := range 10 {
		baseline = max(baseline, timedEnqueue(t, e, testMessage("ens", i)))
	}
	srv.Kill()
	enqueueUnavailable(t, e, testMessage("ens", 100), baseline)

	// With AOF, what was accepted survives; the script cache does not (NOSCRIPT path).
	srv.Restart()
	enqueueEventually(t, e, testMessage("ens", 101))
	for i := 102; i < 110; i++ {
		if _, err := e.Enqueue(t.Context(), testMessage("ens", i), ClientID); err != nil {
			t.Fatalf("after restart: %v", err)
		}
	}
	n := countIDs(entries(t, conn.Client, "ens"))
	if len(n) != 19 || n["ev-ens-100"] != 0 {
		t.Fatalf("entries %v: want the 10 before the kill and the 9 after, nothing from while it was down", n)
	}
	for id, c := range n {
		if c != 1 {
			t.Errorf("%s: %d entries", id, c)
		}
	}
	if e.Stats().ScriptReloads == 0 {
		t.Fatal("no NOSCRIPT reload after a restart")
	}
}

func TestEnqueueRedisPaused(t *testing.T) {
	srv, conn := openRedis(t, redistest.Options{})
	e := runEnqueuer(t, conn.Client, defaultEnqOpts())
	baseline := timedEnqueue(t, e, testMessage("ens", 1))
	srv.Pause()
	m := testMessage("ens", 2)
	enqueueUnavailable(t, e, m, baseline)
	srv.Resume()
	// The paused server may still run the command it had received: resending the same
	// id must then be a duplicate, never a second entry.
	enqueueEventually(t, e, m)
	if n := countIDs(entries(t, conn.Client, "ens")); len(n) != 2 || n[m.ID] != 1 {
		t.Fatalf("entries %v", n)
	}
}

// TestEnqueueBoundedWithWritersStuck: with Redis paused, the one writer is stuck in a
// pipeline and later requests pile up in the channel behind it; every one of them must
// still be answered within the enqueue timeout (Enqueue has no timer of its own: the
// pipeline's deadline and the writer's check of each request's deadline bound them).
func TestEnqueueBoundedWithWritersStuck(t *testing.T) {
	srv, conn := openRedis(t, redistest.Options{})
	opts := defaultEnqOpts()
	opts.Writers, opts.MaxBatch = 1, 2
	e := runEnqueuer(t, conn.Client, opts)
	baseline := timedEnqueue(t, e, testMessage("ens", 0))
	srv.Pause()
	defer srv.Resume()
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 40 * time.Millisecond) // spread over half the timeout
			enqueueUnavailable(t, e, testMessage("ens", 100+i), baseline)
		})
	}
	wg.Wait()
}

func TestEnqueueScriptFlushed(t *testing.T) {
	_, conn := openRedis(t, redistest.Options{})
	e := runEnqueuer(t, conn.Client, defaultEnqOpts())
	if _, err := e.Enqueue(t.Context(), testMessage("ens", 1), ClientID); err != nil {
		t.Fatal(err)
	}
	if err := conn.Client.ScriptFlush(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 3; i++ {
		if dup, err := e.Enqueue(t.Context(), testMessage("ens", i), ClientID); err != nil || dup {
			t.Fatalf("after SCRIPT FLUSH: dup=%v %v", dup, err)
		}
	}
	if s := e.Stats(); s.ScriptReloads != 1 {
		t.Fatalf("ScriptReloads = %d, want 1 (EVAL reloads the cache)", s.ScriptReloads)
	}
	if n := len(entries(t, conn.Client, "ens")); n != 3 {
		t.Fatalf("%d entries", n)
	}
}

// TestEnqueueFailedXaddKeepsNoMarker: when XADD fails inside the script, the marker it
// set is removed, so the client's resend is enqueued rather than called a duplicate.
func TestEnqueueFailedXaddKeepsNoMarker(t *testing.T) {
	_, conn := openRedis(t, redistest.Options{})
	e := runEnqueuer(t, conn.Client, defaultEnqOpts())
	k := Keys{Prefix: testPrefix}
	if err := conn.Client.Set(t.Context(), k.Events("ens"), "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	m := testMessage("ens", 1)
	if _, err := e.Enqueue(t.Context(), m, ClientID); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable (WRONGTYPE)", err)
	}
	if n, _ := conn.Client.Exists(t.Context(), k.Seen("ens", m.Source, m.ID)).Result(); n != 0 {
		t.Fatal("marker left behind by a failed XADD")
	}
	conn.Client.Del(t.Context(), k.Events("ens"))
	if dup, err := e.Enqueue(t.Context(), m, ClientID); err != nil || dup {
		t.Fatalf("resend: dup=%v %v", dup, err)
	}
}

// TestEnqueueDoesNotRetainMessage overwrites each caller's buffers as soon as Enqueue
// returns, including after timeouts with the write still in flight. Run with -race.
func TestEnqueueDoesNotRetainMessage(t *testing.T) {
	_, conn := openRedis(t, redistest.Options{})
	e := runEnqueuer(t, conn.Client, defaultEnqOpts())
	const goroutines, each = 16, 40
	var (
		wg        sync.WaitGroup
		abandoned atomic.Int64
	)
	for g := range goroutines {
		wg.Go(func() {
			body := make([]byte, 256)
			id := make([]byte, 0, 32)
			for i := range each {
				n := g*each + i
				id = fmt.Appendf(id[:0], "ev-%d", n)
				for j := range body {
					body[j] = 'a' + byte(n%26)
				}
				m := &delivery.Message{ID: string(id), Provider: "ens", Route: "ens/click", Body: body,
					ReceivedAt: time.Now(), Source: "s"}
				// Every third call gives up almost at once, usually while its write is queued
				// or in flight.
				ctx, cancel := context.WithTimeout(t.Context(), time.Second)
				if i%3 == 0 {
					cancel()
					ctx, cancel = context.WithTimeout(t.Context(), 50*time.Microsecond)
				}
				if _, err := e.Enqueue(ctx, m, ClientID); err != nil {
					abandoned.Add(1)
				}
				cancel()
				for j := range body {
					body[j] = 'X' // the caller's buffer is recycled
				}
				*m = delivery.Message{}
			}
		})
	}
	wg.Wait()
	t.Logf("%d of %d calls gave up early", abandoned.Load(), goroutines*each)
	if abandoned.Load() == 0 {
		t.Fatal("no call gave up: the test did not exercise abandoned requests")
	}
	got := entries(t, conn.Client, "ens")
	if len(got) < goroutines*each/2 {
		t.Fatalf("only %d entries", len(got))
	}
	for _, m := range got {
		var n int
		if _, err := fmt.Sscanf(m.ID, "ev-%d", &n); err != nil {
			t.Fatal(err)
		}
		want := bytes.Repeat([]byte{'a' + byte(n%26)}, 256)
		if !bytes.Equal(m.Body, want) {
			t.Fatalf("%s: body %q", m.ID, m.Body)
		}
	}
}

func TestEnqueueHighWaterMark(t *testing.T) {
	_, conn := openRedis(t, redistest.Options{})
	opts := defaultEnqOpts()
	opts.Providers = []string{"ens", "brevo"}
	opts.HighWaterMark = 5
	opts.HighWaterPoll = 20 * time.Millisecond
	e := runEnqueuer(t, conn.Client, opts)
	k := Keys{Prefix: testPrefix}
	for i := range 6 {
		if _, err := e.Enqueue(t.Context(), testMessage("ens", i), ClientID); err != nil {
			t.Fatal(err)
		}
	}
	// The retry set counts too: 6 in the stream + 0 retries is over 5 already.
	var err error
	deadline := time.Now().Add(2 * time.Second)
	for i := 100; time.Now().Before(deadline); i++ {
		if _, err = e.Enqueue(t.Context(), testMessage("ens", i), ClientID); errors.Is(err, ErrOverHighWater) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !errors.Is(err, ErrOverHighWater) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrOverHighWater wrapping ErrUnavailable", err)
	}
	if _, err := e.Enqueue(t.Context(), testMessage("brevo", 1), ClientID); err != nil {
		t.Fatalf("another provider must not be refused: %v", err)
	}

	// Delivered entries are deleted; retries count toward the backlog.
	if err := conn.Client.Del(t.Context(), k.Events("ens")).Err(); err != nil {
		t.Fatal(err)
	}
	conn.Client.ZAdd(t.Context(), k.Retry("ens"), redisZ(1), redisZ(2))
	deadline = time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if _, err = e.Enqueue(t.Context(), testMessage("ens", 1000), ClientID); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("mark never cleared: %v", err)
	}
}

func TestEnqueueAfterStop(t *testing.T) {
	_, conn := openRedis(t, redistest.Options{})
	e := NewEnqueuer(conn.Client, Keys{Prefix: testPrefix}, defaultEnqOpts(), zapTest(t))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	if _, err := e.Enqueue(t.Context(), testMessage("ens", 1), ClientID); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	// At once: well before the enqueue timeout a request waiting for a writer would hit.
	start := time.Now()
	if _, err := e.Enqueue(t.Context(), testMessage("ens", 2), ClientID); !errors.Is(err, ErrUnavailable) ||
		time.Since(start) >= defaultEnqOpts().Timeout/2 {
		t.Fatalf("after stop: %v after %v", err, time.Since(start))
	}
	if err := e.Run(t.Context()); err == nil {
		t.Fatal("second Run succeeded")
	}
}

func TestEnqueueRejectsIncompleteMessage(t *testing.T) {
	e := NewEnqueuer(nil, Keys{Prefix: testPrefix}, defaultEnqOpts(), zapTest(t))
	for _, m := range []*delivery.Message{{Provider: "ens", Route: "ens/click"}, {ID: "x", Route: "ens/click"}, {ID: "x", Provider: "ens"}} {
		if _, err := e.Enqueue(t.Context(), m, ClientID); err == nil {
			t.Errorf("%+v accepted", m)
		}
	}
}

// BenchmarkEnqueue measures the group commit against a real redis-server, with every
// request its own goroutine as on an ingest server. relay-us/op and redis-us/op are the
// CPU each side spends per event, which a shared machine distorts less than ns/op.
func BenchmarkEnqueue(b *testing.B) {
	four := []string{"ens", "bannerflex", "linkrunner", "brevo"}
	for _, bc := range []struct {
		name      string
		providers []string
		writers   int
		src       IDSource
	}{
		{"1provider", []string{"ens"}, 4, ClientID},
		{"4providers", four, 4, ClientID},
		{"4providers_1writer", four, 1, ClientID},
		// Events whose id the relay generated: plain XADDs, no marker.
		{"unkeyed_4providers_4writers", four, 4, RelayID},
		{"unkeyed_4providers_2writers", four, 2, RelayID},
		{"unkeyed_4providers_1writer", four, 1, RelayID},
	} {
		b.Run(bc.name, func(b *testing.B) {
			_, conn := openRedis(b, redistest.Options{})
			opts := defaultEnqOpts()
			// MaxBatch is the config default; Providers as in production (events keys precomputed).
			opts.Writers, opts.MaxBatch, opts.Providers = bc.writers, 256, bc.providers
			e := runEnqueuer(b, conn.Client, opts)
			ctx := context.Background()
			var seq sync.Mutex
			next := 0
			b.SetParallelism(32) // many concurrent requests per CPU, as on an ingest server
			b.ReportAllocs()
			cpu := redistest.StartCPU(b, conn.Client)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				seq.Lock()
				base := next
				next += 1 << 30
				seq.Unlock()
				m := testMessage("ens", 0)
				for i := 0; pb.Next(); i++ {
					m.Provider = bc.providers[i%len(bc.providers)]
					m.ID = "bench-" + itoa(base+i)
					if _, err := e.Enqueue(ctx, m, bc.src); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.StopTimer()
			cpu.Report(b)
			s := e.Stats()
			b.ReportMetric(float64(b.N)/float64(max(s.Pipelines, 1)), "msgs/pipeline")
		})
	}
}
