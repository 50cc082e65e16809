package providers

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/strictjson"
)

// benchBodies is one representative inbound body per route (Cardlytics: the client
// events body). Run: go test -run '^$' -bench 'Decode|Adapter' -benchmem ./providers/
var benchBodies = map[string]string{
	"ens/impression":             `{"campaignId":1,"placement":"header_banner","location":"US","device":"mobile"}`,
	"ens/click":                  `{"campaignId":1,"placement":"header_banner"}`,
	"bannerflex/banner-events":   `{"bannerId":"3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f","event":"impression","campaignId":"bnrflx-spring"}`,
	"linkrunner/capture-event":   `{"event_name":"purchase_completed","event_data":{"amount":149.99,"currency":"EUR"},"user_id":"user_12345"}`,
	"linkrunner/capture-payment": `{"user_id":"user_12345","payment_id":"pay_1001","amount":149.99,"type":"FIRST_PAYMENT"}`,
	"brevo/events":               `{"event_name":"cart_updated","identifiers":{"email_id":"jane@example.com"},"event_properties":{"cart_id":"c-1"}}`,
	"brevo/track-event":          `{"email":"jane@example.com","event":"cart_updated","properties":{"plan":"pro"}}`,
	"cardlytics/client-events":   `{"clientEvents":[{"clientEventId":"2e08d638-04e2-4561-b56a-ca32cfff6203","clientEventType":"AdImpression","clientEvent":"AdViewableImpression","clientEventTimestamp":"2023-03-11T08:00:00Z","clientEventMetadata":{"serveToken":"91e471aed3c04b81bee792f23ad4859d","section":"LatestOffers","channel":"OLB","imageSlots":["logo"],"categoryId":"1","displayPosition":2}}]}`,
}

// benchProviders enables the providers at base, Cardlytics only when asked.
func benchProviders(base string, cardlytics bool) config.Providers {
	d := config.Delivery{BaseURL: base, Workers: 4, RateLimit: 1e6, Timeout: 5 * time.Second}
	sections := []Section{&ENSConfig{Delivery: d, APIKey: "bench-ens-key"}, &BannerFlexConfig{Delivery: d},
		&LinkrunnerConfig{Delivery: d, ServerKey: "bench-lr-key"},
		&BrevoConfig{Delivery: d, APIKey: "bench-brevo-key", MAKey: "bench-ma-key", TrackerURL: base}}
	if cardlytics {
		sections = append(sections, &CardlyticsConfig{Delivery: d, ClientID: "c", Secret: "s"})
	}
	return enable(sections...)
}

// BenchmarkDecode measures each route's inbound decoding as ingest runs it: the strict
// pre-pass, the provider's validation, and the compact re-encoding that is stored.
func BenchmarkDecode(b *testing.B) {
	for _, op := range Ops(benchProviders("http://127.0.0.1:1", true)) {
		body, ok := benchBodies[op.Route]
		if !ok {
			continue
		}
		id := Identity{CustomerID: "cust-42"}
		b.Run(op.Route, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			data := []byte(body)
			out := make([]byte, 0, 512)
			for b.Loop() {
				v, err := strictjson.Parse(data, 0)
				if err != nil {
					b.Fatal(err)
				}
				ev, err := op.Validate(v, id)
				if err != nil {
					b.Fatal(err)
				}
				out = ev.Body.AppendJSON(out[:0])
			}
		})
	}
}

// BenchmarkAdapter measures each adapter's delivery of one stored event to a loopback
// fasthttp server answering the provider's success: request building (parse the stored
// body, add what the relay adds, headers with the secret), the HTTP exchange and the reply
// classification. Cardlytics needs mutual TLS and a token exchange, so it is left out.
func BenchmarkAdapter(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/v3/events", "/api/v2/trackEvent":
			ctx.SetStatusCode(204)
		case "/api/v1/capture-event", "/api/v1/capture-payment":
			ctx.SetStatusCode(201)
			ctx.SetBodyString(`{"msg":"ok","status":200,"data":null}`)
		default:
			ctx.SetBodyString(`{"ok":true}`)
		}
	}}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Shutdown() }()
	cfg := benchProviders("http://"+ln.Addr().String(), false)
	adapters, err := NewAdapters(cfg, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	for _, op := range Ops(cfg) {
		body := benchBodies[op.Route]
		a := adapters[op.Provider]
		v, err := strictjson.Parse([]byte(body), 0)
		if err != nil {
			b.Fatal(err)
		}
		ev, err := op.Validate(v, Identity{})
		if err != nil {
			b.Fatal(err)
		}
		m := &delivery.Message{ID: "2e08d638-04e2-4561-b56a-ca32cfff6203", Provider: op.Provider, Route: op.Route,
			Body: ev.Body.AppendJSON(nil), ReceivedAt: time.Now(), ClientIP: "203.0.113.7",
			UserAgent: "Mozilla/5.0 bench", Country: "DE", Source: "site:bench"}
		b.Run(op.Route, func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			batch := []*delivery.Message{m}
			for b.Loop() {
				if errs := a.Deliver(ctx, batch); errs[0] != nil {
					b.Fatal(errs[0])
				}
			}
		})
	}
}
