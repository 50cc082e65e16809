package forward

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// moveBatch caps the retries one move script call moves, keeping each call short.
const moveBatch = 500

// mover puts due retries back into the stream every MoveEvery. Every relay runs one; the
// script is atomic, so concurrent movers never move a retry twice.
func (f *Forwarder) mover(ctx context.Context) {
	t := time.NewTicker(f.o.MoveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for ctx.Err() == nil {
			n, err := moveScript.Run(ctx, f.o.Client, []string{f.retry, f.events}, moveBatch).Int()
			if err != nil {
				if ctx.Err() == nil {
					f.log.Warn("moving due retries failed", zap.Error(err))
				}
				break
			}
			if n < moveBatch {
				break
			}
		}
	}
}
