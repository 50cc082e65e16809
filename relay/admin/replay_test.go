package admin_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/relay/admin"
	"github.com/eventrelay/relay/relay/queue"
)

// fieldNames are an entry's field names in stream order.
func fieldNames(t *testing.T, fx *fixture, key, id string) []string {
	t.Helper()
	// XRANGE through a raw command keeps the field order (go-redis returns a map).
	raw, err := fx.rdb.Do(fx.ctx(), "XRANGE", key, id, id).Slice()
	if err != nil || len(raw) != 1 {
		t.Fatalf("XRANGE %s %s: %v %v", key, id, raw, err)
	}
	kv := raw[0].([]any)[1].([]any)
	var names []string
	for i := 0; i < len(kv); i += 2 {
		names = append(names, kv[i].(string))
	}
	return names
}

func TestReplayByIDsAndAllNeverDuplicates(t *testing.T) {
	formats(t, testReplayByIDsAndAllNeverDuplicates)
}

func testReplayByIDsAndAllNeverDuplicates(t *testing.T, o fxOptions) {
	fx := newFixture(t, o)
	at := time.UnixMilli(1718000000000)
	e1 := event{id: "evt-1", route: "ens/click", body: `{"campaignId":1,"placement":"top"}`, at: at}
	e2 := event{id: "evt-2", route: "ens/impression", body: `{"campaignId":2}`, at: at.Add(time.Second)}
	d1 := fx.addDead("ens", e1, deadInfo{reason: "max_attempts", status: 503, attempts: 12, errText: "HTTP 503", deadAt: at, eventsStreamID: "5-0"})
	d2 := fx.addDead("ens", e2, deadInfo{reason: "permanent", status: 400, attempts: 1, errText: "HTTP 400", deadAt: at})
	d3 := fx.addDead("ens", event{}, deadInfo{reason: "trimmed", withoutIngestData: true, deadAt: at})
	events, dead := fx.keys.Events("ens"), fx.keys.Dead("ens")

	var r admin.ReplayReply
	fx.api("POST", "/admin/api/dead/ens/replay", `{"ids":["`+d1+`"]}`, 200, &r)
	if r.Replayed != 1 || r.Missing != 0 || r.Skipped != 0 || !r.Done {
		t.Errorf("replay d1: %+v", r)
	}
	got := fx.stream(events)
	if len(got) != 1 {
		t.Fatalf("events after replaying d1: %v", got)
	}
	// Back in the events stream with exactly the ingest fields, in ingest order (in the
	// compact format: the envelope as ingested): the original event id and body, no
	// attempts (they start again), no dead-letter fields.
	want := fx.fields("ens", e1)
	var wantNames []string
	for i := 0; i < len(want); i += 2 {
		wantNames = append(wantNames, want[i])
	}
	if names := fieldNames(t, fx, events, got[0].ID); !reflect.DeepEqual(names, wantNames) {
		t.Errorf("replayed fields %v, want %v", names, wantNames)
	}
	if fx.compact && got[0].Values[queue.FieldEnvelope] != want[1] {
		t.Errorf("replayed envelope %q, want %q", got[0].Values[queue.FieldEnvelope], want[1])
	}
	re := queue.DecodeEntry("ens", got[0].ID, got[0].Values)
	if m := re.Message; re.Bad != nil || m.ID != "evt-1" || string(m.Body) != e1.body || !m.ReceivedAt.Equal(at) || m.Source != "shop" || re.Attempts != 0 {
		t.Errorf("replayed message %+v (%v)", re, re.Bad)
	}
	if _, ok := got[0].Values["attempts"]; ok {
		t.Error("the replayed entry kept its attempts")
	}

	// Again: the dead letter is gone, nothing is added.
	fx.api("POST", "/admin/api/dead/ens/replay", `{"ids":["`+d1+`","`+d1+`"]}`, 200, &r)
	if r.Replayed != 0 || r.Missing != 1 { // an id given twice counts once
		t.Errorf("replay d1 again: %+v", r)
	}
	// [] replays nothing.
	fx.api("POST", "/admin/api/dead/ens/replay", `{"ids":[]}`, 200, &r)
	if r.Replayed != 0 || r.Missing != 0 || len(fx.stream(events)) != 1 {
		t.Errorf("replay of no ids: %+v", r)
	}

	// All: d2 goes back, the trimmed d3 cannot and stays.
	fx.api("POST", "/admin/api/dead/ens/replay", "", 200, &r)
	if r.Replayed != 1 || r.Skipped != 1 || r.Missing != 0 || !r.Done || r.Until != d3 || r.LastID != d3 {
		t.Errorf("replay all: %+v", r)
	}
	if left := fx.stream(dead); len(left) != 1 || left[0].ID != d3 {
		t.Errorf("dead letters left: %v", left)
	}
	fx.api("POST", "/admin/api/dead/ens/replay", "{}", 200, &r)
	if r.Replayed != 0 || r.Skipped != 1 {
		t.Errorf("replay all again: %+v", r)
	}
	got = fx.stream(events)
	if len(got) != 2 {
		t.Fatalf("events after replays: %v", got)
	}
	if m := queue.DecodeEntry("ens", got[1].ID, got[1].Values).Message; m.ID != "evt-2" || string(m.Body) != e2.body {
		t.Errorf("events after replays: %v", got)
	}
	_ = d2

	// Audit: one line per replay call, with the count and the caller, never the token.
	lines := fx.auditLines()
	if len(lines) != 5 {
		t.Fatalf("audit lines: %v", lines)
	}
	for i, want := range []struct {
		scope string
		count int64
	}{{"ids", 1}, {"ids", 0}, {"ids", 0}, {"all", 1}, {"all", 0}} {
		l := lines[i]
		if l["logger"] != "audit" || l["provider"] != "ens" || l["action"] != "replay" || l["scope"] != want.scope ||
			l["count"] != want.count || l["caller"] != "127.0.0.1" {
			t.Errorf("audit line %d: %v", i, l)
		}
		if strings.Contains(fmt.Sprint(l), fxToken) {
			t.Errorf("audit line %d holds the token", i)
		}
	}
}

