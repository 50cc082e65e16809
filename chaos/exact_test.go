package chaos

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The checker's own tests: pure Go, no processes. Each feeds Tally hand-made sets of
// accepted ids, upstream deliveries and dead letters, and checks Report.Exact.

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func acceptedIDs(provider string, ids ...string) []Accepted {
	var out []Accepted
	for i, id := range ids {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		out = append(out, Accepted{ID: id, Provider: provider, Route: "r", Sent: at, At: at})
	}
	return out
}

// delivered maps each id to one 2xx delivery, 100 ms after t0.
func delivered(ids ...string) map[string][]time.Time {
	out := map[string][]time.Time{}
	for _, id := range ids {
		out[id] = append(out[id], t0.Add(100*time.Millisecond))
	}
	return out
}

func report(rows ...Figures) Report { return Report{Name: "unit", Rows: rows} }

// poisonOnly justifies a dead letter, reason permanent, for bannerflex's id "p" only.
func poisonOnly(provider, id string) string {
	if provider == BannerFlex && id == "p" {
		return "permanent"
	}
	return ""
}

func TestExactAllAccountedFor(t *testing.T) {
	ens := Tally(ENS, acceptedIDs(ENS, "a", "b", "c"), delivered("a", "b", "c"), nil)
	bf := Tally(BannerFlex, acceptedIDs(BannerFlex, "d", "p"), delivered("d"), map[string]string{"p": "permanent"})
	v := report(ens, bf).Exact(Expect{DeadReason: poisonOnly})
	if !v.OK() || v.Err() != nil {
		t.Fatalf("every event accounted for, yet: %v", v.Err())
	}
	if ens.Accepted != 3 || ens.Delivered != 3 || bf.Dead != 1 || bf.Lost != 0 {
		t.Errorf("figures: ens %+v, bannerflex %+v", ens, bf)
	}
}

// Negative control: one id answered 202 that never reached the upstream (never sent) is
// exactly one loss.
func TestExactOneNeverSentIsOneLoss(t *testing.T) {
	f := Tally(ENS, acceptedIDs(ENS, "a", "b", "never"), delivered("a", "b"), nil)
	v := report(f).Exact(Expect{})
	if f.Lost != 1 || len(v.Lost) != 1 || v.Lost[0] != "ens/never" {
		t.Fatalf("lost: figures %d, verdict %v; want exactly ens/never", f.Lost, v.Lost)
	}
	if len(v.UnexpectedDead) != 0 || len(v.WrongReason) != 0 || len(v.OverBound) != 0 || v.Duplicates != 0 {
		t.Errorf("other categories not empty: %+v", v)
	}
	if err := v.Err(); err == nil || !strings.Contains(err.Error(), "lost (1): ens/never") {
		t.Errorf("message: %v", err)
	}
}

// Negative control: one extra 2xx at the upstream is exactly one duplicate, an offence
// beyond the bound and none within it.
func TestExactOneExtraDeliveryIsOneDuplicate(t *testing.T) {
	dels := delivered("a", "b", "c")
	dels["b"] = append(dels["b"], t0.Add(time.Second))
	f := Tally(ENS, acceptedIDs(ENS, "a", "b", "c"), dels, nil)
	if f.Duplicates != 1 || f.Delivered != 3 || f.Lost != 0 {
		t.Fatalf("figures %+v; want 3 delivered, 1 duplicate", f)
	}
	v := report(f).Exact(Expect{})
	if v.Duplicates != 1 || len(v.Duplicated) != 1 || v.Duplicated[0] != "ens/b ×2" || v.OK() {
		t.Fatalf("verdict %+v; want one duplicate (ens/b ×2) over the bound 0", v)
	}
	if err := v.Err(); err == nil || !strings.Contains(err.Error(), "duplicated (1): ens/b ×2") {
		t.Errorf("message: %v", err)
	}
	if v := report(f).Exact(Expect{MaxDuplicates: 1}); !v.OK() || v.Duplicates != 1 {
		t.Errorf("one duplicate within a bound of 1: %v", v.Err())
	}
	// A per-provider bound applies on its own.
	if v := report(f).Exact(Expect{MaxDuplicates: 5, MaxDuplicatesAt: map[string]int{ENS: 0}}); v.OK() {
		t.Error("one duplicate at ens passed a bound of 0 at ens")
	}
	if v := report(f).Exact(Expect{MaxDuplicates: 5, MaxDuplicatesAt: map[string]int{Brevo: 0}}); !v.OK() {
		t.Errorf("a bound at brevo failed ens's duplicate: %v", v.Err())
	}
}

