package admin_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/relay/admin"
	"github.com/eventrelay/relay/relay/queue"
)

// addDeadAt appends a dead letter with the stream id <at ms>-0: the time a filter's
// since/until compare.
func (fx *fixture) addDeadAt(provider string, e event, d deadInfo, at time.Time) string {
	fx.t.Helper()
	var pairs []string
	if !d.withoutIngestData {
		pairs = fx.fields(provider, e)
	}
	pairs = append(pairs, "attempts", strconv.Itoa(d.attempts), "status", strconv.Itoa(d.status), "error", d.errText,
		"reason", d.reason, "dead_at", strconv.FormatInt(at.UnixMilli(), 10), "stream_id", "1-0")
	id, err := fx.rdb.XAdd(fx.ctx(), &redis.XAddArgs{Stream: fx.keys.Dead(provider), ID: strconv.FormatInt(at.UnixMilli(), 10) + "-0",
		Values: anys(pairs)}).Result()
	if err != nil {
		fx.t.Fatal(err)
	}
	return id
}

// eventIDs are the event ids in provider's events stream, in order.
func (fx *fixture) eventIDs(provider string) []string {
	fx.t.Helper()
	var ids []string
	for _, m := range fx.stream(fx.keys.Events(provider)) {
		ids = append(ids, queue.DecodeEntry(provider, m.ID, m.Values).Message.ID)
	}
	return ids
}

func TestRedriveByFilter(t *testing.T) { formats(t, testRedriveByFilter) }

