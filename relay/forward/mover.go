package forward

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/eventrelay/relay/relay/queue"
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
			n, err := queue.MoveDue(ctx, f.o.Client, f.o.Keys, f.provider, moveBatch)
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