// Negative control: one healthy event dead-lettered (it counts as not lost) is exactly one
// unexpected dead letter.
func TestExactHealthyDeadLetterIsUnexpected(t *testing.T) {
	f := Tally(BannerFlex, acceptedIDs(BannerFlex, "a", "h", "p"), delivered("a"),
		map[string]string{"h": "max_attempts", "p": "permanent"})
	if f.Lost != 0 || f.Dead != 2 {
		t.Fatalf("figures %+v; want 2 dead, none lost (the old, lenient accounting)", f)
	}
	v := report(f).Exact(Expect{DeadReason: poisonOnly})
	if len(v.UnexpectedDead) != 1 || v.UnexpectedDead[0] != "bannerflex/h (max_attempts)" {
		t.Fatalf("unexpected dead %v; want exactly bannerflex/h", v.UnexpectedDead)
	}
	if len(v.Lost) != 0 || len(v.WrongReason) != 0 || len(v.OverBound) != 0 {
		t.Errorf("other categories not empty: %+v", v)
	}
	if err := v.Err(); err == nil || !strings.Contains(err.Error(), "unexpectedly dead-lettered (1): bannerflex/h (max_attempts)") {
		t.Errorf("message: %v", err)
	}
	// Without poison, the poison's dead letter is unexpected too.
	if v := report(f).Exact(Expect{}); len(v.UnexpectedDead) != 2 {
		t.Errorf("no dead letter justified: unexpected %v; want 2", v.UnexpectedDead)
	}
}

// A poison event dead-lettered with another reason than the one justified.
func TestExactWrongReason(t *testing.T) {
	f := Tally(BannerFlex, acceptedIDs(BannerFlex, "a", "p"), delivered("a"), map[string]string{"p": "max_age"})
	v := report(f).Exact(Expect{DeadReason: poisonOnly})
	if len(v.WrongReason) != 1 || v.WrongReason[0] != "bannerflex/p: max_age, want permanent" {
		t.Fatalf("wrong reason %v; want exactly bannerflex/p", v.WrongReason)
	}
	if len(v.Lost) != 0 || len(v.UnexpectedDead) != 0 || v.OK() {
		t.Errorf("verdict %+v", v)
	}
}

// A dead letter for an id never answered 202 (a 503 whose write went through) is checked
// like any other; a delivery of such an id is a phantom, not an offence.
func TestExactDeadLetterOfUnacceptedID(t *testing.T) {
	dels := delivered("a", "ghost")
	f := Tally(ENS, acceptedIDs(ENS, "a"), dels, map[string]string{"ghost2": "permanent"})
	if f.Phantom != 1 || f.Dead != 0 {
		t.Fatalf("figures %+v; want 1 phantom, 0 dead among accepted", f)
	}
	v := report(f).Exact(Expect{})
	if len(v.UnexpectedDead) != 1 || v.UnexpectedDead[0] != "ens/ghost2 (permanent)" || len(v.Lost) != 0 {
		t.Fatalf("verdict %+v", v)
	}
}

