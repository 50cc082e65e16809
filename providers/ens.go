package providers

// ENS Ads: impression and click share one body (PROVIDERS.md, "ENS Ads").

var ensDevices = []string{"mobile", "desktop", "tablet"}

func ensOps() []*Op {
	return []*Op{
		{Route: "ens/impression", Provider: ENS, validate: validateENS},
		{Route: "ens/click", Provider: ENS, validate: validateENS},
	}
}

func validateENS(ev *Event, _ Identity) error {
	f := newFields(&ev.Body, "", nil)
	f.known("campaignId", "placement", "location", "device")
	if id, ok := f.integer("campaignId", true); ok {
		f.check(id > 0, "campaignId", "must be a positive integer")
	}
	f.str("placement", true, 128)
	if loc, ok := f.str("location", false, 0); ok {
		f.check(isCountryCode(loc), "location", "must be an ISO 3166-1 alpha-2 country code such as US")
	}
	f.enum("device", false, ensDevices...)
	return f.Err()
}
