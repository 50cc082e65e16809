package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/internal/redistest"
	"github.com/eventrelay/relay/relay/admin"
	"github.com/eventrelay/relay/relay/queue"
)

// shardsConfig is e2eConfig with redis.shards: n.
func shardsConfig(redisURL string, f fakes, n int) string {
	return strings.Replace(e2eConfig(redisURL, f, ""), "prefix: e2e}", fmt.Sprintf("prefix: e2e, shards: %d}", n), 1)
}

// entriesAdded is how many entries a stream was ever given (XINFO STREAM entries-added),
// 0 when it does not exist: delivered entries are deleted, the count stays.
func entriesAdded(t *testing.T, rdb *redis.Client, key string) int64 {
	t.Helper()
	info, err := rdb.XInfoStream(context.Background(), key).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return 0
		}
		t.Fatalf("XINFO STREAM %s: %v", key, err)
	}
	return info.EntriesAdded
}

// With redis.shards: 4 a provider's events spread over its 4 streams and are each
// delivered exactly once, and a keyed resend meets its marker on its shard.
func TestShardsSpreadAndDeliverOnce(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	f := newFakes(t)
	p := startRelay(t, shardsConfig(rs.URL(), f, 4))
	auth := map[string]string{"Authorization": "Bearer " + e2eBackend}
	const n = 48
	post := func(i int) {
		h := map[string]string{"Authorization": auth["Authorization"], "Idempotency-Key": fmt.Sprintf("shard-key-%d", i)}
		if status, body := p.post(t, "/v1/ens/click", fmt.Sprintf(`{"campaignId":%d,"placement":"p"}`, i+1), h); status != 202 {
			t.Fatalf("event %d: %d %s", i, status, body)
		}
	}
	for i := range n {
		post(i)
	}
	keys := queue.Keys{Prefix: "e2e", Shards: 4}
	var added [4]int64
	var total int64
	for s, k := range keys.EachShard() {
		added[s] = entriesAdded(t, rdb, k.Events("ens"))
		total += added[s]
		if added[s] == 0 {
			t.Errorf("shard %d (%s) got no event of %d", s, k.Events("ens"), n)
		}
	}
	if total != n {
		t.Fatalf("the shards got %v events, %d in all, want %d", added, total, n)
	}
	waitFor(t, 30*time.Second, "every event delivered", func() bool { return len(f.ens.got()) >= n })
	waitShardsQuiescent(t, rdb, keys, "ens")
	seen := map[int]int{}
	for _, h := range f.ens.got() {
		var b struct{ CampaignID int }
		_ = json.Unmarshal([]byte(h.body), &b)
		seen[b.CampaignID]++
	}
	for i := range n {
		if seen[i+1] != 1 {
			t.Errorf("event %d delivered %d times, want 1", i+1, seen[i+1])
		}
	}
	// Resends with the same keys: duplicates, on the same shard (no stream grows, no
	// request goes upstream).
	for i := range 8 {
		post(i)
	}
	for s, k := range keys.EachShard() {
		if got := entriesAdded(t, rdb, k.Events("ens")); got != added[s] {
			t.Errorf("shard %d: %d entries after the resends, want %d (a resend was not a duplicate)", s, got, added[s])
		}
	}
	if got := len(f.ens.got()); got != n {
		t.Errorf("%d upstream requests after the resends, want %d", got, n)
	}
}

// waitShardsQuiescent polls until every shard of provider is empty, nothing pending.
func waitShardsQuiescent(t *testing.T, rdb *redis.Client, keys queue.Keys, provider string) {
	t.Helper()
	waitFor(t, 30*time.Second, "every shard quiescent", func() bool {
		ctx := context.Background()
		for _, k := range keys.EachShard() {
			n, err := rdb.XLen(ctx, k.Events(provider)).Result()
			r, err2 := rdb.ZCard(ctx, k.Retry(provider)).Result()
			if err != nil || err2 != nil || n+r > 0 {
				return false
			}
		}
		return true
	})
}

