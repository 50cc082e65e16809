package chaos_test

import (
	"sync"
	"testing"
	"time"

	"github.com/eventrelay/relay/chaos"
	"github.com/eventrelay/relay/relay/queue"
)

// Poison and partial refusals: the fakes of BannerFlex, Brevo and Cardlytics refuse one
// event in poisonEvery for good, the way each provider does, also inside merged and
// batched requests, so that the dead-letter side of the exact accounting is exercised
// per event: exactly the refused events must be dead letters (reason permanent), every
// other event of the same requests delivered once.

// poisonEvery picks the poison events by sequence number. Prime, so that it hits every
// route of a driver whatever their number.
const poisonEvery = 23

func isPoison(id string) bool { return seqOf(id)%poisonEvery == 0 }

// isFlaky picks the events a Brevo batch reply refuses as a passing fault (retryable) the
// first time it sees them.
func isFlaky(id string) bool { return seqOf(id)%poisonEvery == 11 }

// Upstream messages of the refusals, as the providers word them.
const (
	brevoInvalid   = "identifiers: at least one identifier is required"
	brevoTransient = "Internal error while queueing the event, please try again"
)

// poison is provider's refusal policy:
//
//   - BannerFlex: 404 (banner unknown) for a poison event; it never merges.
//   - Brevo batch (/v3/events/batch): 207 naming the poison events (permanent message)
//     and, the first time each is seen, the flaky ones (transient message: retried),
//     the rest accepted; 400 with the same body when every event is refused. Brevo
//     single (/v3/events, /api/v2/trackEvent): 400 for a poison event.
//   - Cardlytics: 400 for a request holding a poison event (it does not say which): the
//     relay splits the merged request until the poison message stands alone.
//
// Other providers, and requests without poison, get the normal reply.
func poison(provider string) chaos.Behavior {
	var (
		mu   sync.Mutex
		seen = map[string]bool{} // flaky ids already refused once
	)
	return func(h chaos.Hit) chaos.Reply {
		var bad []string
		for _, id := range h.IDs {
			if isPoison(id) {
				bad = append(bad, id)
			}
		}
		switch provider {
		case chaos.BannerFlex:
			if len(bad) > 0 {
				return chaos.Reply{Status: 404, Body: `{"ok":false,"error":"banner not found"}`}
			}
		case chaos.Brevo:
			if h.Path != "/v3/events/batch" {
				if len(bad) > 0 {
					return chaos.Reply{Status: 400, Body: `{"code":"invalid_parameter","message":"` + brevoInvalid + `"}`}
				}
				return chaos.Reply{}
			}
			refuse := map[string]string{}
			for _, id := range bad {
				refuse[id] = brevoInvalid
			}
			mu.Lock()
			for _, id := range h.IDs {
				if isFlaky(id) && !seen[id] {
					seen[id] = true
					refuse[id] = brevoTransient
				}
			}
			mu.Unlock()
			switch {
			case len(refuse) == 0:
			case len(refuse) == len(h.IDs) && len(bad) == len(h.IDs):
				return chaos.Reply{Status: 400, Refuse: refuse}
			default:
				return chaos.Reply{Status: 207, Refuse: refuse}
			}
		case chaos.Cardlytics:
			if len(bad) > 0 {
				return chaos.Reply{Status: 400, Body: `{"message":"clientEventMetadata is invalid"}`}
			}
		}
		return chaos.Reply{}
	}
}

// poisoned are the providers whose fakes refuse poison events (poison).
var poisoned = map[string]bool{chaos.BannerFlex: true, chaos.Brevo: true, chaos.Cardlytics: true}

// poisonDead justifies exactly the dead letters poison causes: the poison events of the
// poisoned providers, reason permanent. Every other event must be delivered.
func poisonDead(provider, id string) string {
	if poisoned[provider] && isPoison(id) {
		return queue.DeadPermanent
	}
	return ""
}

// refusing sets every upstream to refuse its poison events, without delay.
func refusing(e *env) {
	for p, u := range e.ups {
		u.SetBehavior(poison(p))
	}
}

