package admin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/relay/admin"
	"github.com/eventrelay/relay/relay/queue"
)

func TestSeriesServesTheLastHourPerMinute(t *testing.T) {
	fx := newFixture(t, fxOptions{})
	now := fx.redisNow()
	minute := now.Unix()/60 - 3
	stats := fx.keys.Stats("ens", minute)
	if err := fx.rdb.HSet(fx.ctx(), stats, queue.StatDelivered, 5, queue.StatRetried, 2, queue.StatDead, 1,
		queue.StatDepthReady, 7, queue.StatDepthPending, 3, queue.StatDepthRetry, 2, queue.StatDepthDead, 4).Err(); err != nil {
		t.Fatal(err)
	}
	// Another provider's counts stay out of ens's series.
	if err := fx.rdb.HSet(fx.ctx(), fx.keys.Stats("brevo", minute), queue.StatDelivered, 99).Err(); err != nil {
		t.Fatal(err)
	}
	// The admin server samples the current minute's depth as it starts, and at least every
	// 15 s: wait for it rather than for a fixed time.
	var s admin.SeriesReply
	deadline := time.Now().Add(30 * time.Second)
	for {
		s = admin.SeriesReply{}
		fx.api("GET", "/admin/api/series?provider=ens", "", 200, &s)
		if len(s.Points) > 0 && s.Points[len(s.Points)-1].Depth != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s.Provider != "ens" || len(s.Points) != 60 {
		t.Fatalf("series: provider %q, %d points, want ens and 60", s.Provider, len(s.Points))
	}
	if last := s.Points[59]; last.Depth == nil || *last.Depth != (admin.QueueDepth{}) {
		t.Errorf("current minute %+v: want an empty queue's sample", last)
	}
	want := time.Unix(minute*60, 0).UTC().Format("2006-01-02T15:04:05.000Z")
	found := false
	var prev time.Time
	for i, p := range s.Points {
		at, err := time.Parse(time.RFC3339, p.Minute)
		if err != nil || i > 0 && at.Sub(prev) != time.Minute {
			t.Fatalf("point %d minute %q after %v: want consecutive minutes", i, p.Minute, prev)
		}
		prev = at
		if p.Minute == want {
			found = true
			if p.MinuteCounts != (admin.MinuteCounts{Delivered: 5, Retried: 2, Dead: 1}) ||
				p.Depth == nil || *p.Depth != (admin.QueueDepth{Ready: 7, Pending: 3, Retry: 2, Dead: 4}) {
				t.Errorf("seeded minute: %+v depth %+v", p, p.Depth)
			}
			continue
		}
		if p.MinuteCounts != (admin.MinuteCounts{}) || i < 59 && p.Depth != nil {
			t.Errorf("point %d (%s): %+v depth %v, want nothing", i, p.Minute, p.MinuteCounts, p.Depth)
		}
	}
	if !found {
		t.Errorf("no point for minute %s", want)
	}

	var short admin.SeriesReply
	fx.api("GET", "/admin/api/series?provider=ens&minutes=5", "", 200, &short)
	if len(short.Points) != 5 {
		t.Errorf("minutes=5: %d points", len(short.Points))
	}
	for _, bad := range []struct {
		query string
		code  int
		text  string
	}{
		{"", 400, "provider"}, {"?provider=nope", 404, "unknown provider"},
		{"?provider=ens&minutes=61", 400, "minutes"}, {"?provider=ens&minutes=x", 400, "minutes"},
	} {
		status, _, b := fx.do("GET", "/admin/api/series"+bad.query, fxToken, "")
		if status != bad.code || !strings.Contains(string(b), bad.text) {
			t.Errorf("series%s: %d %s, want %d naming %s", bad.query, status, b, bad.code, bad.text)
		}
	}
	if status, _, _ := fx.do("GET", "/admin/api/series?provider=ens", "", ""); status != 401 {
		t.Errorf("series without a token: %d", status)
	}
}

// TestSampleDepthsOncePerMinute: the first relay to sample in a minute records the depth,
// as the providers call counts it; later calls in that minute record nothing.
func TestSampleDepthsOncePerMinute(t *testing.T) {
	fx := newFixture(t, fxOptions{})
	keys := queue.Keys{Prefix: "other"} // not the fixture's: its own sampler stays out
	ctx := fx.ctx()
	for range 5 {
		if err := fx.rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.Events("ens"), Values: []any{"e", "x"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := fx.rdb.XGroupCreate(ctx, keys.Events("ens"), queue.Group, "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := fx.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: queue.Group, Consumer: "c", Streams: []string{keys.Events("ens"), ">"},
		Count: 2, Block: -1}).Err(); err != nil {
		t.Fatal(err)
	}
	fx.rdb.ZAdd(ctx, keys.Retry("ens"), redis.Z{Score: 1, Member: "a"}, redis.Z{Score: 2, Member: "b"}, redis.Z{Score: 3, Member: "c"})
	fx.rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.Dead("ens"), Values: []any{"reason", "permanent"}})

	for {
		before := fx.redisNow()
		n, err := queue.SampleDepths(ctx, fx.rdb, keys, []string{"ens", "brevo"})
		if err != nil || n != 2 {
			t.Fatalf("first sample: %d %v, want 2 (ens and brevo)", n, err)
		}
		n, err = queue.SampleDepths(ctx, fx.rdb, keys, []string{"ens", "brevo"})
		after := fx.redisNow()
		if before.Unix()/60 != after.Unix()/60 {
			// A new minute began in between: the second call sampled it. Start over.
			fx.rdb.Del(ctx, keys.Stats("ens", before.Unix()/60), keys.Stats("ens", after.Unix()/60),
				keys.Stats("brevo", before.Unix()/60), keys.Stats("brevo", after.Unix()/60))
			continue
		}
		if err != nil || n != 0 {
			t.Fatalf("second sample in the same minute: %d %v, want 0", n, err)
		}
		break
	}
	_, points, err := queue.Series(ctx, fx.rdb, keys, "ens", 1)
	if err != nil || len(points) != 1 || points[0].Depth == nil {
		t.Fatalf("series: %+v %v", points, err)
	}
	if d := *points[0].Depth; d.Ready != 3 || d.Pending != 2 || d.Retry != 3 || d.Dead != 1 {
		t.Errorf("sampled depth %+v, want ready 3, pending 2, retry 3, dead 1", d)
	}
	ttl, err := fx.rdb.TTL(ctx, keys.Stats("ens", points[0].Minute)).Result()
	if err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("stats hash TTL %v %v, want about an hour", ttl, err)
	}
}
