package main

import (
	"strconv"
)

// Secrets and keys of the bench config. They are throwaway values for loopback only.
const (
	siteKey      = "pk_bench_0123456789"
	siteOrigin   = "https://shop.bench.test"
	backendToken = "bench-backend-token-0123456789"
	adminToken   = "bench-admin-token-0123456789"
	ensKey       = "bench-ens-api-key"
	lrKey        = "bench-linkrunner-key"
	brevoKey     = "bench-brevo-api-key"
	brevoMAKey   = "bench-brevo-ma-key"
)

// shot is one request of the mix, as the client sends it to the relay (Route) and as the
// relay sends it upstream (UpPath, UpHeader): the same bodies drive the no-op ceiling,
// the relay, nginx and the fakes' ceiling.
type shot struct {
	Name        string
	Route       string // "ens/impression"
	Provider    string
	Weight      int
	Body        string
	ContentType string
	Site        bool // site key + Origin (browser); else backend bearer token
	Query       string
	UpPath      string
	UpHeader    [2]string // the secret header an upstream request carries ("" name: none)
}

// ingestMix is a realistic route mix: ENS and BannerFlex impressions dominate (browser
// beacons), some clicks, Linkrunner and Brevo events from backends.
var ingestMix = []shot{
	{Name: "ens/impression", Route: "ens/impression", Provider: "ens", Weight: 35, Site: true,
		ContentType: "application/json",
		Body:        `{"campaignId":1,"placement":"header_banner","location":"US","device":"mobile"}`,
		UpPath:      "/api/v1/campaigns/impression", UpHeader: [2]string{"Authorization", "Bearer " + ensKey}},
	{Name: "bannerflex/impression", Route: "bannerflex/banner-events", Provider: "bannerflex", Weight: 35, Site: true,
		ContentType: "text/plain;charset=UTF-8", Query: "?key=" + siteKey,
		Body:   `{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","event":"impression","campaignId":"bnrflx-spring"}`,
		UpPath: "/api/public/banner-events"},
	{Name: "ens/click", Route: "ens/click", Provider: "ens", Weight: 8, Site: true,
		ContentType: "application/json",
		Body:        `{"campaignId":1,"placement":"header_banner"}`,
		UpPath:      "/api/v1/campaigns/click", UpHeader: [2]string{"Authorization", "Bearer " + ensKey}},
	{Name: "bannerflex/click", Route: "bannerflex/banner-events", Provider: "bannerflex", Weight: 7, Site: true,
		ContentType: "text/plain;charset=UTF-8", Query: "?key=" + siteKey,
		Body:   `{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","event":"click","campaignId":"bnrflx-spring"}`,
		UpPath: "/api/public/banner-events"},
	{Name: "linkrunner/capture-event", Route: "linkrunner/capture-event", Provider: "linkrunner", Weight: 8,
		ContentType: "application/json",
		Body:        `{"event_name":"purchase_completed","event_data":{"amount":149.99,"currency":"EUR"},"user_id":"user_12345"}`,
		UpPath:      "/api/v1/capture-event", UpHeader: [2]string{"linkrunner-key", lrKey}},
	{Name: "brevo/events", Route: "brevo/events", Provider: "brevo", Weight: 7,
		ContentType: "application/json",
		Body:        `{"event_name":"cart_updated","identifiers":{"email_id":"jane@example.com"},"event_properties":{"cart_id":"c-1"}}`,
		UpPath:      "/v3/events", UpHeader: [2]string{"api-key", brevoKey}},
}

// schedule expands the weights into a fixed sequence of mix indexes (sum of weights long,
// interleaved), which every generator goroutine walks from its own offset.
func schedule(mix []shot) []int {
	total := 0
	for _, s := range mix {
		total += s.Weight
	}
	out := make([]int, 0, total)
	credit := make([]int, len(mix))
	for len(out) < total { // smooth weighted round robin
		best := -1
		for i, s := range mix {
			credit[i] += s.Weight
			if best < 0 || credit[i] > credit[best] {
				best = i
			}
		}
		credit[best] -= total
		out = append(out, best)
	}
	return out
}

func mixDescription(mix []shot) string {
	s := ""
	for i, m := range mix {
		if i > 0 {
			s += ", "
		}
		s += m.Name + " " + strconv.Itoa(m.Weight) + "%"
	}
	return s
}