func testRedriveByFilter(t *testing.T, o fxOptions) {
	fx := newFixture(t, o)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ev := func(id, route string) event {
		return event{id: id, route: route, body: `{"campaignId":1,"placement":"top"}`, at: t0.Add(-time.Hour)}
	}
	// A..F, one minute apart.
	ids := map[string]string{}
	for i, l := range []struct {
		name, route, reason string
		status              int
		trimmed             bool
	}{
		{"A", "ens/click", "max_attempts", 503, false},
		{"B", "ens/click", "permanent", 400, false},
		{"C", "ens/impression", "max_attempts", 503, false},
		{"D", "ens/click", "max_attempts", 503, false},
		{"E", "", "trimmed", 0, true},
		{"F", "ens/click", "max_attempts", 0, false},
	} {
		ids[l.name] = fx.addDeadAt("ens", ev("evt-"+l.name, l.route), deadInfo{reason: l.reason, status: l.status, attempts: 3,
			withoutIngestData: l.trimmed}, t0.Add(time.Duration(i)*time.Minute))
	}
	ts := func(m int) string { return t0.Add(time.Duration(m) * time.Minute).Format(time.RFC3339) }
	dead := fx.keys.Dead("ens")
	unchanged := func(what string) {
		t.Helper()
		if n := len(fx.stream(dead)); n != 6 {
			t.Errorf("%s: %d dead letters left, want all 6", what, n)
		}
		if got := fx.eventIDs("ens"); len(got) != 0 {
			t.Errorf("%s: events %v", what, got)
		}
	}

	var r admin.ReplayReply
	r = admin.ReplayReply{}
	fx.api("POST", "/admin/api/dead/ens/replay", `{"filter":{"reason":"max_attempts","status":503,"route":"ens/click"},"dry_run":true}`, 200, &r)
	if r.Matched != 2 || r.Replayed != 2 || r.Skipped != 0 || !r.DryRun || !r.Done || r.LastID != ids["F"] {
		t.Errorf("dry run by reason, status, route: %+v", r)
	}
	unchanged("dry run")
	// since is inclusive, until exclusive: minutes 1, 2, 3 → B, C, D; max_attempts → C, D.
	r = admin.ReplayReply{}
	fx.api("POST", "/admin/api/dead/ens/replay", `{"filter":{"since":"`+ts(1)+`","until":"`+ts(4)+`","reason":"max_attempts"},"dry_run":true}`, 200, &r)
	if r.Matched != 2 || r.Replayed != 2 {
		t.Errorf("dry run by time range: %+v", r)
	}
	// status 0 (no reply): E (trimmed, cannot be replayed) and F.
	r = admin.ReplayReply{}
	fx.api("POST", "/admin/api/dead/ens/replay", `{"filter":{"status":0},"dry_run":true}`, 200, &r)
	if r.Matched != 2 || r.Replayed != 1 || r.Skipped != 1 {
		t.Errorf("dry run by status 0: %+v", r)
	}
	var p admin.PurgeReply
	p = admin.PurgeReply{}
	fx.api("DELETE", "/admin/api/dead/ens", `{"filter":{"reason":"max_attempts"},"dry_run":true}`, 200, &p)
	if p.Purged != 4 || p.Matched != 4 || !p.DryRun || !p.Done {
		t.Errorf("purge dry run: %+v", p)
	}
	// ids and a filter: those of the ids the filter matches.
	r = admin.ReplayReply{}
	fx.api("POST", "/admin/api/dead/ens/replay", `{"ids":["`+ids["A"]+`","`+ids["C"]+`","9-0"],"filter":{"route":"ens/click"},"dry_run":true}`, 200, &r)
	if r.Matched != 1 || r.Replayed != 1 || r.Missing != 1 {
		t.Errorf("dry run by ids and filter: %+v", r)
	}
	// A chunk: limit counts the letters looked at.
	r = admin.ReplayReply{}
	fx.api("POST", "/admin/api/dead/ens/replay", `{"limit":2,"filter":{"reason":"max_attempts"},"dry_run":true}`, 200, &r)
	if r.Matched != 1 || r.Done || r.LastID != ids["B"] || r.Until != ids["F"] {
		t.Errorf("dry run of a chunk: %+v", r)
	}
	// Paging and the time range together: the later lower bound and the earlier upper
	// bound win.
	r = admin.ReplayReply{}
	fx.api("POST", "/admin/api/dead/ens/replay", `{"limit":2,"after":"`+ids["B"]+`","filter":{"since":"`+ts(1)+`"},"dry_run":true}`, 200, &r)
	if r.Matched != 2 || r.LastID != ids["D"] || r.Done {
		t.Errorf("chunk after B since minute 1: %+v, want C and D", r)
	}
	r = admin.ReplayReply{}
	fx.api("POST", "/admin/api/dead/ens/replay", `{"after":"`+ids["A"]+`","filter":{"since":"`+ts(2)+`"},"until":"`+ids["E"]+`","dry_run":true}`, 200, &r)
	if r.Matched != 3 || r.LastID != ids["E"] || !r.Done {
		t.Errorf("after A, since minute 2, until E: %+v, want C, D, E", r)
	}
	r = admin.ReplayReply{}
	fx.api("POST", "/admin/api/dead/ens/replay", `{"until":"`+ids["E"]+`","filter":{"until":"`+ts(2)+`"},"dry_run":true}`, 200, &r)
	if r.Matched != 2 || r.LastID != ids["B"] || !r.Done {
		t.Errorf("until E, filter until minute 2: %+v, want A and B", r)
	}
	unchanged("dry runs")

	// For real: D only.
	r = admin.ReplayReply{}
	fx.api("POST", "/admin/api/dead/ens/replay", `{"filter":{"since":"`+ts(1)+`","until":"`+ts(4)+`","reason":"max_attempts","route":"ens/click"}}`, 200, &r)
	if r.Matched != 1 || r.Replayed != 1 || r.DryRun {
		t.Errorf("replay by filter: %+v", r)
	}
	if got := fx.eventIDs("ens"); len(got) != 1 || got[0] != "evt-D" {
		t.Errorf("events after the replay: %v, want [evt-D]", got)
	}
	p = admin.PurgeReply{}
	fx.api("DELETE", "/admin/api/dead/ens", `{"filter":{"reason":"permanent"}}`, 200, &p)
	if p.Purged != 1 {
		t.Errorf("purge by reason: %+v", p)
	}
	var left []string
	for _, m := range fx.stream(dead) {
		left = append(left, m.ID)
	}
	if want := []string{ids["A"], ids["C"], ids["E"], ids["F"]}; fmt.Sprint(left) != fmt.Sprint(want) {
		t.Errorf("dead letters left %v, want %v", left, want)
	}
	// The audit log names the filter.
	lines := fx.auditLines()
	if last := lines[len(lines)-1]; last["action"] != "purge" || !strings.Contains(last["scope"].(string), `reason="permanent"`) || last["count"] != int64(1) {
		t.Errorf("audit line: %v", last)
	}
}

