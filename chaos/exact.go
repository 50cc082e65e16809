package chaos

import (
	"fmt"
	"sort"
	"strings"
)

// Expect is what a scenario justifies beyond delivering every accepted event exactly
// once: which dead letters (and with which reason), and how many duplicates its crash
// window can cause. Report.Exact checks a report against it.
type Expect struct {
	// DeadReason is the reason provider's event id must be dead-lettered with (an event
	// the upstream refuses for good: it must not be delivered instead); "" when it must
	// not be dead-lettered at all. Nil: no dead letter is justified (a scenario without
	// poison events).
	DeadReason func(provider, id string) string
	// MaxDuplicates bounds the 2xx deliveries beyond the first, all providers together:
	// the crash window the scenario can prove. 0: every event is delivered at most once.
	MaxDuplicates int
	// MaxDuplicatesAt bounds them per provider as well (a provider absent: only the total
	// bound applies).
	MaxDuplicatesAt map[string]int
	// MayDuplicate, when set, names the ids the crash window can have duplicated (say,
	// those pending under a killed relay): any other id delivered twice is over the bound,
	// whatever the counts.
	MayDuplicate func(provider, id string) bool
}

// Verdict is a report's exact accounting against an Expect: the offending ids, by
// category, each as "provider/id".
type Verdict struct {
	// Lost ids were answered 202 but neither delivered nor dead-lettered.
	Lost []string
	// Duplicated ids were delivered more than once; Duplicates are their deliveries beyond
	// the first. They offend only beyond a bound (OverBound says which).
	Duplicated []string
	Duplicates int
	OverBound  []string
	// UnexpectedDead ids are in a dead-letter stream although the scenario justifies no
	// dead letter for them ("provider/id (reason)").
	UnexpectedDead []string
	// WrongReason ids are dead-lettered with another reason than the one the scenario
	// justifies ("provider/id: reason, want R").
	WrongReason []string
	// NotDead ids were answered 202 and justified as dead letters (the upstream refuses
	// them for good) but were delivered instead ("provider/id").
	NotDead []string
	// Malformed are upstream requests whose ids were malformed (Figures.Malformed,
	// "provider: ...").
	Malformed []string
}

// OK reports whether every accepted event is accounted for exactly.
func (v Verdict) OK() bool {
	return len(v.Lost) == 0 && len(v.OverBound) == 0 && len(v.UnexpectedDead) == 0 && len(v.WrongReason) == 0 &&
		len(v.NotDead) == 0 && len(v.Malformed) == 0
}

// maxInMessage caps the ids Verdict.Err lists per category.
const maxInMessage = 20

// Err is nil when the verdict is OK, else an error listing the offending ids by category.
func (v Verdict) Err() error {
	if v.OK() {
		return nil
	}
	var b strings.Builder
	b.WriteString("exact accounting failed:")
	list := func(what string, ids []string) {
		if len(ids) == 0 {
			return
		}
		shown := ids[:min(len(ids), maxInMessage)]
		fmt.Fprintf(&b, "\n  %s (%d): %s", what, len(ids), strings.Join(shown, ", "))
		if len(ids) > len(shown) {
			fmt.Fprintf(&b, ", … %d more", len(ids)-len(shown))
		}
	}
	list("lost", v.Lost)
	if len(v.OverBound) > 0 {
		fmt.Fprintf(&b, "\n  duplicates over the bound: %s", strings.Join(v.OverBound, "; "))
		list("duplicated", v.Duplicated)
	}
	list("unexpectedly dead-lettered", v.UnexpectedDead)
	list("dead-lettered with the wrong reason", v.WrongReason)
	list("delivered although refused for good", v.NotDead)
	list("malformed upstream requests", v.Malformed)
	return fmt.Errorf("%s", b.String())
}

// Exact accounts for every event of the report: each id answered 202 must be delivered,
// at most once but for the duplicates exp allows, or dead-lettered with the reason exp
// justifies for it; every id in a dead-letter stream (accepted or not) must be one exp
// justifies, with that reason, and no id exp justifies may be delivered instead; no
// upstream request may be malformed.
func (r Report) Exact(exp Expect) Verdict {
	var v Verdict
	for _, f := range r.Rows {
		p := f.Provider
		for _, m := range f.Malformed {
			v.Malformed = append(v.Malformed, p+": "+m)
		}
		if exp.DeadReason != nil {
			for _, id := range sortedKeys(f.DeliveredIDs) {
				if exp.DeadReason(p, id) != "" {
					v.NotDead = append(v.NotDead, p+"/"+id)
				}
			}
		}
		for _, id := range f.AllLost {
			v.Lost = append(v.Lost, p+"/"+id)
		}
		dups := 0
		var unjustified []string
		for _, id := range sortedKeys(f.Extra) {
			n := f.Extra[id]
			dups += n
			v.Duplicated = append(v.Duplicated, fmt.Sprintf("%s/%s ×%d", p, id, n+1))
			if exp.MayDuplicate != nil && !exp.MayDuplicate(p, id) {
				unjustified = append(unjustified, id)
			}
		}
		if len(unjustified) > 0 {
			shown := unjustified[:min(len(unjustified), maxInMessage)]
			v.OverBound = append(v.OverBound, fmt.Sprintf("%d at %s outside the crash window (%s)", len(unjustified), p,
				strings.Join(shown, ", ")))
		}
		v.Duplicates += dups
		if bound, ok := exp.MaxDuplicatesAt[p]; ok && dups > bound {
			v.OverBound = append(v.OverBound, fmt.Sprintf("%d at %s > %d", dups, p, bound))
		}
		for _, id := range sortedKeys(f.DeadReasons) {
			got := f.DeadReasons[id]
			want := ""
			if exp.DeadReason != nil {
				want = exp.DeadReason(p, id)
			}
			switch {
			case want == "":
				v.UnexpectedDead = append(v.UnexpectedDead, fmt.Sprintf("%s/%s (%s)", p, id, got))
			case got != want:
				v.WrongReason = append(v.WrongReason, fmt.Sprintf("%s/%s: %s, want %s", p, id, got, want))
			}
		}
	}
	if v.Duplicates > exp.MaxDuplicates {
		v.OverBound = append(v.OverBound, fmt.Sprintf("%d in total > %d", v.Duplicates, exp.MaxDuplicates))
	}
	return v
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
