package main

import (
	"slices"
	"testing"

	"go.uber.org/zap"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/providers"
	"github.com/eventrelay/relay/relay/forward"
)

// TestBrevoAdapterHasLanes: the Brevo adapter the relay wires up implements forward.Lanes
// (its methods are matched by shape across packages, so a drifted signature would
// silently fold both APIs into one breaker): v3 and the legacy tracker are two lanes.
func TestBrevoAdapterHasLanes(t *testing.T) {
	cfg, err := config.Parse([]byte(`
admin: {token: t0k3n-for-lanes-test-0123456789}
redis: {url: "redis://127.0.0.1:6379"}
providers:
  brevo: {api_key: k, ma_key: m}
`), func(string) (string, bool) { return "", false }, providers.Specs())
	if err != nil {
		t.Fatal(err)
	}
	adapters, err := providers.NewAdapters(cfg.Providers, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	l, ok := adapters[providers.Brevo].(forward.Lanes)
	if !ok {
		t.Fatal("the Brevo adapter does not implement forward.Lanes")
	}
	v3 := l.Lane(&delivery.Message{Route: "brevo/events"})
	tracker := l.Lane(&delivery.Message{Route: "brevo/track-event"})
	if v3 == tracker || !slices.Contains(l.Lanes(), v3) || !slices.Contains(l.Lanes(), tracker) {
		t.Fatalf("lanes %q: v3 in %q, tracker in %q", l.Lanes(), v3, tracker)
	}
}
