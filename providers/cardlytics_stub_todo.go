package providers

import (
	"go.uber.org/zap"

	"eventrelay/config"
)

// Placeholder until cardlytics_upstream.go lands.
func newCardlyticsAdapter(*config.Cardlytics, *zap.Logger) (Adapter, error) {
	return &stubAdapter{Cardlytics}, nil
}
