package admin_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/eventrelay/relay/relay/admin"
	"github.com/eventrelay/relay/relay/queue"
)

func TestDeadListNewestFirstWithFields(t *testing.T) { formats(t, testDeadListNewestFirstWithFields) }

func testDeadListNewestFirstWithFields(t *testing.T, o fxOptions) {
	fx := newFixture(t, o)
	received := time.UnixMilli(1718000000123)
	died := time.UnixMilli(1718000100456)
	ids := make([]string, 3)
	for i := range ids {
		e := event{id: "evt-" + string(rune('1'+i)), route: "ens/click", body: `{"campaignId":1}`, at: received}
		ids[i] = fx.addDead("ens", e, deadInfo{reason: "permanent", status: 400 + i, attempts: i + 1,
			errText: "HTTP 400: bad campaign", deadAt: died.Add(time.Duration(i) * time.Second), eventsStreamID: "1717-" + string(rune('0'+i))})
	}

	var reply admin.DeadListReply
	fx.api("GET", "/admin/api/dead/ens", "", 200, &reply)
	if reply.Provider != "ens" || reply.Total != 3 || len(reply.Dead) != 3 {
		t.Fatalf("reply: %+v", reply)
	}
	for i, d := range reply.Dead {
		if d.StreamID != ids[2-i] {
			t.Errorf("entry %d is %s, want %s (newest first)", i, d.StreamID, ids[2-i])
		}
	}
	want := admin.DeadLetter{StreamID: ids[2], EventsStreamID: "1717-2", ID: "evt-3", Route: "ens/click", Source: "shop",
		Reason: "permanent", Status: 402, Attempts: 3, Error: "HTTP 400: bad campaign",
		DeadAt: "2024-06-10T06:15:02.456Z", ReceivedAt: "2024-06-10T06:13:20.123Z"}
	if reply.Dead[0] != want {
		t.Errorf("newest entry:\n got %+v\nwant %+v", reply.Dead[0], want)
	}
	// The list never carries the body.
	_, _, raw := fx.do("GET", "/admin/api/dead/ens", fxToken, "")
	if strings.Contains(string(raw), `"body"`) || strings.Contains(string(raw), "campaignId") {
		t.Errorf("the list holds bodies: %s", raw)
	}

	fx.api("GET", "/admin/api/dead/ens?limit=2", "", 200, &reply)
	if len(reply.Dead) != 2 || reply.Total != 3 || reply.Dead[0].StreamID != ids[2] || reply.Dead[1].StreamID != ids[1] {
		t.Errorf("limit=2: %+v", reply)
	}
	fx.api("GET", "/admin/api/dead/ens?limit=5000", "", 200, &reply) // capped, not refused
	if len(reply.Dead) != 3 {
		t.Errorf("limit=5000: %d entries", len(reply.Dead))
	}
	// An empty dead-letter stream is an empty list, not null.
	_, _, raw = fx.do("GET", "/admin/api/dead/brevo", fxToken, "")
	if !strings.Contains(string(raw), `"dead":[]`) || !strings.Contains(string(raw), `"total":0`) {
		t.Errorf("empty list: %s", raw)
	}
}

func TestDeadGetOneWithMaskedBody(t *testing.T) { formats(t, testDeadGetOneWithMaskedBody) }

