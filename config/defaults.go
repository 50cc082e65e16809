package config

import (
	"math"
	"slices"
	"strings"
	"time"
)

// setDefaults fills every field left at its zero value with the default documented in
// config.go. Values the user set are kept, even invalid ones: Validate reports those.
func (c *Config) setDefaults() {
	s := &c.Server
	OrDefault(&s.Listen, ":8080")
	OrDefault(&s.MaxBodyBytes, 65536)
	OrDefault(&s.ReadTimeout, 10*time.Second)
	OrDefault(&s.WriteTimeout, 10*time.Second)
	OrDefault(&s.IdleTimeout, 60*time.Second)
	OrDefault(&s.MaxTrackedIPs, 100_000)
	OrDefault(&s.MaxBatchEvents, 100)
	OrDefault(&s.CORSMaxAge, 10*time.Minute)

	OrDefault(&c.Admin.Listen, "127.0.0.1:9090")

	r := &c.Redis
	OrDefault(&r.Prefix, "relay")
	OrDefault(&r.EnqueueTimeout, time.Second)
	OrDefault(&r.HighWaterMark, 1_000_000)
	OrDefault(&r.Writers, 2)
	OrDefault(&r.MaxBatch, 256)
	OrDefault(&r.PoolSize, 32)
	OrDefault(&r.ConsumerExpiry, time.Hour)
	OrDefault(&r.Shards, 1)

	OrDefault(&c.Log.Level, "info")

	if c.Trace.Enabled == nil {
		on := true
		c.Trace.Enabled = &on
	}
	OrDefault(&c.Trace.Keep, 100_000)
	OrDefault(&c.Trace.TailBuffer, 4096)

	for _, p := range c.Providers.Enabled() {
		p.Delivery.setDefaults(p.Spec.BaseURL, p.Spec.RateLimit)
		p.Section.SetDefaults()
	}

	// Routes last: which routes are enabled depends on the providers above.
	enabled := c.EnabledRoutes()
	for i := range c.Sites {
		site := &c.Sites[i]
		if site.Routes == nil {
			site.Routes = slices.DeleteFunc(slices.Clone(enabled), c.Providers.isMoney)
		}
		OrDefault(&site.RateLimit.PerIP, 20)
		OrDefault(&site.RateLimit.Burst, max(1, int(math.Ceil(2*site.RateLimit.PerIP))))
		OrDefault(&site.Consent, ConsentNone)
	}
	for i := range c.Clients {
		if c.Clients[i].Routes == nil {
			c.Clients[i].Routes = slices.Clone(enabled)
		}
	}
}

func (d *Delivery) setDefaults(baseURL string, rate float64) {
	OrDefault(&d.BaseURL, baseURL)
	// Providers append paths to base_url; a trailing slash would double them.
	d.BaseURL = strings.TrimRight(d.BaseURL, "/")
	OrDefault(&d.Workers, 4)
	OrDefault(&d.RateLimit, rate)
	OrDefault(&d.Timeout, 10*time.Second)
	OrDefault(&d.VisibilityTimeout, 2*d.Timeout+10*time.Second)
	OrDefault(&d.MaxAttempts, 12)
	OrDefault(&d.MaxAge, 24*time.Hour)
	OrDefault(&d.Backoff.Base, time.Second)
	OrDefault(&d.Backoff.Max, 10*time.Minute)
	OrDefault(&d.Breaker.Failures, 5)
	OrDefault(&d.Breaker.OpenFor, 30*time.Second)
	OrDefault(&d.DeadLetters.MaxAge, 7*24*time.Hour)
	OrDefault(&d.DeadLetters.MaxCount, 100_000)
}

// OrDefault sets *v to def when *v is the zero value: provider sections use it in their
// SetDefaults.
func OrDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}
