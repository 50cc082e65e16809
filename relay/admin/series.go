package admin

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/eventrelay/relay/relay/queue"
)

// defaultSampleEvery is how often each relay offers a queue depth sample (Options.SampleEvery):
// four times a minute, so a minute lacks its sample only when every relay was down or
// Redis unreachable for all of it.
const defaultSampleEvery = 15 * time.Second

// series serves GET /admin/api/series?provider=P[&minutes=N]: the provider's last N
// minutes (default and at most 60), oldest first, the last being the current minute.
func (a *api) series(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := q.Get("provider")
	if p == "" {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "provider is required (?provider=ens)")
		return
	}
	if !slices.Contains(a.providers, p) {
		writeError(w, http.StatusNotFound, CodeUnknownProvider, fmt.Sprintf("unknown provider %q (enabled: %v)", p, a.providers))
		return
	}
	n := queue.SeriesMinutes
	if s := q.Get("minutes"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > queue.SeriesMinutes {
			writeError(w, http.StatusBadRequest, CodeBadRequest, "minutes must be an integer from 1 to 60")
			return
		}
		n = v
	}
	ctx, cancel := a.redisCtx(r)
	defer cancel()
	now, points, err := queue.Series(ctx, a.client, a.keys, p, n)
	if err != nil {
		a.redisFailed(w, r, err)
		return
	}
	reply := SeriesReply{Provider: p, Now: apiTime(now), Points: make([]SeriesPoint, len(points))}
	for i, pt := range points {
		sp := SeriesPoint{Minute: apiTime(time.Unix(pt.Minute*60, 0)),
			MinuteCounts: MinuteCounts{Delivered: pt.Counts.Delivered, Retried: pt.Counts.Retried, Dead: pt.Counts.Dead}}
		if d := pt.Depth; d != nil {
			sp.Depth = &QueueDepth{Ready: d.Ready, Pending: d.Pending, Retry: d.Retry, Dead: d.Dead}
		}
		reply.Points[i] = sp
	}
	writeJSON(w, http.StatusOK, reply)
}

// startSampler samples every provider's queue depth into its per-minute stats hash
// (queue.SampleDepths) every SampleEvery until ctx is done or the returned stop is
// called; stop waits for the sampler to end. Every relay runs one, and the first in each
// minute records it, so the series survives any relay going away.
func (s *Server) startSampler(ctx context.Context) (stop func()) {
	o := s.opts
	if o.Client == nil || len(o.Providers) == 0 || o.SampleEvery < 0 {
		return func() {}
	}
	every := o.SampleEvery
	if every == 0 {
		every = defaultSampleEvery
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		failing := false
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			sctx, scancel := context.WithTimeout(ctx, o.Timeout)
			_, err := queue.SampleDepths(sctx, o.Client, o.Keys, o.Providers)
			scancel()
			switch {
			case err != nil && ctx.Err() == nil && !failing:
				// Once per failure streak: the series shows the gap, the log says why.
				o.Log.Warn("could not sample the queue depth for the admin series; retrying", zap.Error(err))
				failing = true
			case err == nil && failing:
				o.Log.Info("queue depth sampling works again")
				failing = false
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}