// mergeRoutes load every provider, Brevo's v3 events (batched) and Cardlytics (merged
// per customer) more than the others: every route once, plus brevo/events twice more
// and the three-event Cardlytics message once more (13 routes, prime to poisonEvery).
func mergeRoutes() []chaos.Route {
	routes := append([]chaos.Route(nil), chaos.AllRoutes...)
	for _, r := range chaos.AllRoutes {
		if r.Name == "brevo/events" {
			routes = append(routes, r, r)
		}
	}
	return append(routes, chaos.AllRoutes[len(chaos.AllRoutes)-1])
}

// merging turns Brevo's batch mode on and sets rate limits under the event rates of
// mergeRoutes (60/s over 13 routes: Brevo about 14 v3 events and 5 tracker events a
// second, Cardlytics 14 over 3 customers), so that events queue up and every request
// carries several: Brevo 8 requests a second (the tracker, which cannot batch, takes
// about 5 of them), Cardlytics 4. Long mode doubles the load and the limits.
func merging(e *env) {
	f := float64(min(chaos.Scale(), 2))
	e.setup.Tune[chaos.Brevo].BrevoBatch = true
	e.setup.Tune[chaos.Brevo].RateLimit = 8 * f
	e.setup.Tune[chaos.Cardlytics].RateLimit = 4 * f
}

// mergedFigures are one provider's requests that carried events.
type mergedFigures struct {
	Requests, Merged, MaxEvents int
	// Partial are 2xx requests that refused some of their events (a Brevo 207), and
	// SplitRefusals refusals of a merged request as a whole (a Cardlytics 400 of more
	// than one message).
	Partial, SplitRefusals int
}

func merged(u *chaos.Upstream) mergedFigures {
	var f mergedFigures
	for _, h := range u.Hits() {
		if len(h.IDs) == 0 {
			continue
		}
		f.Requests++
		if len(h.IDs) > 1 {
			f.Merged++
		}
		f.MaxEvents = max(f.MaxEvents, len(h.IDs))
		switch {
		case h.OK() && len(h.Refused) > 0 && len(h.Refused) < len(h.IDs):
			f.Partial++
		case h.Status == 400 && len(h.IDs) > 1:
			f.SplitRefusals++
		}
	}
	return f
}

// checkMerged fails the test unless Brevo batched and Cardlytics merged events, and,
// when partial is set, unless a Brevo 207 refused some events of a batch and accepted
// the others and Cardlytics refused a merged request: the scenario must have exercised
// per-event accounting inside requests.
func checkMerged(t *testing.T, e *env, partial bool) {
	t.Helper()
	for _, p := range []string{chaos.Brevo, chaos.Cardlytics} {
		f := merged(e.ups[p])
		t.Logf("%s: %d requests with events, %d merged (at most %d events), %d partial 2xx, %d merged requests refused",
			p, f.Requests, f.Merged, f.MaxEvents, f.Partial, f.SplitRefusals)
		if f.Merged == 0 {
			t.Errorf("%s: no request carried several events: the scenario did not merge", p)
		}
		if partial && p == chaos.Brevo && f.Partial == 0 {
			t.Errorf("brevo: no 207 with some events refused and others accepted")
		}
		if partial && p == chaos.Cardlytics && f.SplitRefusals == 0 {
			t.Errorf("cardlytics: no merged request refused for a poison event")
		}
	}
}

// window is a stretch of time around a crash.
type window struct{ from, to time.Time }

// deliveredWithin returns, over every provider, the events whose first delivery (2xx
// reply) fell within one of windows, as "provider/id", and their number: the only events
// whose outcome a crash in that window can have kept from being written, and so the only
// ones it may duplicate.
func deliveredWithin(e *env, windows []window) map[string]bool {
	out := map[string]bool{}
	for p, u := range e.ups {
		for id, ds := range u.Deliveries() {
			first := ds[0]
			for _, d := range ds {
				if d.Before(first) {
					first = d
				}
			}
			for _, w := range windows {
				if !first.Before(w.from) && !first.After(w.to) {
					out[p+"/"+id] = true
				}
			}
		}
	}
	return out
}
