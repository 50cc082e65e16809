package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/eventrelay/relay/internal/redistest"
)

// waitReplicaOnline polls the master until n replicas acknowledge a write (WAIT on the
// connection that wrote it): the link is up and the replicas are streaming.
func waitReplicaOnline(t *testing.T, master redis.UniversalClient, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := ackedProbe(t.Context(), master)
		if err == nil && got >= int64(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d replica(s) acknowledge writes after 30s: %v", got, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ackedProbe writes a probe key and answers how many replicas acknowledge it within 200 ms.
func ackedProbe(ctx context.Context, c redis.UniversalClient) (int64, error) {
	conn := c.(*redis.Client).Conn()
	defer conn.Close()
	if err := conn.Set(ctx, "t:probe", "1", time.Minute).Err(); err != nil {
		return 0, err
	}
	return conn.Wait(ctx, 1, 200*time.Millisecond).Result() // one replica is all these tests start
}

// TestEnqueueWaitsForReplicas: with MinReplicas 1 every event answered as written is
// already on the replica when the answer comes; with the replica stopped the same
// enqueue is refused (ErrUnavailable, counted as under-replicated) within the enqueue
// timeout, while an Enqueuer without the option still accepts; a keyed event refused that
// way was still written to the master, so its resend is answered as a duplicate.
func TestEnqueueWaitsForReplicas(t *testing.T) {
	master, conn := openRedis(t, redistest.Options{})
	replica := redistest.StartReplica(t, master)
	waitReplicaOnline(t, conn.Client, 1)
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	t.Cleanup(func() { _ = rc.Close() })

	opts := defaultEnqOpts()
	opts.MinReplicas = 1
	e := runEnqueuer(t, conn.Client, opts)
	events := Keys{Prefix: testPrefix}.Events("ens")
	for i := range 40 {
		src := RelayID
		if i%2 == 0 {
			src = ClientID
		}
		if _, err := e.Enqueue(t.Context(), testMessage("ens", i), src); err != nil {
			t.Fatalf("enqueue %d: %v", i, err)
		}
		// WAIT answered only once the replica had it: no poll needed.
		if n := rc.XLen(t.Context(), events).Val(); n != int64(i+1) {
			t.Fatalf("after event %d was acknowledged the replica holds %d entries; want %d", i, n, i+1)
		}
	}

	replica.Pause()
	start := time.Now()
	_, err := e.Enqueue(t.Context(), testMessage("ens", 100), ClientID)
	took := time.Since(start)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("enqueue with the replica stopped: %v; want ErrUnavailable", err)
	}
	if took > opts.Timeout+500*time.Millisecond {
		t.Errorf("refused after %s; want within the enqueue timeout %s", took, opts.Timeout)
	}
	if s := e.Stats(); s.UnderReplicated == 0 {
		t.Errorf("Stats.UnderReplicated = 0 after a refused WAIT")
	}
	if _, err := e.Enqueue(t.Context(), testMessage("ens", 101), RelayID); !errors.Is(err, ErrUnavailable) {
		t.Errorf("unkeyed enqueue with the replica stopped: %v; want ErrUnavailable", err)
	}
	plain := runEnqueuer(t, conn.Client, defaultEnqOpts())
	if _, err := plain.Enqueue(t.Context(), testMessage("ens", 102), RelayID); err != nil {
		t.Errorf("enqueue without min replicas while the replica is stopped: %v", err)
	}

	replica.Resume()
	waitReplicaOnline(t, conn.Client, 1)
	dup, err := e.Enqueue(t.Context(), testMessage("ens", 100), ClientID)
	if err != nil || !dup {
		t.Errorf("resend of the refused keyed event: duplicate=%v err=%v; want a duplicate (it reached the master)", dup, err)
	}
	if _, err := e.Enqueue(t.Context(), testMessage("ens", 103), ClientID); err != nil {
		t.Errorf("enqueue after the replica came back: %v", err)
	}
}

// TestSentinelFailoverKeepsAcknowledged kills -9 the master of a Sentinel deployment (one
// replica, three sentinels) under a steady load of keyed events, lets Sentinel promote
// the replica, restarts the old master (Sentinel makes it a replica of the new one) and
// checks on the new master that every event answered as written is there. With
// min_replicas_acked 1 none may be missing; with 0 the test reports how many were lost
// (asynchronous replication: the reason for the option) without failing on it.
func TestSentinelFailoverKeepsAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("failover takes several seconds")
	}
	for _, minReplicas := range []int{1, 0} {
		t.Run(fmt.Sprintf("min_replicas_acked=%d", minReplicas), func(t *testing.T) {
			acked, missing := sentinelFailoverRun(t, minReplicas)
			t.Logf("min_replicas_acked=%d: %d events acknowledged, %d missing after the failover", minReplicas, acked, missing)
			if minReplicas > 0 && missing != 0 {
				t.Errorf("%d acknowledged events are missing after the failover", missing)
			}
		})
	}
}

