package providers

import (
	"fmt"

	"go.uber.org/zap"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/delivery"
)

// Provider describes one provider, in its own file: its config section (type, defaults,
// validation), its ingest routes (with their identity claims and money flag) and how its
// adapter is built. All lists them; nothing registers itself.
type Provider struct {
	// Name names the config section, the routes' first segment and the Redis keys ("ens").
	Name string
	// BaseURL is the documented upstream URL (the default of base_url); "" makes
	// base_url required.
	BaseURL string
	// RateLimit is the default of rate_limit, in requests per second.
	RateLimit float64
	// NewSection returns a new, zero section for the YAML to be decoded into.
	NewSection func() Section
	// Ops returns every ingest operation of the provider, validating as sec says
	// (Cardlytics: its client_events). sec may be a zero section: config reads the routes
	// from it. Which routes a configuration enables is decided by sec.RouteProblem.
	Ops func(sec Section) []*Op
}

// Section is a provider's configuration section: what config needs of it, plus the
// constructor of the provider's adapter.
type Section interface {
	config.ProviderSection
	// NewAdapter builds the provider's adapter from the complete, valid section.
	NewAdapter(log *zap.Logger) (delivery.Adapter, error)
}

// All lists every provider the relay knows, in a fixed order (routes, config reports and
// the admin API follow it). Adding a provider is one line here.
func All() []*Provider {
	return []*Provider{linkrunner(), ens(), brevo(), bannerflex(), cardlytics()}
}

// Specs is what config needs to know of All: pass it to config.Load and config.Parse.
func Specs() []config.ProviderSpec {
	all := All()
	specs := make([]config.ProviderSpec, len(all))
	for i, p := range all {
		specs[i] = p.spec()
	}
	return specs
}

func (p *Provider) spec() config.ProviderSpec {
	s := config.ProviderSpec{
		Name: p.Name, BaseURL: p.BaseURL, RateLimit: p.RateLimit,
		NewSection: func() config.ProviderSection { return p.NewSection() },
	}
	for _, op := range p.Ops(p.NewSection()) {
		s.Routes = append(s.Routes, config.RouteSpec{Name: op.Route, Money: op.Money})
	}
	return s
}

// enabledSection is a provider enabled in a configuration, with its section.
type enabledSection struct {
	p   *Provider
	sec Section
}

// enabled lists the providers enabled in cfg, in All's order, with their sections.
func enabled(cfg config.Providers) []enabledSection {
	var out []enabledSection
	for _, p := range All() {
		if sec, ok := cfg.Section(p.Name).(Section); ok {
			out = append(out, enabledSection{p, sec})
		}
	}
	return out
}

// Ops returns the ingest operations that cfg enables, in a stable order.
func Ops(cfg config.Providers) []*Op {
	var out []*Op
	for _, e := range enabled(cfg) {
		for _, op := range e.p.Ops(e.sec) {
			if e.sec.RouteProblem(op.Route) == "" {
				op.Provider = e.p.Name
				out = append(out, op)
			}
		}
	}
	return out
}

// NewAdapters builds the adapter of every provider enabled in cfg, keyed by name.
func NewAdapters(cfg config.Providers, log *zap.Logger) (map[string]delivery.Adapter, error) {
	out := map[string]delivery.Adapter{}
	for _, e := range enabled(cfg) {
		a, err := e.sec.NewAdapter(log.Named(e.p.Name))
		if err != nil {
			return nil, fmt.Errorf("providers.%s: %w", e.p.Name, err)
		}
		out[e.p.Name] = a
	}
	return out, nil
}

// results returns n copies of err: one request's fate is every event's in it.
func results(n int, err error) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}
