package config

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// moneyRoute is left out of a site's default routes: a payment should never be reported
// from a browser unless the operator says so.
const moneyRoute = "linkrunner/capture-payment"

// setDefaults fills every field left at its zero value with the default documented in
// config.go. Values the user set are kept, even invalid ones: Validate reports those.
func (c *Config) setDefaults() {
	s := &c.Server
	orDefault(&s.Listen, ":8080")
	orDefault(&s.MaxBodyBytes, 65536)
	orDefault(&s.ReadTimeout, 10*time.Second)
	orDefault(&s.WriteTimeout, 10*time.Second)
	orDefault(&s.IdleTimeout, 60*time.Second)
	orDefault(&s.MaxTrackedIPs, 100_000)
	orDefault(&s.MaxBatchEvents, 100)
	orDefault(&s.CORSMaxAge, 10*time.Minute)

	orDefault(&c.Admin.Listen, "127.0.0.1:9090")

	r := &c.Redis
	orDefault(&r.Prefix, "relay")
	orDefault(&r.EnqueueTimeout, time.Second)
	orDefault(&r.HighWaterMark, 1_000_000)
	orDefault(&r.Writers, 4)
	orDefault(&r.MaxBatch, 256)
	orDefault(&r.PoolSize, 32)

	orDefault(&c.Log.Level, "info")

	for _, sec := range c.Providers.sections() {
		sec.delivery.setDefaults(sec.baseURL, sec.rate)
	}
	if b := c.Providers.Brevo; b != nil {
		orDefault(&b.TrackerURL, "https://in-automate.brevo.com")
		b.TrackerURL = strings.TrimRight(b.TrackerURL, "/")
	}
	if cx := c.Providers.Cardlytics; cx != nil {
		orDefault(&cx.Auth, "bearer")
	}

	// Routes last: which routes are enabled depends on the providers above.
	enabled := c.EnabledRoutes()
	for i := range c.Sites {
		site := &c.Sites[i]
		if site.Routes == nil {
			site.Routes = slices.DeleteFunc(slices.Clone(enabled), func(r string) bool { return r == moneyRoute })
		}
		orDefault(&site.RateLimit.PerIP, 20)
		orDefault(&site.RateLimit.Burst, max(1, int(math.Ceil(2*site.RateLimit.PerIP))))
	}
	for i := range c.Clients {
		if c.Clients[i].Routes == nil {
			c.Clients[i].Routes = slices.Clone(enabled)
		}
	}
}

func (d *Delivery) setDefaults(baseURL string, rate float64) {
	orDefault(&d.BaseURL, baseURL)
	// Providers append paths to base_url; a trailing slash would double them.
	d.BaseURL = strings.TrimRight(d.BaseURL, "/")
	orDefault(&d.Workers, 4)
	orDefault(&d.RateLimit, rate)
	orDefault(&d.Timeout, 10*time.Second)
	orDefault(&d.VisibilityTimeout, 2*d.Timeout+10*time.Second)
	orDefault(&d.MaxAttempts, 12)
	orDefault(&d.MaxAge, 24*time.Hour)
	orDefault(&d.Backoff.Base, time.Second)
	orDefault(&d.Backoff.Max, 10*time.Minute)
	orDefault(&d.Breaker.Failures, 5)
	orDefault(&d.Breaker.OpenFor, 30*time.Second)
}

func orDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// section is one enabled provider: its name, its common delivery settings and their
// defaults, the documented base URL (reference/PROVIDERS.md) and request rate.
type section struct {
	name     string
	delivery *Delivery
	baseURL  string
	rate     float64
}

// sections lists the enabled providers in a fixed order, so that defaults and validation
// treat them alike and report in a stable order.
func (p *Providers) sections() []section {
	var out []section
	if p.Linkrunner != nil {
		out = append(out, section{"linkrunner", &p.Linkrunner.Delivery, "https://api.linkrunner.io", 30})
	}
	if p.ENS != nil {
		out = append(out, section{"ens", &p.ENS.Delivery, "https://ads.enslive.live", 50})
	}
	if p.Brevo != nil {
		out = append(out, section{"brevo", &p.Brevo.Delivery, "https://api.brevo.com", 10})
	}
	if p.BannerFlex != nil {
		out = append(out, section{"bannerflex", &p.BannerFlex.Delivery, "https://www.bannerflex.app", 50})
	}
	if p.Cardlytics != nil {
		// No public URL: each publisher gets its own, so base_url is required.
		out = append(out, section{"cardlytics", &p.Cardlytics.Delivery, "", 20})
	}
	return out
}

// EnabledRoutes lists, in RouteNames order, the routes this configuration can serve: its
// provider is enabled and, for Brevo, the key the route needs is set.
func (c *Config) EnabledRoutes() []string {
	var out []string
	for _, r := range RouteNames() {
		if c.routeProblem(r) == "" {
			out = append(out, r)
		}
	}
	return out
}

// routeProblem says why route cannot be served, or returns "" when it can.
func (c *Config) routeProblem(route string) string {
	if !slices.Contains(RouteNames(), route) {
		return fmt.Sprintf("is not a route (one of: %s)", strings.Join(RouteNames(), ", "))
	}
	provider, _, _ := strings.Cut(route, "/")
	enabled := false
	for _, sec := range c.Providers.sections() {
		enabled = enabled || sec.name == provider
	}
	if !enabled {
		return fmt.Sprintf("needs providers.%s, which is not enabled", provider)
	}
	switch b := c.Providers.Brevo; {
	case route == "brevo/events" && b.APIKey == "":
		return "needs providers.brevo.api_key"
	case route == "brevo/track-event" && b.MAKey == "":
		return "needs providers.brevo.ma_key"
	}
	return ""
}
