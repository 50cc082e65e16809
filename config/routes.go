package config

// RouteNames lists every ingest route (the path after /v1/), enabled or not. It is the one
// definition config validation and the providers package agree on (a test in providers
// checks they match).
func RouteNames() []string {
	return []string{
		"linkrunner/capture-event", "linkrunner/capture-payment",
		"ens/impression", "ens/click",
		"brevo/events", "brevo/track-event",
		"bannerflex/banner-events",
		"cardlytics/client-events",
	}
}
