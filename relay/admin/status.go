package admin

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	"github.com/eventrelay/relay/relay/queue"
)

// reader reads the providers' queue state; the API and the Collector share it.
type reader struct {
	client redis.Cmdable
	keys   queue.Keys
}

// depth is one provider's queue state at one moment, as the API and metrics show it.
type depth struct {
	ready, pending, retry, dead int64
	// oldest is the age of the oldest undelivered event found, 0 when none.
	oldest time.Duration
	// lastMinute is only filled when asked for.
	lastMinute MinuteCounts
	// err is why this provider's numbers could not be read.
	err error
}

// snapshot reads every provider's depth (queue.Depths: one TIME call and one pipeline).
// An error that hits one provider is in its depth; an error for all is returned.
func (rd reader) snapshot(ctx context.Context, providers []string, withStats bool) ([]depth, error) {
	ds, err := queue.Depths(ctx, rd.client, rd.keys, providers, withStats)
	if err != nil {
		return nil, err
	}
	out := make([]depth, len(ds))
	for i, d := range ds {
		out[i] = depth{ready: d.Ready, pending: d.Pending, retry: d.Retry, dead: d.Dead, oldest: d.Oldest, err: d.Err}
		if withStats && d.Err == nil {
			out[i].lastMinute = lastMinute(d)
		}
	}
	return out, nil
}

// lastMinute estimates the outcomes of the last 60 s: the current minute's counts plus
// the previous minute's share of the last 60 s.
func lastMinute(d queue.Depth) MinuteCounts {
	w := float64(time.Minute-d.Into) / float64(time.Minute)
	cur, prev := d.ThisMinute, d.PrevMinute
	return MinuteCounts{
		Delivered: cur.Delivered + int64(math.Round(float64(prev.Delivered)*w)),
		Retried:   cur.Retried + int64(math.Round(float64(prev.Retried)*w)),
		Dead:      cur.Dead + int64(math.Round(float64(prev.Dead)*w)),
	}
}

// breakerName is the breaker's state as the API shows it.
func (a *api) breakerName(provider string) string {
	b := a.breakers[provider]
	if b == nil {
		return "unknown"
	}
	switch b.BreakerState() {
	case gobreaker.StateClosed:
		return "closed"
	case gobreaker.StateHalfOpen:
		return "half-open"
	case gobreaker.StateOpen:
		return "open"
	default:
		return "unknown"
	}
}

// providersStatus serves GET /admin/api/providers.
func (a *api) providersStatus(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.redisCtx(r)
	defer cancel()
	depths, err := a.rd.snapshot(ctx, a.providers, true)
	if err != nil {
		a.redisFailed(w, r, err)
		return
	}
	reply := ProvidersReply{Providers: make([]ProviderStatus, 0, len(a.providers))}
	for i, p := range a.providers {
		d := depths[i]
		if d.err != nil {
			a.redisFailed(w, r, fmt.Errorf("provider %s: %w", p, d.err))
			return
		}
		reply.Providers = append(reply.Providers, ProviderStatus{
			Name: p, Breaker: a.breakerName(p),
			Ready: d.ready, Pending: d.pending, Retry: d.retry, Dead: d.dead,
			OldestUndeliveredSeconds: math.Round(d.oldest.Seconds()*1000) / 1000,
			LastMinute:               d.lastMinute,
		})
	}
	writeJSON(w, http.StatusOK, reply)
}