func testDeadGetOneWithMaskedBody(t *testing.T, o fxOptions) {
	fx := newFixture(t, o)
	body := `{"event_name":"order","identifiers":{"email_id":"jane.doe@example.com"},"note":"cc \u00e9x@y.org"}`
	id := fx.addDead("brevo", event{id: "evt-9", route: "brevo/events", body: body, at: time.UnixMilli(1718000000000)},
		deadInfo{reason: "max_attempts", status: 503, attempts: 12, errText: "HTTP 503", deadAt: time.UnixMilli(1718000000999)})
	trimmed := fx.addDead("brevo", event{}, deadInfo{reason: "trimmed", withoutIngestData: true, deadAt: time.UnixMilli(1718000001000)})

	var d admin.DeadLetterDetail
	fx.api("GET", "/admin/api/dead/brevo/"+id, "", 200, &d)
	if d.StreamID != id || d.ID != "evt-9" || d.Reason != "max_attempts" || d.Attempts != 12 || d.Status != 503 ||
		d.IP != "203.0.113.7" || d.UserAgent != "Mozilla/5.0 test" || d.Country != "DE" || d.Source != "shop" {
		t.Errorf("detail: %+v", d)
	}
	wantBody := `{"event_name":"order","identifiers":{"email_id":"j***@example.com"},"note":"cc \u00e9x***@y.org"}`
	if string(d.Body) != wantBody {
		t.Errorf("body:\n got %s\nwant %s", d.Body, wantBody)
	}
	if !json.Valid(d.Body) {
		t.Errorf("masked body is not JSON: %s", d.Body)
	}
	// The stored entry keeps the real address: a replay sends what was accepted.
	if got := queue.DecodeDeadLetter("brevo", fx.stream(fx.keys.Dead("brevo"))[0]).Message.Body; string(got) != body {
		t.Errorf("stored body changed: %s", got)
	}

	fx.api("GET", "/admin/api/dead/brevo/"+trimmed, "", 200, &d)
	if d.Reason != "trimmed" || d.ID != "" || d.ReceivedAt != "" || string(d.Body) != `""` {
		t.Errorf("trimmed detail: %+v body %s", d, d.Body)
	}

	status, _, b := fx.do("GET", "/admin/api/dead/brevo/1-0", fxToken, "")
	if status != 404 {
		t.Errorf("absent entry: %d", status)
	}
	wantError(t, "absent entry", b, admin.CodeNotFound)
}

func TestPurge(t *testing.T) { formats(t, testPurge) }

func testPurge(t *testing.T, o fxOptions) {
	fx := newFixture(t, o)
	var ids []string
	for i := range 4 {
		ids = append(ids, fx.addDead("ens", event{id: "e" + string(rune('0'+i)), route: "ens/click", body: `{}`},
			deadInfo{reason: "permanent", status: 400, attempts: 1}))
	}
	var reply admin.PurgeReply
	fx.api("DELETE", "/admin/api/dead/ens", `{"ids":["`+ids[1]+`","99-0"]}`, 200, &reply)
	if reply.Purged != 1 {
		t.Errorf("purge by ids: %d", reply.Purged)
	}
	fx.api("DELETE", "/admin/api/dead/ens", `{"ids":[]}`, 200, &reply)
	if reply.Purged != 0 || len(fx.stream(fx.keys.Dead("ens"))) != 3 {
		t.Errorf("purge of no ids: %d", reply.Purged)
	}
	fx.api("DELETE", "/admin/api/dead/ens", "", 200, &reply)
	if reply.Purged != 3 {
		t.Errorf("purge all: %d", reply.Purged)
	}
	if n, err := fx.rdb.Exists(fx.ctx(), fx.keys.Dead("ens")).Result(); err != nil || n != 0 {
		t.Errorf("dead stream still exists: %d %v", n, err)
	}
	fx.api("DELETE", "/admin/api/dead/ens", "{}", 200, &reply)
	if reply.Purged != 0 {
		t.Errorf("purge of an empty stream: %d", reply.Purged)
	}

	lines := fx.auditLines()
	if len(lines) != 4 {
		t.Fatalf("audit lines: %v", lines)
	}
	for i, want := range []struct {
		scope string
		count int64
	}{{"ids", 1}, {"ids", 0}, {"all", 3}, {"all", 0}} {
		l := lines[i]
		if l["logger"] != "audit" || l["provider"] != "ens" || l["action"] != "purge" || l["scope"] != want.scope ||
			l["count"] != want.count || l["caller"] != "127.0.0.1" {
			t.Errorf("audit line %d: %v", i, l)
		}
	}
}