// Every category at once, across providers, in one message; long lists are cut.
func TestExactMessageListsEveryCategory(t *testing.T) {
	var many []string
	for i := range 25 {
		many = append(many, "l"+string(rune('a'+i)))
	}
	ens := Tally(ENS, acceptedIDs(ENS, many...), nil, nil)
	dels := delivered("d")
	dels["d"] = append(dels["d"], t0, t0)
	bf := Tally(BannerFlex, acceptedIDs(BannerFlex, "d", "h", "p"), dels, map[string]string{"h": "permanent", "p": "trimmed"})
	v := report(ens, bf).Exact(Expect{DeadReason: poisonOnly, MaxDuplicates: 1})
	if len(v.Lost) != 25 || v.Duplicates != 2 || len(v.UnexpectedDead) != 1 || len(v.WrongReason) != 1 {
		t.Fatalf("verdict %+v", v)
	}
	msg := v.Err().Error()
	for _, want := range []string{"lost (25): ens/la,", "… 5 more", "2 in total > 1", "duplicated (1): bannerflex/d ×3",
		"unexpectedly dead-lettered (1): bannerflex/h (permanent)", "wrong reason (1): bannerflex/p: trimmed, want permanent"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}

// Negative control: a poison event the upstream accepted after all (delivered, not dead)
// is reported: a justified dead letter must be one.
func TestExactJustifiedDeadLetterDeliveredInstead(t *testing.T) {
	f := Tally(BannerFlex, acceptedIDs(BannerFlex, "a", "p"), delivered("a", "p"), nil)
	v := report(f).Exact(Expect{DeadReason: poisonOnly})
	if len(v.NotDead) != 1 || v.NotDead[0] != "bannerflex/p" || v.OK() {
		t.Fatalf("verdict %+v; want bannerflex/p delivered although refused for good", v)
	}
	if err := v.Err(); err == nil || !strings.Contains(err.Error(), "delivered although refused for good (1): bannerflex/p") {
		t.Errorf("message: %v", err)
	}
}

// Negative control: a duplicate within the count bound but of an id outside the crash
// window is over the bound.
func TestExactDuplicateOutsideTheCrashWindow(t *testing.T) {
	dels := delivered("a", "b")
	dels["b"] = append(dels["b"], t0.Add(time.Second))
	f := Tally(ENS, acceptedIDs(ENS, "a", "b"), dels, nil)
	held := func(_, id string) bool { return id == "a" }
	v := report(f).Exact(Expect{MaxDuplicates: 5, MayDuplicate: held})
	if v.OK() || len(v.OverBound) != 1 || !strings.Contains(v.OverBound[0], "1 at ens outside the crash window (b)") {
		t.Fatalf("verdict %+v; want ens/b over the bound", v)
	}
	if v := report(f).Exact(Expect{MaxDuplicates: 5, MayDuplicate: func(string, string) bool { return true }}); !v.OK() {
		t.Errorf("a duplicate inside the window: %v", v.Err())
	}
}

// The fake's per-event accounting inside one request: a Brevo 207 delivers the events
// it does not refuse, and says which it refused in Brevo's batchEventsResponse; a
// Cardlytics message counts once per complete set of its clientEvents, and one torn
// apart is malformed.
func TestUpstreamCountsEventsInsideRequests(t *testing.T) {
	u := NewUpstream(t, Brevo)
	u.SetBehavior(func(h Hit) Reply { return Reply{Status: 207, Refuse: map[string]string{"b": "bad identifiers"}} })
	body := `{"events":[{"event_properties":{"rid":"a"}},{"event_properties":{"rid":"b"}},{"event_properties":{"rid":"c"}}]}`
	res, err := http.Post(u.URL()+"/v3/events/batch", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	reply, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 207 || !strings.Contains(string(reply), `"errors":[{"eventIndex":[1],"message":"bad identifiers"}]`) ||
		!strings.Contains(string(reply), `"failed_events":1`) {
		t.Errorf("reply %d %s", res.StatusCode, reply)
	}
	dels := u.Deliveries()
	if len(dels) != 2 || dels["a"] == nil || dels["c"] == nil || dels["b"] != nil {
		t.Errorf("deliveries %v; want a and c, not the refused b", dels)
	}

	cdlx := func(parts ...string) []byte {
		var evs []string
		for _, p := range parts {
			evs = append(evs, `{"clientEventId":"x","clientEventMetadata":{"curationId":"`+p+`"}}`)
		}
		return []byte(`{"clientEvents":[` + strings.Join(evs, ",") + `]}`)
	}
	x := extract(cardlyticsEventsPath, cdlx("m/0/2", "m/1/2", "s/0/1", "s/0/1"))
	if strings.Join(x.ids, " ") != "m s s" || len(x.malformed) != 0 {
		t.Errorf("ids %v, malformed %v; want m s s (s twice in one request), none malformed", x.ids, x.malformed)
	}
	if x := extract(cardlyticsEventsPath, cdlx("m/0/3", "m/2/3", "s/0/1")); len(x.malformed) != 1 ||
		!strings.Contains(x.malformed[0], "m: 2 clientEvents of a message of 3") {
		t.Errorf("a torn message: malformed %v", x.malformed)
	}
}
