package config

import (
	"fmt"
	"slices"
	"strings"
)

// ProviderSpec describes one provider to config: the name of its section under
// providers, the defaults of its common delivery settings, its routes, and the type its
// section decodes into. Package providers lists one per provider (providers.All); config
// knows none of them by name.
type ProviderSpec struct {
	// Name is the section name and the provider's name in routes and Redis keys ("ens").
	Name string
	// BaseURL is the documented upstream URL, the default of base_url; "" makes base_url
	// required (Cardlytics gives each publisher its own).
	BaseURL string
	// RateLimit is the default of rate_limit, in requests per second.
	RateLimit float64
	// Routes are the provider's ingest routes (the path after /v1/), in a fixed order.
	Routes []RouteSpec
	// NewSection returns a new, zero section to decode the YAML into.
	NewSection func() ProviderSection
}

// RouteSpec is what config needs to know of a route.
type RouteSpec struct {
	// Name is the path after /v1/, e.g. "ens/click"; it starts with the provider's name.
	Name string
	// Money marks business-critical routes (payments) that sites may only use when they
	// list them: they are left out of a site's default routes.
	Money bool
}

// ProviderSection is one provider's decoded section. Its type embeds Delivery, whose
// methods below are the defaults for a section with nothing of its own to add.
type ProviderSection interface {
	// Settings returns the delivery settings every provider takes (its inline Delivery).
	Settings() *Delivery
	// SetDefaults fills the section's own fields left out; config has already filled
	// the Delivery settings.
	SetDefaults()
	// Validate reports the problems of the section's own fields under path
	// ("providers.brevo"); config validates the Delivery settings.
	Validate(v *Validator, path string)
	// RouteProblem says why one of the provider's routes cannot be served with this
	// section (Brevo: a key it needs is not set), or returns "".
	RouteProblem(route string) string
}

// Settings returns d.
func (d *Delivery) Settings() *Delivery { return d }

// SetDefaults does nothing: config fills Delivery's own defaults.
func (*Delivery) SetDefaults() {}

// Validate does nothing: config validates Delivery's own fields.
func (*Delivery) Validate(*Validator, string) {}

// RouteProblem returns "": by default every route of an enabled provider can be served.
func (*Delivery) RouteProblem(string) string { return "" }

// Providers holds the sections of the enabled providers, and the specs of every provider
// the relay knows (enabled or not), in the specs' order.
type Providers struct {
	specs    []ProviderSpec
	sections map[string]ProviderSection
}

// NewProviders returns an empty set of providers that knows specs. Parse builds it from
// the specs it is given; a Config built in code enables providers with Enable.
func NewProviders(specs []ProviderSpec) Providers {
	return Providers{specs: specs, sections: map[string]ProviderSection{}}
}

// Enable adds sec as the section of the provider name. It reports false when no spec
// has that name.
func (p *Providers) Enable(name string, sec ProviderSection) bool {
	if p.spec(name) == nil {
		return false
	}
	if p.sections == nil {
		p.sections = map[string]ProviderSection{}
	}
	p.sections[name] = sec
	return true
}

// Section returns the section of the provider name, or nil when it is not enabled.
func (p *Providers) Section(name string) ProviderSection { return p.sections[name] }

// EnabledProvider is one enabled provider's name, spec and section.
type EnabledProvider struct {
	Name    string
	Spec    *ProviderSpec
	Section ProviderSection
	// Delivery is Section.Settings().
	Delivery *Delivery
}

// Enabled lists the enabled providers in the specs' order.
func (p *Providers) Enabled() []EnabledProvider {
	var out []EnabledProvider
	for i := range p.specs {
		spec := &p.specs[i]
		if sec := p.sections[spec.Name]; sec != nil {
			out = append(out, EnabledProvider{Name: spec.Name, Spec: spec, Section: sec, Delivery: sec.Settings()})
		}
	}
	return out
}

// Names lists the name of every known provider, enabled or not.
func (p *Providers) Names() []string {
	out := make([]string, len(p.specs))
	for i, s := range p.specs {
		out[i] = s.Name
	}
	return out
}

// RouteNames lists every route of every known provider, enabled or not.
func (p *Providers) RouteNames() []string {
	var out []string
	for _, s := range p.specs {
		for _, r := range s.Routes {
			out = append(out, r.Name)
		}
	}
	return out
}

// isMoney reports whether route is a money route.
func (p *Providers) isMoney(route string) bool {
	for _, s := range p.specs {
		for _, r := range s.Routes {
			if r.Name == route {
				return r.Money
			}
		}
	}
	return false
}

func (p *Providers) spec(name string) *ProviderSpec {
	for i := range p.specs {
		if p.specs[i].Name == name {
			return &p.specs[i]
		}
	}
	return nil
}

// EnabledRoutes lists, in RouteNames order, the routes this configuration can serve: its
// provider is enabled and its section has nothing against it (RouteProblem).
func (c *Config) EnabledRoutes() []string {
	var out []string
	for _, r := range c.Providers.RouteNames() {
		if c.routeProblem(r) == "" {
			out = append(out, r)
		}
	}
	return out
}

// routeProblem says why route cannot be served, or returns "" when it can.
func (c *Config) routeProblem(route string) string {
	names := c.Providers.RouteNames()
	if !slices.Contains(names, route) {
		return fmt.Sprintf("is not a route (one of: %s)", strings.Join(names, ", "))
	}
	provider, _, _ := strings.Cut(route, "/")
	sec := c.Providers.Section(provider)
	if sec == nil {
		return fmt.Sprintf("needs providers.%s, which is not enabled", provider)
	}
	return sec.RouteProblem(route)
}
