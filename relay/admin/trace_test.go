package admin_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/relay/admin"
	"github.com/eventrelay/relay/relay/queue"
)

// A replayed dead letter is queued again under its event id: the trace, whose last
// record says dead, must say where it is now (queued), not dead.
func TestTraceOfReplayedEventIsQueued(t *testing.T) {
	fx := newFixture(t, fxOptions{compact: true})
	now := time.Now()
	tw := &queue.TraceWriter{Keys: fx.keys, Provider: "ens", Keep: 1000}
	tw.Add("evt-R", &queue.TraceRecord{At: now.UnixMilli(), Attempt: 1, Outcome: queue.TraceDead, Status: 400, Class: "permanent",
		Reason: "permanent", Received: &queue.TraceReceived{StreamID: "1-0", At: now.UnixMilli(), Route: "ens/click", Source: "shop"}})
	pipe := fx.rdb.Pipeline()
	tw.Queue(fx.ctx(), pipe)
	if _, err := pipe.Exec(fx.ctx()); err != nil {
		t.Fatal(err)
	}
	var tr admin.EventTrace
	fx.api("GET", "/admin/api/events/ens/evt-R", "", 200, &tr)
	if tr.Now.State != "dead" || tr.Now.Reason != "permanent" {
		t.Fatalf("before the replay the trace says %+v, want dead (permanent)", tr.Now)
	}
	id := fx.addDead("ens", event{id: "evt-R", route: "ens/click", body: `{}`, at: now},
		deadInfo{reason: "permanent", status: 400, attempts: 1, deadAt: now})
	var r admin.ReplayReply
	fx.api("POST", "/admin/api/dead/ens/replay", `{"ids":["`+id+`"]}`, 200, &r)
	if r.Replayed != 1 {
		t.Fatalf("replay %+v", r)
	}
	queued := fx.stream(fx.keys.Events("ens"))
	if len(queued) != 1 {
		t.Fatalf("events stream holds %d entries after the replay, want 1", len(queued))
	}
	fx.api("GET", "/admin/api/events/ens/evt-R", "", 200, &tr)
	if tr.Now.State != "queued" || tr.Now.StreamID != queued[0].ID {
		t.Errorf("the replayed event is queued as %s, the trace says %+v", queued[0].ID, tr.Now)
	}
	if len(tr.Attempts) != 1 || tr.Attempts[0].Outcome != "dead" {
		t.Errorf("the trace lost its history: %+v", tr.Attempts)
	}
}

// After redis.shards is raised, an event queued before is in the shard its id hashed to
// under the old count: the trace finds it there.
func TestTraceFindsEventQueuedBeforeShardsWereRaised(t *testing.T) {
	fx := newFixture(t, fxOptions{compact: true})
	before := queue.Keys{Prefix: "sh"}
	after := queue.Keys{Prefix: "sh", Shards: 4}
	id := ""
	for i := 0; id == ""; i++ {
		if c := fmt.Sprintf("evt-%d", i); after.ShardOf(c) != 0 {
			id = c
		}
	}
	streamID, err := fx.rdb.XAdd(fx.ctx(), &redis.XAddArgs{Stream: before.ForShard(before.ShardOf(id)).Events("ens"),
		Values: anys(fx.fields("ens", event{id: id, route: "ens/click", body: `{}`, at: time.Now()}))}).Result()
	if err != nil {
		t.Fatal(err)
	}
	srv := admin.New(admin.Options{Gatherer: prometheus.NewRegistry(), Log: zap.NewNop(), Client: fx.rdb, Keys: after,
		Providers: []string{"ens"}, Token: fxToken, Timeout: 2 * time.Second, SampleEvery: -1})
	fx.base = "http://" + serveAdmin(t, srv)

	var tr admin.EventTrace
	fx.api("GET", "/admin/api/events/ens/"+id, "", 200, &tr)
	if tr.Now.State != "queued" || tr.Now.StreamID != streamID || tr.Received.Route != "ens/click" {
		t.Errorf("event %s queued in shard 0 as %s (hashes to shard %d of 4): trace %+v", id, streamID, after.ShardOf(id), tr)
	}
}