func sentinelFailoverRun(t *testing.T, minReplicas int) (acked, missing int) {
	const name = "relaymaster"
	master := redistest.Start(t, redistest.Options{})
	replica := redistest.StartReplica(t, master)
	sentinels := redistest.StartSentinels(t, master, name, 3)
	mc := redis.NewClient(&redis.Options{Addr: master.Addr()})
	waitReplicaOnline(t, mc, 1)
	_ = mc.Close()
	waitSentinelsSeeReplica(t, sentinels, name)
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinels[0].Addr()})
	t.Cleanup(func() { _ = sc.Close() })

	return failoverRun(t, failover{
		url: redistest.SentinelURL(sentinels, name), minReplicas: minReplicas, providers: []string{"ens"},
		kill: func() *redistest.Server {
			master.Kill()
			waitFor(t, "Sentinel to promote the replica", 30*time.Second, func() bool {
				addr, err := sc.GetMasterAddrByName(t.Context(), name).Result()
				return err == nil && len(addr) == 2 && "127.0.0.1:"+addr[1] == replica.Addr()
			})
			return master
		},
	})
}

// failover is one failover scenario for failoverRun.
type failover struct {
	url         string
	minReplicas int
	providers   []string
	// kill kills -9 a master holding the providers' keys, waits for a replica to take
	// over, and returns the killed server (failoverRun restarts it).
	kill func() *redistest.Server
	// settle, if set, waits until the servers agree again after the restart, before the
	// acknowledged events are looked up (a Cluster node that has just rejoined may
	// still redirect a read).
	settle func()
}

// failoverRun loads an Enqueuer on f.url with keyed events of f.providers from four
// goroutines, kills a master (f.kill) after 200 acknowledged events, restarts it (it
// rejoins as a replica), goes on until 100 more are acknowledged, and returns how many
// were acknowledged and how many of those the new masters lack.
func failoverRun(t *testing.T, f failover) (acked, missing int) {
	conn, err := Open(t.Context(), testConfig(f.url), zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Open %s: %v", f.url, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	opts := defaultEnqOpts()
	opts.MinReplicas = f.minReplicas
	e := runEnqueuer(t, conn.Client, opts)

	var (
		mu    sync.Mutex
		ok    = map[string][]string{} // provider → acknowledged ids
		n     int
		total int
	)
	count := func() int { mu.Lock(); defer mu.Unlock(); return n }
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				p := f.providers[i%len(f.providers)]
				m := testMessage(p, w*1_000_000+i)
				_, err := e.Enqueue(ctx, m, ClientID)
				mu.Lock()
				total++
				if err == nil {
					ok[p] = append(ok[p], m.ID)
					n++
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(20 * time.Millisecond) // a client's back-off after a 503
				}
			}
		}()
	}
	waitFor(t, "200 acknowledged events before the kill", 30*time.Second, func() bool { return count() >= 200 })
	killed := f.kill()
	killed.Restart() // rejoins as a replica of the new master
	after := count()
	waitFor(t, "100 acknowledged events after the failover", 60*time.Second, func() bool { return count() >= after+100 })
	stop()
	wg.Wait()
	if f.settle != nil {
		f.settle()
	}
	// The client follows MOVED, but a node that has just rejoined can still redirect
	// a read away from itself and back while the slot map settles: poll until every
	// provider's stream reads cleanly.
	for _, p := range f.providers {
		waitFor(t, "the "+p+" stream readable after the failover", 30*time.Second, func() bool {
			return conn.Client.XRange(t.Context(), Keys{Prefix: testPrefix}.Events(p), "-", "-").Err() == nil
		})
	}

	for p, ids := range ok {
		have := countIDs(entries(t, conn.Client, p))
		for _, id := range ids {
			if have[id] == 0 {
				missing++
			}
		}
	}
	t.Logf("%d enqueue calls, %d acknowledged", total, n)
	return n, missing
}

// TestClusterFailoverKeepsAcknowledged is the Sentinel test on a real Redis Cluster of
// three masters and three replicas: events of all five providers (their {P} slots spread
// over the masters), kill -9 of the master holding ens's slot, the cluster promotes its
// replica, the old master rejoins. With min_replicas_acked 1 (a pipeline and a WAIT per
// master) none of the acknowledged events may be missing; with 0 the loss is reported.
func TestClusterFailoverKeepsAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a six-node cluster and waits for failovers")
	}
	providers := []string{"ens", "linkrunner", "brevo", "bannerflex", "cardlytics"}
	for _, minReplicas := range []int{1, 0} {
		t.Run(fmt.Sprintf("min_replicas_acked=%d", minReplicas), func(t *testing.T) {
			c := redistest.StartCluster(t, 3, 1)
			masters := map[string]bool{}
			for _, p := range providers {
				masters[c.MasterOf(Keys{Prefix: testPrefix}.Events(p)).Addr()] = true
			}
			if len(masters) < 2 {
				t.Fatalf("the five providers' slots sit on %d master(s); want the load spread", len(masters))
			}
			acked, missing := failoverRun(t, failover{
				url: c.URL(), minReplicas: minReplicas, providers: providers,
				kill: func() *redistest.Server {
					old := c.MasterOf(Keys{Prefix: testPrefix}.Events("ens"))
					old.Kill()
					c.WaitOK()
					return old
				},
				settle: c.WaitOK,
			})
			t.Logf("min_replicas_acked=%d: %d events acknowledged, %d missing after the failover", minReplicas, acked, missing)
			if minReplicas > 0 && missing != 0 {
				t.Errorf("%d acknowledged events are missing after the failover", missing)
			}
		})
	}
}

// waitSentinelsSeeReplica polls every sentinel until it lists a replica of name, so a
// failover has a candidate.
func waitSentinelsSeeReplica(t *testing.T, ss []*redistest.Sentinel, name string) {
	t.Helper()
	for _, s := range ss {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
		waitFor(t, "sentinel "+s.Addr()+" to see the replica", 30*time.Second, func() bool {
			rs, err := sc.Replicas(t.Context(), name).Result()
			return err == nil && len(rs) > 0
		})
		_ = sc.Close()
	}
}

// waitFor polls cond every 20 ms until it holds, failing the test after d.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkEnqueueReplicas measures what min_replicas_acked costs: the same unkeyed
// load on a master with one replica, without WAIT and with WAIT 1 ending each pipeline.
// Both run side by side in one invocation (compare the two lines, not across runs).
func BenchmarkEnqueueReplicas(b *testing.B) {
	for _, minReplicas := range []int{0, 1} {
		b.Run(fmt.Sprintf("min_replicas_acked=%d", minReplicas), func(b *testing.B) {
			master := redistest.Start(b, redistest.Options{})
			redistest.StartReplica(b, master)
			conn, err := Open(b.Context(), testConfig(master.URL()), zaptest.NewLogger(b))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = conn.Close() })
			deadline := time.Now().Add(30 * time.Second)
			for n, _ := ackedProbe(b.Context(), conn.Client); n < 1; n, _ = ackedProbe(b.Context(), conn.Client) {
				if time.Now().After(deadline) {
					b.Fatal("the replica never acknowledged a write")
				}
			}
			opts := defaultEnqOpts()
			opts.Writers, opts.MaxBatch, opts.MinReplicas = 2, 256, minReplicas
			e := runEnqueuer(b, conn.Client, opts)
			var seq sync.Mutex
			next := 0
			b.SetParallelism(32)
			cpu := redistest.StartCPU(b, conn.Client)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				seq.Lock()
				base := next
				next += 1 << 30
				seq.Unlock()
				m := testMessage("ens", 0)
				for i := 0; pb.Next(); i++ {
					m.ID = "bench-" + itoa(base+i)
					if _, err := e.Enqueue(context.Background(), m, RelayID); err != nil {
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
