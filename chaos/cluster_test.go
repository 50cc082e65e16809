package chaos_test

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventrelay/relay/chaos"
	"github.com/eventrelay/relay/internal/redistest"
)

// newClusterEnv is newEnv on a local Redis Cluster of three masters and three replicas
// (AOF on every node), with min_replicas_acked set as given.
func newClusterEnv(t *testing.T, minReplicas int) (*env, *redistest.Cluster) {
	if relayBin == "" {
		t.Skip("chaos scenarios skipped in -short mode")
	}
	c := redistest.StartCluster(t, 3, 1)
	var addrs []string
	for _, n := range c.Nodes {
		addrs = append(addrs, n.Addr())
	}
	ups := chaos.NewUpstreams(t, chaos.Providers...)
	ledger := chaos.NewLedger()
	insp := chaos.NewClusterInspector(t, addrs)
	setup := chaos.NewSetup(c.URL(), ups)
	setup.MinReplicasAcked = minReplicas
	e := &env{t: t, ups: ups, setup: setup, ledger: ledger, insp: insp,
		checker: &chaos.Checker{Name: t.Name(), Ledger: ledger, Upstreams: ups, Inspector: insp}}
	masters := map[string]bool{}
	for _, p := range chaos.Providers {
		masters[c.MasterOf(eventsKey(p)).Addr()] = true
	}
	if len(masters) < 2 {
		t.Fatalf("the five providers' streams sit on %d master(s); want them spread", len(masters))
	}
	t.Logf("the five providers' streams sit on %d of 3 masters", len(masters))
	return e, c
}

func eventsKey(provider string) string { return chaos.Prefix + ":{" + provider + "}:events" }

// count503 is how many of the driver's attempts got 503.
func count503(d *chaos.Driver) int {
	n := 0
	for _, a := range d.Attempts() {
		if a.Status == 503 {
			n++
		}
	}
	return n
}

// 11. Redis Cluster failover under load: two relay processes on a 3-master, 3-replica
// cluster, all five providers (Brevo batching, Cardlytics merging, partial refusals),
// min_replicas_acked 1. kill -9 of the master holding ENS's slot: the cluster promotes its
// replica and the relays go on by themselves (no restart); the old master comes back as a
// replica. Nothing accepted is lost; exactly the poison events are dead letters;
// duplicates only of events first delivered around the failover (an outcome that could
// not be written while the slot had no master).
func TestClusterFailoverUnderLoad(t *testing.T) {
	e, c := newClusterEnv(t, 1)
	refusing(e)
	merging(e)
	r1, r2 := e.relay(), e.relay()
	r1.Start()
	r2.Start()
	d := e.driver(mergeRoutes(), r1, r2)
	d.Start()
	sleep(3 * time.Second)
	old := c.MasterOf(eventsKey(chaos.ENS))
	killed := time.Now()
	old.Kill()
	c.WaitOK() // a replica took over
	promoted := time.Now()
	old.Restart()
	c.WaitOK() // the old master is a replica again
	// An outcome write is retried for visibility_timeout/2; a second more covers a loaded
	// machine, as in the single-Redis crash scenario.
	windows := []window{{killed.Add(-time.Second), promoted.Add(e.setup.Tune[chaos.ENS].Visibility/2 + time.Second)}}
	sleep(3 * time.Second)
	d.Stop()
	rep := e.settle(90 * time.Second)
	noLoss(t, rep)
	if !r1.Running() || !r2.Running() {
		t.Error("a relay exited during the failover")
	}
	t.Logf("failover took %s; %d attempts answered 503", promoted.Sub(killed).Round(time.Millisecond), count503(d))
	within := deliveredWithin(e, windows)
	exact(t, rep, chaos.Expect{DeadReason: poisonDead, MaxDuplicates: len(within),
		MayDuplicate: func(p, id string) bool { return within[p+"/"+id] }})
	checkMerged(t, e, true)
}

// 12. Resharding under load: every slot of the master holding ENS's stream moves to
// another master (redis-cli --cluster reshard: MIGRATING/IMPORTING, MIGRATE of each key
// with its consumer group) while two relays ingest and deliver all five providers.
// Clients see MOVED/ASK/TRYAGAIN only as 503s with Retry-After (never another error and
// never a lost event); the relays follow the slot to its new master.
func TestClusterReshardUnderLoad(t *testing.T) {
	e, c := newClusterEnv(t, 0)
	refusing(e)
	r1, r2 := e.relay(), e.relay()
	r1.Start()
	r2.Start()
	d := e.driver(nil, r1, r2)
	d.Start()
	sleep(3 * time.Second)
	from := c.MasterOf(eventsKey(chaos.ENS))
	var to *redistest.Server
	for _, m := range c.Masters() {
		if m != from {
			to = m
			break
		}
	}
	started := time.Now()
	reshard(t, from, to, 5461) // at least all of from's slots: the ENS slot among them
	c.WaitOK()
	t.Logf("resharding took %s", time.Since(started).Round(time.Millisecond))
	if now := c.MasterOf(eventsKey(chaos.ENS)); now != to {
		t.Fatalf("ENS's slot is on %s after resharding; want %s", now.Addr(), to.Addr())
	}
	sleep(3 * time.Second)
	d.Stop()
	rep := e.settle(90 * time.Second)
	noLoss(t, rep)
	for _, a := range d.Attempts() {
		if a.Status != 202 && a.Status != 503 {
			t.Errorf("an attempt answered %d during resharding; want only 202 or 503", a.Status)
			break
		}
	}
	t.Logf("%d attempts answered 503 during resharding", count503(d))
	exact(t, rep, chaos.Expect{DeadReason: poisonDead})
}

// reshard moves n slots from one master to another with redis-cli, the operator's tool.
func reshard(t *testing.T, from, to *redistest.Server, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "redis-cli", "--cluster", "reshard", from.Addr(),
		"--cluster-from", nodeID(t, from), "--cluster-to", nodeID(t, to),
		"--cluster-slots", strconv.Itoa(n), "--cluster-yes").CombinedOutput()
	if err != nil {
		tail := string(out)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		t.Fatalf("redis-cli --cluster reshard: %v\n%s", err, tail)
	}
}

// nodeID is a node's cluster id (CLUSTER MYID).
func nodeID(t *testing.T, s *redistest.Server) string {
	t.Helper()
	out, err := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", portOf(s.Addr()), "CLUSTER", "MYID").Output()
	if err != nil {
		t.Fatalf("CLUSTER MYID of %s: %v", s.Addr(), err)
	}
	return strings.TrimSpace(string(out))
}

func portOf(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }
