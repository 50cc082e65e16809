package chaos

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Event ids in upstream request bodies (the carriers are listed in the package doc).

// ExtractIDs finds the event ids in an upstream request body (see the package doc), one
// per occurrence.
func ExtractIDs(path string, body []byte) []string { return extract(path, body).ids }

// extracted is what a request body says about event ids.
type extracted struct {
	ids       []string
	malformed []string
	// clientEventIds maps a Cardlytics message's event id to its first clientEvent's
	// clientEventId.
	clientEventIDs map[string]string
}

func extract(path string, body []byte) extracted {
	var v map[string]any
	if json.Unmarshal(body, &v) != nil {
		return extracted{}
	}
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	obj := func(m map[string]any, k string) map[string]any { o, _ := m[k].(map[string]any); return o }
	one := func(s string) extracted {
		if s == "" {
			return extracted{}
		}
		return extracted{ids: []string{s}}
	}
	switch path {
	case "/api/v1/campaigns/impression", "/api/v1/campaigns/click":
		return one(strings.TrimPrefix(str(v, "placement"), "p-"))
	case "/api/public/banner-events":
		return one(strings.TrimPrefix(str(v, "campaignId"), "bnrflx-"))
	case "/api/v1/capture-event":
		return one(str(obj(v, "event_data"), "rid"))
	case "/api/v1/capture-payment":
		return one(str(v, "payment_id"))
	case "/v3/events":
		return one(str(obj(v, "event_properties"), "rid"))
	case "/api/v2/trackEvent":
		return one(str(obj(v, "properties"), "rid"))
	case "/v3/events/batch":
		evs, _ := v["events"].([]any)
		var out extracted
		for _, e := range evs {
			if m, ok := e.(map[string]any); ok {
				out.ids = append(out.ids, one(str(obj(m, "event_properties"), "rid")).ids...)
			}
		}
		return out
	case cardlyticsEventsPath:
		evs, _ := v["clientEvents"].([]any)
		return extractCardlytics(evs)
	}
	return extracted{}
}

// extractCardlytics reads a clientEvent request: each clientEvent carries
// clientEventMetadata.curationId "<event id>/<k>/<n>", the k-th of the n clientEvents of
// one relay message. A message counts once per complete set of its n clientEvents (twice
// in one request: a duplicate); one whose clientEvents are not all there the same number
// of times is malformed (the relay merges whole messages only).
func extractCardlytics(evs []any) extracted {
	type parts struct {
		n     int
		count int
		ks    map[int]int
	}
	out := extracted{clientEventIDs: map[string]string{}}
	seen := map[string]*parts{}
	var order []string
	for _, e := range evs {
		m, _ := e.(map[string]any)
		meta, _ := m["clientEventMetadata"].(map[string]any)
		cur, _ := meta["curationId"].(string)
		f := strings.Split(cur, "/")
		if len(f) != 3 {
			continue
		}
		k, err1 := strconv.Atoi(f[1])
		n, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || n < 1 {
			continue
		}
		id := f[0]
		p := seen[id]
		if p == nil {
			p = &parts{n: n, ks: map[int]int{}}
			seen[id] = p
			order = append(order, id)
		}
		p.count++
		p.ks[k]++
		if cid, _ := m["clientEventId"].(string); k == 0 && out.clientEventIDs[id] == "" {
			out.clientEventIDs[id] = cid
		}
	}
	for _, id := range order {
		p := seen[id]
		times := max(1, p.count/p.n)
		whole := p.count%p.n == 0 && len(p.ks) == p.n
		for _, c := range p.ks {
			whole = whole && c == times
		}
		if !whole {
			out.malformed = append(out.malformed, fmt.Sprintf("%s: %d clientEvents of a message of %d", id, p.count, p.n))
		}
		for range times {
			out.ids = append(out.ids, id)
		}
	}
	return out
}
