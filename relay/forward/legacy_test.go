package forward_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// legacyFields are an event in the nine-field entry format of earlier relays, exactly as
// their enqueue script wrote it (a rolling upgrade: old relays still writing, or entries
// they left queued).
func legacyFields(id, route, body string, at time.Time) []string {
	return []string{"id", id, "route", route, "body", body, "at", strconv.FormatInt(at.UnixMilli(), 10),
		"ip", "192.0.2.1", "ua", "Mozilla/5.0", "country", "FR", "customer", "", "src", "client:test"}
}

func anys(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// Entries and retry members written by earlier relays are delivered, retried and
// dead-lettered by this one, end to end through the fake upstreams.
func TestLegacyEntriesDeliveredRetriedAndDeadLettered(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	now := time.Now()
	e.up["ens"].setScript(func(n int) reply {
		if n == 0 {
			return reply{status: 500, body: `{"error":"boom"}`}
		}
		return reply{status: 200, body: `{"status":"success"}`}
	})
	e.up["linkrunner"].setScript(func(int) reply { return reply{status: 400, body: `{"error":"bad event"}`} })

	// bannerflex: one legacy entry, and one legacy retry member (two attempts made), due.
	add := func(provider string, fields []string) {
		if err := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: e.keys.Events(provider), Values: anys(fields)}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	add("bannerflex", legacyFields("legacy-1", "bannerflex/banner-events", bfBody, now))
	member, err := json.Marshal(append(legacyFields("legacy-2", "bannerflex/banner-events", `{"n":2}`, now),
		"attempts", "2", "status", "503", "error", "HTTP 503"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.ZAdd(ctx, e.keys.Retry("bannerflex"), redis.Z{Score: float64(now.UnixMilli()), Member: string(member)}).Err(); err != nil {
		t.Fatal(err)
	}
	// ens: a legacy entry that fails once, is retried (in the new format) and delivered.
	add("ens", legacyFields("legacy-3", "ens/click", ensBody, now))
	// linkrunner: a legacy entry the upstream refuses for good: dead-lettered.
	add("linkrunner", legacyFields("legacy-4", "linkrunner/capture-event", `{"event_name":"x","user_id":"u"}`, now))

	e.settledRequests("bannerflex", 2, 10*time.Second)
	e.settledRequests("ens", 2, 10*time.Second) // a 500, then the retry
	e.settledRequests("linkrunner", 1, 10*time.Second)
	if n := len(e.dead("linkrunner")); n != 1 {
		t.Fatalf("linkrunner: %d dead letters, want 1", n)
	}

	sent := map[string]string{} // event id → body
	for _, p := range []string{"bannerflex", "ens"} {
		for _, h := range e.up[p].got() {
			if h.status == 200 {
				sent[h.header.Get(eventIDHeader)] = h.body
			}
		}
	}
	want := map[string]string{"legacy-1": bfBody, "legacy-2": `{"n":2}`, "legacy-3": ensBody}
	for id, body := range want {
		if sent[id] != body {
			t.Errorf("%s: delivered %q, want %q", id, sent[id], body)
		}
	}
	d := e.dead("linkrunner")[0]
	if d.Message.ID != "legacy-4" || string(d.Message.Body) != `{"event_name":"x","user_id":"u"}` || d.Message.Country != "FR" ||
		d.Reason != "permanent" || d.Attempts != 1 || d.Status != 400 {
		t.Errorf("dead letter %+v", d)
	}
}
