package forward

import (
	"context"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/relay/queue"
)

// A lane's breaker and Retry-After pause are the deployment's, not one relay's: they
// live in Redis (queue.Pause, queue.OpenBreaker) and every relay reads them with each
// rate-limit turn (queue.Turn), so one relay's 429 pauses all, one relay's tripped
// breaker stops all, and while half-open only the relay that claims the probe
// (queue.ClaimProbe) sends. Each relay's gobreaker still counts its own failures and
// decides when to trip; what it decides is shared. Without Redis, the lane falls back to
// this relay's own breaker and pause.

// sharedTimeout bounds one write of shared lane state.
const sharedTimeout = 2 * time.Second

// applyGates takes in the lanes' shared states read by a turn.
func (f *Forwarder) applyGates(gates []queue.LaneGate) {
	now := time.Now()
	for i, g := range gates {
		l := f.lanes[i]
		if g.Paused > 0 {
			l.pause(g.Paused)
		}
		switch {
		case g.Open < 0:
			l.shared.Store(int32(gobreaker.StateClosed))
		case g.Open == 0:
			l.shared.Store(int32(gobreaker.StateHalfOpen))
		default:
			l.openUntil.Store(now.Add(g.Open).UnixNano())
			l.shared.Store(int32(gobreaker.StateOpen))
		}
	}
	f.setBreakerGauge()
}

// PausedFor is how long every lane of the provider stays paused by a Retry-After, this
// relay's or another's as of its last rate-limit turn (0: some lane is not paused).
func (f *Forwarder) PausedFor() time.Duration { return f.pauseLeft() }

// laneNames are the lanes' names, in order (for queue.Turn).
func (f *Forwarder) laneNames() []string {
	out := make([]string, len(f.lanes))
	for i, l := range f.lanes {
		out[i] = l.name
	}
	return out
}

// sharedState is the lane's shared breaker as last read: open until its end, then
// half-open until a turn says otherwise.
func (l *lane) sharedState() gobreaker.State {
	s := gobreaker.State(l.shared.Load())
	if s == gobreaker.StateOpen && time.Now().UnixNano() >= l.openUntil.Load() {
		return gobreaker.StateHalfOpen
	}
	return s
}

// sharedOpenLeft is what is left of the lane's shared open period (0: not open).
func (l *lane) sharedOpenLeft() time.Duration {
	if gobreaker.State(l.shared.Load()) != gobreaker.StateOpen {
		return 0
	}
	return max(time.Until(time.Unix(0, l.openUntil.Load())), 0)
}

// effective is the worse of the lane's own breaker and the shared one.
func (l *lane) effective() gobreaker.State {
	own, shared := l.breaker.State(), l.sharedState()
	if stateRank[shared] > stateRank[own] {
		return shared
	}
	return own
}

// claimProbe decides whether a request may go while the lane's breaker (own or shared)
// is half-open: only the relay that claims the shared probe sends. It reports whether
// the request may go and whether it is the deployment's probe. If Redis cannot be asked,
// this relay's own breaker decides (it let the request through).
func (f *Forwarder) claimProbe(l *lane) (ok, probe bool) {
	ctx, cancel := context.WithTimeout(f.attempts, sharedTimeout)
	defer cancel()
	v, err := queue.ClaimProbe(ctx, f.o.Client, f.o.Keys, f.provider, l.name, f.o.Consumer, f.o.Delivery.Timeout+time.Second)
	switch {
	case err != nil:
		f.log.Warn("could not claim the breaker's probe; this relay's own breaker decides", zap.Error(err))
		return true, false
	case v == queue.ProbeClosed:
		l.shared.Store(int32(gobreaker.StateClosed))
		return true, false
	case v == queue.ProbeClaimed:
		return true, true
	}
	// Another relay probes (or the breaker re-opened): hold off reading until its probe
	// could have ended rather than read and defer one entry per turn meanwhile.
	l.openUntil.Store(time.Now().Add(min(f.o.Delivery.Breaker.OpenFor, f.o.Delivery.Timeout+time.Second)).UnixNano())
	l.shared.Store(int32(gobreaker.StateOpen))
	return false, false
}

// share writes what a request taught the lane's breaker to Redis: this relay's breaker
// tripped, or the deployment's probe failed: open for every relay; the probe succeeded:
// closed for every relay.
func (f *Forwarder) share(l *lane, verdict error, probe bool) {
	tripped := l.tripped.Swap(false)
	if !tripped && !probe {
		return
	}
	ctx, cancel := context.WithTimeout(f.attempts, sharedTimeout)
	defer cancel()
	var err error
	if tripped || verdict != nil {
		openFor := f.o.Delivery.Breaker.OpenFor
		err = queue.OpenBreaker(ctx, f.o.Client, f.o.Keys, f.provider, l.name, openFor)
		l.openUntil.Store(time.Now().Add(openFor).UnixNano())
		l.shared.Store(int32(gobreaker.StateOpen))
	} else if probe {
		err = queue.CloseBreaker(ctx, f.o.Client, f.o.Keys, f.provider, l.name)
		l.shared.Store(int32(gobreaker.StateClosed))
	}
	f.setBreakerGauge()
	if err != nil {
		f.log.Warn("could not share the breaker's state; other relays decide on their own", zap.Error(err))
	}
}

// sharePause writes an upstream's Retry-After for the lane to Redis, for every relay.
func (f *Forwarder) sharePause(l *lane, d time.Duration) {
	ctx, cancel := context.WithTimeout(f.attempts, sharedTimeout)
	defer cancel()
	if err := queue.Pause(ctx, f.o.Client, f.o.Keys, f.provider, l.name, d); err != nil {
		f.log.Warn("could not share a Retry-After pause; other relays may keep sending", zap.Error(err))
	}
}
