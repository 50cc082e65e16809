package queue

import (
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/internal/redistest"
)

// The tests here check that go-redis never re-sends an enqueue pipeline whose writes may
// have been applied: an event without a marker (RelayID) would be written twice, and
// possibly answered as written once.

// TestWaitPastReadTimeoutWritesOnce: min_replicas_acked 1 with no replica and an
// enqueue_timeout above the client's 2 s read timeout. WAIT must give up before the read
// deadline, and its timed-out read must not make go-redis re-send the plain XADD.
func TestWaitPastReadTimeoutWritesOnce(t *testing.T) {
	_, conn := openRedis(t, redistest.Options{}) // no replica: WAIT 1 blocks until its timeout
	opts := defaultEnqOpts()
	opts.MinReplicas = 1
	opts.Timeout = 5 * time.Second
	e := runEnqueuer(t, conn.Client, opts)
	start := time.Now()
	_, err := e.Enqueue(t.Context(), testMessage("ens", 1), RelayID)
	took := time.Since(start)
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("enqueue without the replica it waits for: %v; want ErrUnavailable", err)
	}
	if took > opts.Timeout+time.Second {
		t.Errorf("answered after %s; want within the enqueue timeout %s", took, opts.Timeout)
	}
	if n := conn.Client.XLen(t.Context(), Keys{Prefix: testPrefix}.Events("ens")).Val(); n != 1 {
		t.Errorf("one Enqueue left %d entries in the stream; want 1", n)
	}
}

// TestWaitPastReadTimeoutNotAcceptedTwice: the replica stalls for longer than the read
// timeout, then catches up well within the enqueue timeout. The event must exist once,
// and be answered 503 (its replica acknowledgement did not come in time) or as written.
func TestWaitPastReadTimeoutNotAcceptedTwice(t *testing.T) {
	master, conn := openRedis(t, redistest.Options{})
	replica := redistest.StartReplica(t, master)
	waitReplicaOnline(t, conn.Client, 1)
	opts := defaultEnqOpts()
	opts.MinReplicas = 1
	opts.Timeout = 8 * time.Second
	e := runEnqueuer(t, conn.Client, opts)
	replica.Pause()
	resumed := make(chan struct{})
	go func() {
		defer close(resumed)
		time.Sleep(readTimeout + 500*time.Millisecond) // a stall, not a measurement
		replica.Resume()
	}()
	_, err := e.Enqueue(t.Context(), testMessage("ens", 1), RelayID)
	<-resumed
	if err != nil && !errors.Is(err, ErrUnavailable) {
		t.Errorf("enqueue: %v; want nil or ErrUnavailable", err)
	}
	if n := conn.Client.XLen(t.Context(), Keys{Prefix: testPrefix}.Events("ens")).Val(); n != 1 {
		t.Errorf("one Enqueue (err=%v) left %d entries in the stream; want 1", err, n)
	}
}

// TestStalledRedisWritesOnce: without WAIT, Redis stalls (SIGSTOP) for longer than the
// read timeout, inside the enqueue timeout. The read times out with the XADD already on
// the wire; a re-send would be applied too once Redis resumes. The caller must get
// ErrUnavailable (503, Retry-After) and the stream one entry.
func TestStalledRedisWritesOnce(t *testing.T) {
	master, conn := openRedis(t, redistest.Options{})
	opts := defaultEnqOpts()
	opts.Timeout = 6 * time.Second
	e := runEnqueuer(t, conn.Client, opts)
	if _, err := e.Enqueue(t.Context(), testMessage("ens", 0), RelayID); err != nil {
		t.Fatalf("enqueue before the stall: %v", err)
	}
	master.Pause()
	resumed := make(chan struct{})
	go func() {
		defer close(resumed)
		time.Sleep(readTimeout + time.Second) // a stall, not a measurement
		master.Resume()
	}()
	_, err := e.Enqueue(t.Context(), testMessage("ens", 1), RelayID)
	<-resumed
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("enqueue through a stall past the read timeout: %v; want ErrUnavailable", err)
	}
	events := Keys{Prefix: testPrefix}.Events("ens")
	// The XADD sent before the stall is applied when Redis resumes: wait for it, then
	// check that no second copy follows it.
	waitFor(t, "the stalled XADD to be applied", 5*time.Second, func() bool {
		return conn.Client.XLen(t.Context(), events).Val() >= 2
	})
	if got := countIDs(entries(t, conn.Client, "ens")); got[testMessage("ens", 1).ID] != 1 {
		t.Errorf("event 1 is %d times in the stream; want once", got[testMessage("ens", 1).ID])
	}
}

// TestWaitTimeoutCappedBelowReadTimeout: WAIT gives up before the connection's read
// deadline whatever the enqueue timeout, and within the pipeline's deadline.
func TestWaitTimeoutCappedBelowReadTimeout(t *testing.T) {
	for _, left := range []time.Duration{200 * time.Millisecond, time.Second, 5 * time.Second, 30 * time.Second} {
		got := waitTimeout(time.Now().Add(left))
		if got <= 0 || got >= left || got > maxWait || maxWait >= readTimeout {
			t.Errorf("waitTimeout with %s left = %s; want in (0, min(%s, %s)], below the read timeout %s",
				left, got, left, maxWait, readTimeout)
		}
	}
}

