package providers

import "eventrelay/config"

// Placeholders until the provider files land; each is replaced by <provider>.go.

func notYet(*Event, Identity) error { return &FieldError{Code: CodeInvalidField, Message: "not implemented"} }

func linkrunnerOps() []*Op {
	return []*Op{
		{Route: "linkrunner/capture-event", Provider: Linkrunner, Identity: ClaimUser, validate: notYet},
		{Route: "linkrunner/capture-payment", Provider: Linkrunner, Identity: ClaimUser, Money: true, validate: notYet},
	}
}

func brevoOps(*config.Brevo) []*Op {
	return []*Op{
		{Route: "brevo/events", Provider: Brevo, Identity: ClaimEmail, validate: notYet},
		{Route: "brevo/track-event", Provider: Brevo, Identity: ClaimEmail, validate: notYet},
	}
}

func bannerflexOps() []*Op {
	return []*Op{{Route: "bannerflex/banner-events", Provider: BannerFlex, validate: notYet}}
}

func cardlyticsOps(*config.Cardlytics) []*Op {
	return []*Op{{Route: "cardlytics/client-events", Provider: Cardlytics, Identity: ClaimCustomer, validate: notYet}}
}