func TestReplayInChunks(t *testing.T) { formats(t, testReplayInChunks) }

func testReplayInChunks(t *testing.T, o fxOptions) {
	fx := newFixture(t, o)
	var ids []string
	for i := range 7 {
		ids = append(ids, fx.addDead("ens", event{id: fmt.Sprintf("e%d", i), route: "ens/click", body: `{}`, at: time.Now()},
			deadInfo{reason: "permanent", status: 400, attempts: 1}))
	}
	var r admin.ReplayReply
	fx.api("POST", "/admin/api/dead/ens/replay", `{"limit":3}`, 200, &r)
	if r.Replayed != 3 || r.LastID != ids[2] || r.Until != ids[6] || r.Done {
		t.Fatalf("chunk 1: %+v", r)
	}
	// A dead letter that arrives during the replay is after `until`: not replayed now.
	late := fx.addDead("ens", event{id: "late", route: "ens/click", body: `{}`, at: time.Now()}, deadInfo{reason: "permanent"})
	next := func() {
		fx.api("POST", "/admin/api/dead/ens/replay", fmt.Sprintf(`{"limit":3,"after":%q,"until":%q}`, r.LastID, r.Until), 200, &r)
	}
	next()
	if r.Replayed != 3 || r.LastID != ids[5] || r.Done {
		t.Fatalf("chunk 2: %+v", r)
	}
	next()
	if r.Replayed != 1 || r.LastID != ids[6] || !r.Done {
		t.Fatalf("chunk 3: %+v", r)
	}
	next()
	if r.Replayed != 0 || !r.Done {
		t.Fatalf("past the end: %+v", r)
	}
	if left := fx.stream(fx.keys.Dead("ens")); len(left) != 1 || left[0].ID != late {
		t.Errorf("dead letters left: %v", left)
	}
	if n := len(fx.stream(fx.keys.Events("ens"))); n != 7 {
		t.Errorf("events: %d, want 7", n)
	}
}

func TestReplayAllPagesThroughALargeStream(t *testing.T) {
	fx := newFixture(t, fxOptions{})
	const n = 1234 // more than two pages of 500
	ctx := fx.ctx()
	pipe := fx.rdb.Pipeline()
	for i := range n {
		pairs := append(event{id: fmt.Sprintf("e%d", i), route: "ens/click", body: `{}`, at: time.Now()}.pairs(),
			"attempts", "3", "status", "500", "error", "x", "reason", "max_attempts", "dead_at", "1", "stream_id", "1-0")
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: fx.keys.Dead("ens"), Values: anys(pairs)})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	var r admin.ReplayReply
	fx.api("POST", "/admin/api/dead/ens/replay", "", 200, &r)
	if r.Replayed != n || !r.Done {
		t.Errorf("replay all: %+v", r)
	}
	events := fx.stream(fx.keys.Events("ens"))
	if len(events) != n || len(fx.stream(fx.keys.Dead("ens"))) != 0 {
		t.Fatalf("events %d, dead %d", len(events), len(fx.stream(fx.keys.Dead("ens"))))
	}
	seen := map[any]bool{}
	for _, e := range events {
		seen[e.Values["id"]] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct event ids, want %d", len(seen), n)
	}
}