// TestNoScriptRedoKeepsPlainWritesWait: one group commit holds a plain event and the
// resend of a keyed one while Redis has lost the script (SCRIPT FLUSH) and the replica
// is stalled. The EVALSHA is answered NOSCRIPT and redone with EVAL on another pooled
// connection, where it writes nothing (a duplicate): where Redis advances a connection's
// replication offset only for commands that propagate something, that connection's WAIT
// returns at once, its last write long acknowledged. The plain event, covered only by the
// first WAIT, must still be refused. (redis-server 7.0 advances the offset for a no-write
// EVAL too, which covers the plain event by chance: there this test passes either way.)
func TestNoScriptRedoKeepsPlainWritesWait(t *testing.T) {
	master, conn := openRedis(t, redistest.Options{})
	replica := redistest.StartReplica(t, master)
	waitReplicaOnline(t, conn.Client, 1)
	opts := defaultEnqOpts()
	opts.MinReplicas = 1
	// Room for the redo after the first WAIT (at most maxWait) on a slow machine.
	opts.Timeout = maxWait + 2*time.Second
	keyed := testMessage("ens", 1)
	if _, err := runEnqueuer(t, conn.Client, opts).Enqueue(t.Context(), keyed, ClientID); err != nil {
		t.Fatalf("first enqueue of the keyed event: %v", err)
	}

	// A client of two connections handed out in turn (FIFO), both idle and without a
	// write: the first pipeline takes one, the redo the other. Pipelines use the main
	// pool (no dedicated pipeline pool).
	fifo := redis.NewClient(&redis.Options{
		Addr: master.Addr(), PoolSize: 2, PoolFIFO: true, PipelinePoolSize: -1, MaxRetries: -1, Protocol: 2,
	})
	t.Cleanup(func() { _ = fifo.Close() })
	c1, c2 := fifo.Conn(), fifo.Conn()
	for _, c := range []*redis.Conn{c1, c2} {
		if err := c.Ping(t.Context()).Err(); err != nil {
			t.Fatalf("PING: %v", err)
		}
	}
	_ = c1.Close()
	_ = c2.Close()

	if err := conn.Client.ScriptFlush(t.Context()).Err(); err != nil {
		t.Fatalf("SCRIPT FLUSH: %v", err)
	}
	replica.Pause()
	defer replica.Resume()

	// The writer's own entry point, with both requests in one batch: Enqueue could not
	// make them share a pipeline deterministically.
	e := NewEnqueuer(fifo, Keys{Prefix: testPrefix}, opts, zapTest(t))
	w := e.newWriter()
	plain, resend := e.newRequest(t.Context(), testMessage("ens", 2), RelayID), e.newRequest(t.Context(), keyed, ClientID)
	w.batch = append(w.batch, plain, resend)
	w.write(t.Context())
	pres, kres := <-plain.reply, <-resend.reply

	if s := e.Stats(); s.ScriptReloads != 1 {
		t.Fatalf("ScriptReloads = %d; want 1 (the NOSCRIPT redo this test is about)", s.ScriptReloads)
	}
	if !errors.Is(pres.err, ErrUnavailable) {
		t.Errorf("plain event with the replica stalled: %v; want ErrUnavailable (no replica acknowledged it)", pres.err)
	}
	if kres.err != nil || !kres.duplicate {
		t.Errorf("resend of the keyed event: duplicate=%v err=%v; want a duplicate", kres.duplicate, kres.err)
	}
}

// TestClusterStalledMasterWritesOnce is TestStalledRedisWritesOnce on a Redis Cluster,
// whose client re-sends a node's part of a pipeline by a loop of its own (MaxRedirects,
// not MaxRetries): the master holding ens's slot stalls past the read timeout.
func TestClusterStalledMasterWritesOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	c := redistest.StartCluster(t, 3, 0)
	conn, err := Open(t.Context(), testConfig(c.URL()), zapTest(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	opts := defaultEnqOpts()
	opts.Timeout = 6 * time.Second
	e := runEnqueuer(t, conn.Client, opts)
	if _, err := e.Enqueue(t.Context(), testMessage("ens", 0), RelayID); err != nil {
		t.Fatalf("enqueue before the stall: %v", err)
	}
	master := c.MasterOf(Keys{Prefix: testPrefix}.Events("ens"))
	master.Pause()
	resumed := make(chan struct{})
	go func() {
		defer close(resumed)
		time.Sleep(readTimeout + time.Second) // a stall, not a measurement
		master.Resume()
	}()
	_, err = e.Enqueue(t.Context(), testMessage("ens", 1), RelayID)
	<-resumed
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("enqueue through a stall past the read timeout: %v; want ErrUnavailable", err)
	}
	c.WaitOK() // the stall outlasted the node timeout: the others marked the master failed
	events := Keys{Prefix: testPrefix}.Events("ens")
	waitFor(t, "the stalled XADD to be applied", 10*time.Second, func() bool {
		return conn.Client.XLen(t.Context(), events).Val() >= 2
	})
	if got := countIDs(entries(t, conn.Client, "ens")); got[testMessage("ens", 1).ID] != 1 {
		t.Errorf("event 1 is %d times in the stream; want once", got[testMessage("ens", 1).ID])
	}
}
