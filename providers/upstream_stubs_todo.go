package providers

import (
	"context"
	"errors"

	"eventrelay/config"
	"eventrelay/relay/queue"
)

// Placeholders until the <provider>_upstream.go files land.

type stubAdapter struct{ name string }

var errNotYet = errors.New("adapter not implemented")

func (a *stubAdapter) Provider() string                      { return a.name }
func (a *stubAdapter) BatchKey(*queue.Message) (string, int) { return "", 1 }
func (a *stubAdapter) MaxBatchWeight() int                   { return 1 }
func (a *stubAdapter) Deliver(_ context.Context, b []*queue.Message) []error {
	return results(len(b), errNotYet)
}

func newLinkrunnerAdapter(*config.Linkrunner) Adapter { return &stubAdapter{Linkrunner} }
func newENSAdapter(*config.ENS) Adapter               { return &stubAdapter{ENS} }
func newBrevoAdapter(*config.Brevo) Adapter           { return &stubAdapter{Brevo} }
func newBannerFlexAdapter(*config.BannerFlex) Adapter { return &stubAdapter{BannerFlex} }
