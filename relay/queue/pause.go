package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// A provider lane's Retry-After pause and circuit breaker are shared by every relay
// through three keys per lane, under the provider's {P} tag (one cluster slot with its
// slots key, so one script reads them all). Values are unix ms by Redis TIME, so relays
// with skewed clocks agree.
//
//   - pause: "<prefix>:{P}:pause[:<lane>]" = the time until which no request may go
//     (PX: until then). A later pause replaces an earlier one, never the reverse.
//   - breaker: "<prefix>:{P}:breaker[:<lane>]" = the time the breaker's open period ends.
//     Absent: closed. Present and past: half-open, one relay may probe. Its PX
//     (open_for + breakerLinger) only cleans up after a deployment that went away.
//   - probe: "<prefix>:{P}:probe[:<lane>]" = the relay holding the half-open probe (SET
//     NX, PX the upstream timeout + 1 s, so a prober that died frees it).

// breakerLinger is how long a breaker key outlives its open period when no probe ends it.
const breakerLinger = time.Hour

// Pause is the key of provider's lane's Retry-After pause (lane "" is the provider's
// only lane).
func (k Keys) Pause(provider, lane string) string { return k.key(provider, laneSuffix("pause", lane)) }

// Breaker is the key of provider's lane's shared breaker.
func (k Keys) Breaker(provider, lane string) string {
	return k.key(provider, laneSuffix("breaker", lane))
}

// Probe is the key naming the relay that holds provider's lane's half-open probe.
func (k Keys) Probe(provider, lane string) string { return k.key(provider, laneSuffix("probe", lane)) }

func laneSuffix(kind, lane string) string {
	if lane == "" {
		return kind
	}
	return kind + ":" + lane
}

// LaneGate is a lane's shared state as one Turn read it.
type LaneGate struct {
	// Paused is what is left of the lane's Retry-After pause (0: none).
	Paused time.Duration
	// Open is what is left of the lane's shared open breaker: < 0 closed, 0 half-open
	// (one relay may probe, see ClaimProbe), > 0 open.
	Open time.Duration
}

// TurnResult is what Turn returns.
type TurnResult struct {
	// Granted slots, the first due First from now; Next is when the next slot is free.
	Granted     int
	First, Next time.Duration
	// Lanes are the lanes' shared states, in the order asked.
	Lanes []LaneGate
}

// Turn is TakeSlots that also reads the shared pause and breaker of each of lanes, in
// the same script call (see slotsScript); with every lane paused or open it grants no
// slot.
func Turn(ctx context.Context, c redis.Scripter, keys Keys, provider string, lanes []string, interval float64, n int, window time.Duration) (TurnResult, error) {
	ks := make([]string, 0, 1+2*len(lanes))
	ks = append(ks, keys.Rate(provider))
	for _, l := range lanes {
		ks = append(ks, keys.Pause(provider, l), keys.Breaker(provider, l))
	}
	res, err := slotsScript.Run(ctx, c, ks, interval, n, window.Microseconds()).Int64Slice()
	if err == nil && len(res) != 3+2*len(lanes) {
		err = fmt.Errorf("queue: the slots script answered %d numbers, not %d (a relay bug)", len(res), 3+2*len(lanes))
	}
	if err != nil {
		return TurnResult{}, err
	}
	r := TurnResult{Granted: int(res[0]), First: time.Duration(res[1]) * time.Microsecond,
		Next: time.Duration(res[2]) * time.Microsecond, Lanes: make([]LaneGate, len(lanes))}
	for i := range lanes {
		r.Lanes[i] = LaneGate{Paused: time.Duration(res[3+2*i]) * time.Millisecond}
		if o := res[4+2*i]; o < 0 {
			r.Lanes[i].Open = -1
		} else {
			r.Lanes[i].Open = time.Duration(o) * time.Millisecond
		}
	}
	return r, nil
}

// pauseScript extends a pause. KEYS: pause. ARGV: ms. Keeps the later of the existing
// and the new end. Returns the end (unix ms, Redis TIME).
var pauseScript = redis.NewScript(`
local t = redis.call('TIME')
local untilms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur >= untilms then
  return cur
end
redis.call('SET', KEYS[1], string.format('%.0f', untilms), 'PX', ARGV[1])
return untilms
`)

// Pause stops every relay's requests of provider's lane for d from now (Redis's clock),
// unless a later pause is already set.
func Pause(ctx context.Context, c redis.Scripter, keys Keys, provider, lane string, d time.Duration) error {
	return pauseScript.Run(ctx, c, []string{keys.Pause(provider, lane)}, max(d.Milliseconds(), 1)).Err()
}

// openScript opens a shared breaker. KEYS: breaker, probe. ARGV: open_for ms, key ttl
// ms. The open period ends open_for from now, or later if it already did; the probe is
// released (a failed probe re-opens). Returns the end (unix ms, Redis TIME).
var openScript = redis.NewScript(`
local t = redis.call('TIME')
local endms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
redis.call('DEL', KEYS[2])
if cur >= endms then
  return cur
end
redis.call('SET', KEYS[1], string.format('%.0f', endms), 'PX', ARGV[2])
return endms
`)

// OpenBreaker opens provider's lane's breaker for every relay, for openFor from now.
func OpenBreaker(ctx context.Context, c redis.Scripter, keys Keys, provider, lane string, openFor time.Duration) error {
	return openScript.Run(ctx, c, []string{keys.Breaker(provider, lane), keys.Probe(provider, lane)},
		openFor.Milliseconds(), (openFor + breakerLinger).Milliseconds()).Err()
}

// CloseBreaker closes provider's lane's shared breaker (a probe succeeded).
func CloseBreaker(ctx context.Context, c redis.Cmdable, keys Keys, provider, lane string) error {
	return c.Del(ctx, keys.Breaker(provider, lane), keys.Probe(provider, lane)).Err()
}

// Probe verdicts of ClaimProbe.
const (
	// ProbeRefused: the breaker is open, or another relay holds the probe.
	ProbeRefused = 0
	// ProbeClosed: the shared breaker is closed; no probe is needed.
	ProbeClosed = 1
	// ProbeClaimed: this relay holds the half-open probe; its outcome opens or closes.
	ProbeClaimed = 2
)

// claimScript claims a half-open breaker's probe. KEYS: breaker, probe. ARGV: the
// claimant, the claim's ttl ms. Returns a Probe verdict.
var claimScript = redis.NewScript(`
local b = redis.call('GET', KEYS[1])
if not b then
  return 1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(b) > now then
  return 0
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 2
end
return 0
`)

// ClaimProbe asks to send provider's lane's one half-open probe for claimant, holding the
// claim at most ttl. It returns ProbeRefused, ProbeClosed or ProbeClaimed.
func ClaimProbe(ctx context.Context, c redis.Scripter, keys Keys, provider, lane, claimant string, ttl time.Duration) (int, error) {
	return claimScript.Run(ctx, c, []string{keys.Breaker(provider, lane), keys.Probe(provider, lane)},
		claimant, ttl.Milliseconds()).Int()
}