func TestRedriveFilterErrorsNameTheField(t *testing.T) {
	fx := newFixture(t, fxOptions{})
	for body, field := range map[string]string{
		`{"filter":{"reason":"nope"}}`:                                               "filter.reason",
		`{"filter":{"since":"yesterday"}}`:                                           "filter.since",
		`{"filter":{"until":"2026-13-01T00:00:00Z"}}`:                                "filter.until",
		`{"filter":{"since":"2026-12-02T00:00:00Z","until":"2026-12-01T00:00:00Z"}}`: "filter.until",
		`{"filter":{"status":1000}}`:                                                 "filter.status",
		`{"filter":{"route":"brevo/events"}}`:                                        "filter.route",
		`{"filter":{"colour":"red"}}`:                                                "colour",
		`{"filter":{"reason":"permanent"},"limit":-1}`:                               "limit",
	} {
		for _, call := range [][2]string{{"POST", "/admin/api/dead/ens/replay"}, {"DELETE", "/admin/api/dead/ens"}} {
			status, _, b := fx.do(call[0], call[1], fxToken, body)
			if status != 400 || !strings.Contains(string(b), field) {
				t.Errorf("%s %s: %d %s, want 400 naming %s", call[0], body, status, b, field)
			}
		}
	}
}

// TestRedriveScansInPages replays by filter from a dead-letter stream several pages long:
// every match of every page is replayed exactly once, and nothing else.
func TestRedriveScansInPages(t *testing.T) {
	fx := newFixture(t, fxOptions{compact: true})
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	const n = 1300 // pages of 500: three
	pipe := fx.rdb.Pipeline()
	for i := range n {
		reason := "permanent"
		if i%3 == 0 {
			reason = "max_attempts"
		}
		e := event{id: fmt.Sprintf("evt-%04d", i), route: "ens/click", body: `{"campaignId":1}`, at: t0}
		pairs := append(fx.fields("ens", e), "attempts", "1", "status", "503", "error", "", "reason", reason,
			"dead_at", "0", "stream_id", "1-0")
		pipe.XAdd(fx.ctx(), &redis.XAddArgs{Stream: fx.keys.Dead("ens"), ID: fmt.Sprintf("%d-0", t0.UnixMilli()+int64(i)), Values: anys(pairs)})
	}
	if _, err := pipe.Exec(fx.ctx()); err != nil {
		t.Fatal(err)
	}
	var r admin.ReplayReply
	r = admin.ReplayReply{}
	fx.api("POST", "/admin/api/dead/ens/replay", `{"filter":{"reason":"max_attempts"}}`, 200, &r)
	want := (n + 2) / 3
	if r.Replayed != int64(want) || r.Matched != int64(want) || !r.Done {
		t.Errorf("replay: %+v, want %d replayed", r, want)
	}
	got := fx.eventIDs("ens")
	if len(got) != want {
		t.Fatalf("%d events replayed, want %d", len(got), want)
	}
	for k, id := range got {
		if id != fmt.Sprintf("evt-%04d", 3*k) {
			t.Fatalf("event %d is %s, want evt-%04d", k, id, 3*k)
		}
	}
	if left := len(fx.stream(fx.keys.Dead("ens"))); left != n-want {
		t.Errorf("%d dead letters left, want %d", left, n-want)
	}
}

// A dry run by ids counts an id given twice once, as the real call does (the real call
// finds it gone after its first use); "<ms>" and "<ms>-0" are the same id.
func TestRedriveDryRunCountsRepeatedIDsOnce(t *testing.T) {
	fx := newFixture(t, fxOptions{compact: true})
	now := time.Now()
	id := fx.addDeadAt("ens", event{id: "e1", route: "ens/click", body: `{}`, at: now},
		deadInfo{reason: "permanent", status: 400, attempts: 1}, now)
	short := strings.TrimSuffix(id, "-0")
	body := fmt.Sprintf(`{"ids":[%q,%q,%q],"dry_run":true}`, id, id, short)
	var dry admin.ReplayReply
	fx.api("POST", "/admin/api/dead/ens/replay", body, 200, &dry)
	var dryPurge admin.PurgeReply
	fx.api("DELETE", "/admin/api/dead/ens", body, 200, &dryPurge)
	var real admin.ReplayReply
	fx.api("POST", "/admin/api/dead/ens/replay", strings.Replace(body, `,"dry_run":true`, "", 1), 200, &real)
	if dry.Replayed != 1 || dryPurge.Purged != 1 || real.Replayed != 1 {
		t.Errorf("dry replay %+v, dry purge %+v, real replay %+v: want 1 each", dry, dryPurge, real)
	}
	if dry.Missing != real.Missing || dry.Missing != 0 {
		t.Errorf("missing: dry %d, real %d, want 0", dry.Missing, real.Missing)
	}
}
