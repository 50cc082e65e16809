package config

// EnabledProvider is one enabled provider's name and delivery settings.
type EnabledProvider struct {
	Name     string
	Delivery *Delivery
}

// Enabled lists the enabled providers in a fixed order (linkrunner, ens, brevo,
// bannerflex, cardlytics).
func (p *Providers) Enabled() []EnabledProvider {
	var out []EnabledProvider
	if p.Linkrunner != nil {
		out = append(out, EnabledProvider{"linkrunner", &p.Linkrunner.Delivery})
	}
	if p.ENS != nil {
		out = append(out, EnabledProvider{"ens", &p.ENS.Delivery})
	}
	if p.Brevo != nil {
		out = append(out, EnabledProvider{"brevo", &p.Brevo.Delivery})
	}
	if p.BannerFlex != nil {
		out = append(out, EnabledProvider{"bannerflex", &p.BannerFlex.Delivery})
	}
	if p.Cardlytics != nil {
		out = append(out, EnabledProvider{"cardlytics", &p.Cardlytics.Delivery})
	}
	return out
}
