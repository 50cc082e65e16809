package admin_test

import (
	"math"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	"github.com/eventrelay/relay/relay/admin"
	"github.com/eventrelay/relay/relay/queue"
)

// fillENS gives provider ens, by hand: 5 events of which 2 pending (the oldest received
// 60 s ago), 3 retries (one received 120 s ago, due in 10 min), 4 dead letters.
func fillENS(fx *fixture, now time.Time) {
	fx.t.Helper()
	for i := range 5 {
		at := now.Add(-10 * time.Second)
		if i == 0 {
			at = now.Add(-60 * time.Second)
		}
		fx.addEvent("ens", event{id: "ev" + string(rune('a'+i)), route: "ens/click", body: `{"campaignId":1}`, at: at})
	}
	ctx := fx.ctx()
	if err := fx.rdb.XGroupCreate(ctx, fx.keys.Events("ens"), queue.Group, "0").Err(); err != nil {
		fx.t.Fatal(err)
	}
	if err := fx.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: queue.Group, Consumer: "w1",
		Streams: []string{fx.keys.Events("ens"), ">"}, Count: 2, Block: -1}).Err(); err != nil {
		fx.t.Fatal(err)
	}
	fx.addRetry("ens", event{id: "r1", route: "ens/click", body: `{}`, at: now.Add(-5 * time.Second)}, now.Add(time.Second), 1)
	fx.addRetry("ens", event{id: "r2", route: "ens/click", body: `{}`, at: now.Add(-5 * time.Second)}, now.Add(2*time.Second), 1)
	fx.addRetry("ens", event{id: "r3", route: "ens/click", body: `{}`, at: now.Add(-120 * time.Second)}, now.Add(10*time.Minute), 3)
	for i := range 4 {
		fx.addDead("ens", event{id: "d" + string(rune('a'+i)), route: "ens/click", body: `{}`, at: now.Add(-time.Hour)},
			deadInfo{reason: "permanent", status: 400, attempts: 1, deadAt: now})
	}
}

// setStats writes provider's stats hash for one minute.
func (fx *fixture) setStats(provider string, minute int64, delivered, retried, dead int) {
	fx.t.Helper()
	if err := fx.rdb.HSet(fx.ctx(), fx.keys.Stats(provider, minute), "delivered", delivered, "retried", retried, "dead", dead).Err(); err != nil {
		fx.t.Fatal(err)
	}
}

func TestProvidersStatusNumbers(t *testing.T) { formats(t, testProvidersStatusNumbers) }

func testProvidersStatusNumbers(t *testing.T, o fxOptions) {
	fx := newFixture(t, fxOptions{compact: o.compact,
		providers: []string{"ens", "brevo", "bannerflex"},
		breakers:  map[string]admin.BreakerStater{"ens": fxBreaker(gobreaker.StateOpen), "bannerflex": fxBreaker(gobreaker.StateHalfOpen)},
	})
	now := fx.redisNow()
	fillENS(fx, now)
	minute := now.Unix() / 60
	fx.setStats("ens", minute, 6, 2, 1)
	fx.setStats("ens", minute-1, 60, 0, 30)
	fx.setStats("ens", minute-2, 1000, 1000, 1000) // older than a minute: never counted

	before := fx.redisNow()
	var reply admin.ProvidersReply
	fx.api("GET", "/admin/api/providers", "", 200, &reply)
	after := fx.redisNow()

	if len(reply.Providers) != 3 {
		t.Fatalf("providers: %+v", reply.Providers)
	}
	ens, brevo, bf := reply.Providers[0], reply.Providers[1], reply.Providers[2]
	if ens.Name != "ens" || brevo.Name != "brevo" || bf.Name != "bannerflex" {
		t.Fatalf("order: %s, %s, %s", ens.Name, brevo.Name, bf.Name)
	}
	if ens.Breaker != "open" || bf.Breaker != "half-open" || brevo.Breaker != "unknown" {
		t.Errorf("breakers: ens %q, bannerflex %q, brevo %q", ens.Breaker, bf.Breaker, brevo.Breaker)
	}
	if ens.Ready != 3 || ens.Pending != 2 || ens.Retry != 3 || ens.Dead != 4 {
		t.Errorf("ens depth: ready %d pending %d retry %d dead %d; want 3 2 3 4", ens.Ready, ens.Pending, ens.Retry, ens.Dead)
	}
	// The oldest is the retry received 120 s ago (due last, but among the first 100).
	if ens.OldestUndeliveredSeconds < 119 || ens.OldestUndeliveredSeconds > 125 {
		t.Errorf("ens oldest undelivered %.3f s, want about 120", ens.OldestUndeliveredSeconds)
	}
	// Last minute: this minute's counts plus the previous minute's share of the last 60 s.
	share := func(at time.Time, n int64) int64 {
		w := float64(time.Minute-at.Sub(at.Truncate(time.Minute))) / float64(time.Minute)
		return int64(math.Round(float64(n) * w))
	}
	lm := ens.LastMinute
	if after.Unix()/60 == minute { // the request did not cross a minute boundary
		if lm.Delivered < 6+share(after, 60) || lm.Delivered > 6+share(before, 60) || lm.Retried != 2 ||
			lm.Dead < 1+share(after, 30) || lm.Dead > 1+share(before, 30) {
			t.Errorf("ens last minute %+v; want delivered 6+%d..%d, retried 2, dead 1+%d..%d", lm,
				share(after, 60), share(before, 60), share(after, 30), share(before, 30))
		}
	}
	// A provider with no keys at all is all zeros.
	if brevo.Ready != 0 || brevo.Pending != 0 || brevo.Retry != 0 || brevo.Dead != 0 || brevo.OldestUndeliveredSeconds != 0 ||
		brevo.LastMinute != (admin.MinuteCounts{}) {
		t.Errorf("empty provider: %+v", brevo)
	}
}

func TestProvidersStatusOldestFromStreamHead(t *testing.T) {
	formats(t, testProvidersStatusOldestFromStreamHead)
}

func testProvidersStatusOldestFromStreamHead(t *testing.T, o fxOptions) {
	fx := newFixture(t, o)
	now := fx.redisNow()
	fx.addEvent("ens", event{id: "old", route: "ens/click", body: `{}`, at: now.Add(-90 * time.Second)})
	fx.addEvent("ens", event{id: "new", route: "ens/click", body: `{}`, at: now})
	fx.addRetry("ens", event{id: "r", route: "ens/click", body: `{}`, at: now.Add(-30 * time.Second)}, now, 1)
	var reply admin.ProvidersReply
	fx.api("GET", "/admin/api/providers", "", 200, &reply)
	ens := reply.Providers[0]
	if ens.Ready != 2 || ens.Pending != 0 || ens.OldestUndeliveredSeconds < 89 || ens.OldestUndeliveredSeconds > 95 {
		t.Errorf("ens: %+v; want ready 2, pending 0 (no group yet), oldest about 90 s", ens)
	}
}