// Lowering redis.shards while a dropped shard holds an entry is refused with how to
// drain; once the shard is empty, the relay starts.
func TestShardsLoweringRefusedWhileDroppedShardHoldsEntries(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	f := newFakes(t)
	k3 := queue.Keys{Prefix: "e2e", Shards: 4, Shard: 3}
	for _, c := range []struct {
		name string
		fill func() error
	}{
		{"stream", func() error {
			return rdb.XAdd(ctx, &redis.XAddArgs{Stream: k3.Events("ens"), Values: []any{"e", "x"}}).Err()
		}},
		{"retry", func() error { return rdb.ZAdd(ctx, k3.Retry("ens"), redis.Z{Score: 1, Member: "x"}).Err() }},
		{"dead", func() error {
			return rdb.XAdd(ctx, &redis.XAddArgs{Stream: k3.Dead("ens"), Values: []any{"e", "x"}}).Err()
		}},
	} {
		if err := c.fill(); err != nil {
			t.Fatal(err)
		}
		out, err := runServe(t, shardsConfig(rs.URL(), f, 2))
		if err == nil || !strings.Contains(out, "shard 3") || !strings.Contains(out, "redis.shards: 4") {
			t.Fatalf("%s: serve with shards 2 and shard 3 holding an entry: err %v, output:\n%s", c.name, err, out)
		}
		if err := rdb.Del(ctx, k3.Events("ens"), k3.Retry("ens"), k3.Dead("ens")).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Empty (an emptied stream with its group left behind counts as empty): it starts.
	if err := rdb.XGroupCreateMkStream(ctx, k3.Events("ens"), queue.Group, "0").Err(); err != nil {
		t.Fatal(err)
	}
	startRelay(t, shardsConfig(rs.URL(), f, 2))
}

// runServe runs `relay serve` expecting it to exit at start, and returns its output.
func runServe(t *testing.T, cfg string) (string, error) {
	t.Helper()
	addrs := freeAddrs(t, 2)
	p := &relayProc{t: t, ingest: addrs[0], admin: addrs[1]}
	cfg = strings.NewReplacer("{{ingest}}", p.ingest, "{{admin}}", p.admin).Replace(cfg)
	path := filepath.Join(t.TempDir(), "relay.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, relayBin, "serve", "--config", path).CombinedOutput()
	return string(out), err
}

// With shards, the admin API sums the shards' depths and lists every shard's dead
// letters; a replay puts a dead letter back into the shard it came from, and a purge
// empties every shard.
func TestShardsAdminDeadLettersAcrossShards(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	f := newFakes(t)
	var accept atomic.Bool
	f.ens.reply = func(int, fakeHit) (int, string) {
		if accept.Load() {
			return 200, `{"status":"success"}`
		}
		return 400, `{"status":"error","message":"bad campaign"}` // permanent: dead-lettered at once
	}
	p := startRelay(t, shardsConfig(rs.URL(), f, 4))
	const n = 24
	for i := range n {
		if status, body := p.post(t, "/v1/ens/click", fmt.Sprintf(`{"campaignId":%d,"placement":"p"}`, i+1),
			map[string]string{"Authorization": "Bearer " + e2eBackend}); status != 202 {
			t.Fatalf("event %d: %d %s", i, status, body)
		}
	}
	waitFor(t, 30*time.Second, "every event dead-lettered", func() bool { return p.deadTotal(t, "ens") == n })
	keys := queue.Keys{Prefix: "e2e", Shards: 4}
	var deadPer [4]int64
	for s, k := range keys.EachShard() {
		deadPer[s] = rdb.XLen(ctx, k.Dead("ens")).Val()
	}
	if deadPer[1]+deadPer[2]+deadPer[3] == 0 || deadPer[0]+deadPer[1]+deadPer[2]+deadPer[3] != n {
		t.Fatalf("dead letters per shard %v, want %d in all, some beyond shard 0", deadPer, n)
	}
	var st admin.ProvidersReply
	p.adminCall(t, "GET", "/admin/api/providers", "", &st)
	for _, ps := range st.Providers {
		if ps.Name == "ens" && ps.Dead != n {
			t.Errorf("/admin/api/providers ens dead = %d, want %d (the sum over the shards)", ps.Dead, n)
		}
	}
	var list admin.DeadListReply
	p.adminCall(t, "GET", "/admin/api/dead/ens?limit=1000", "", &list)
	if list.Total != n || len(list.Dead) != n {
		t.Fatalf("dead list: total %d, %d listed, want %d", list.Total, len(list.Dead), n)
	}
	// Pick a dead letter of a shard k ≥ 1: its handle is "<id>@k".
	var pick string
	shard := 0
	for _, d := range list.Dead {
		if id, k, ok := strings.Cut(d.StreamID, "@"); ok {
			pick = d.StreamID
			shard, _ = strconv.Atoi(k)
			if got := rdb.XRangeN(ctx, keys.ForShard(shard).Dead("ens"), id, id, 1).Val(); len(got) != 1 {
				t.Fatalf("handle %s: no such entry in shard %d's dead letters", d.StreamID, shard)
			}
			break
		}
	}
	if pick == "" {
		t.Fatal("no dead letter of a shard >= 1 listed")
	}
	var added [4]int64
	for s, k := range keys.EachShard() {
		added[s] = entriesAdded(t, rdb, k.Events("ens"))
	}
	accept.Store(true)
	var rep admin.ReplayReply
	p.adminCall(t, "POST", "/admin/api/dead/ens/replay", fmt.Sprintf(`{"ids":[%q]}`, pick), &rep)
	if rep.Replayed != 1 {
		t.Fatalf("replay %s: %+v", pick, rep)
	}
	for s, k := range keys.EachShard() {
		want := added[s]
		if s == shard {
			want++
		}
		if got := entriesAdded(t, rdb, k.Events("ens")); got != want {
			t.Errorf("shard %d: %d entries added after replaying a dead letter of shard %d, want %d", s, got, shard, want)
		}
	}
	waitFor(t, 30*time.Second, "the replayed event delivered", func() bool { return p.deadTotal(t, "ens") == n-1 && len(f.ens.got()) > n })
	// A dry-run replay paged 5 at a time walks every shard once.
	var matched int64
	after, until := "", ""
	for range 100 {
		var r admin.ReplayReply
		p.adminCall(t, "POST", "/admin/api/dead/ens/replay",
			fmt.Sprintf(`{"dry_run":true,"limit":5,"after":%q,"until":%q}`, after, until), &r)
		matched += r.Matched
		if r.Done || r.LastID == "" {
			break
		}
		after, until = r.LastID, r.Until
	}
	if matched != n-1 {
		t.Errorf("a paged dry-run replay matched %d dead letters, want %d", matched, n-1)
	}
	var purged admin.PurgeReply
	p.adminCall(t, "DELETE", "/admin/api/dead/ens", "", &purged)
	if purged.Purged != n-1 {
		t.Errorf("purged %d, want %d", purged.Purged, n-1)
	}
	for s, k := range keys.EachShard() {
		if l := rdb.XLen(ctx, k.Dead("ens")).Val(); l != 0 {
			t.Errorf("shard %d: %d dead letters after the purge", s, l)
		}
	}
}

// On a Redis Cluster, redis.shards: 6 puts one provider's shards on several masters, and
// every event is delivered once.
func TestShardsOnClusterSpreadOverMasters(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	keys := queue.Keys{Prefix: "e2e", Shards: 6}
	masters := map[string]bool{}
	for _, k := range keys.EachShard() {
		masters[c.MasterOf(k.Events("ens")).Addr()] = true
	}
	if len(masters) < 2 {
		t.Fatalf("the 6 shards of ens sit on %d master(s), want at least 2", len(masters))
	}
	f := newFakes(t)
	p := startRelay(t, shardsConfig(c.URL(), f, 6))
	const n = 36
	for i := range n {
		if status, body := p.post(t, "/v1/ens/click", fmt.Sprintf(`{"campaignId":%d,"placement":"p"}`, i+1),
			map[string]string{"Authorization": "Bearer " + e2eBackend}); status != 202 {
			t.Fatalf("event %d: %d %s", i, status, body)
		}
	}
	waitFor(t, 60*time.Second, "every event delivered", func() bool { return len(f.ens.got()) >= n })
	var total int64
	used := map[string]bool{}
	for _, k := range keys.EachShard() {
		m := c.MasterOf(k.Events("ens"))
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
		added := entriesAdded(t, rdb, k.Events("ens"))
		_ = rdb.Close()
		total += added
		if added > 0 {
			used[m.Addr()] = true
		}
	}
	if total != n || len(used) < 2 {
		t.Errorf("%d events over the shards on %d master(s), want %d on at least 2", total, len(used), n)
	}
	seen := map[int]int{}
	for _, h := range f.ens.got() {
		var b struct{ CampaignID int }
		_ = json.Unmarshal([]byte(h.body), &b)
		seen[b.CampaignID]++
	}
	for i := 1; i <= n; i++ {
		if seen[i] != 1 {
			t.Errorf("event %d delivered %d times, want 1", i, seen[i])
		}
	}
}
