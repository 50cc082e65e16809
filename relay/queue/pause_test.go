package queue

import (
	"context"
	"testing"
	"time"
)

// A pause keeps the later end; Turn reports it and grants no slot while every lane is
// stopped, and slots again for a lane that is not.
func TestPauseKeepsLaterAndGatesTurn(t *testing.T) {
	ctx := context.Background()
	rdb, keys := scriptRedis(t)
	if err := Pause(ctx, rdb, keys, "p", "a", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := Pause(ctx, rdb, keys, "p", "a", time.Second); err != nil {
		t.Fatal(err)
	}
	r, err := Turn(ctx, rdb, keys, "p", []string{"a"}, 1000, 3, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Granted != 0 || r.Lanes[0].Paused < 4*time.Second || r.Lanes[0].Open >= 0 {
		t.Fatalf("paused lane: %+v; want no slot, about 5 s of pause (the later one kept), breaker closed", r)
	}
	r, err = Turn(ctx, rdb, keys, "p", []string{"a", "b"}, 1000, 3, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Granted != 3 || r.Lanes[1].Paused != 0 {
		t.Fatalf("one lane free: %+v; want 3 slots", r)
	}
}

// An open breaker refuses the probe until its end; then exactly one claimant gets it;
// a failed probe re-opens (and frees the claim), a successful one closes.
func TestBreakerProbeClaimedOnce(t *testing.T) {
	ctx := context.Background()
	rdb, keys := scriptRedis(t)
	claim := func(who string) int {
		t.Helper()
		v, err := ClaimProbe(ctx, rdb, keys, "p", "", who, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := claim("r1"); v != ProbeClosed {
		t.Fatalf("closed breaker: claim %d, want ProbeClosed", v)
	}
	if err := OpenBreaker(ctx, rdb, keys, "p", "", 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if v := claim("r1"); v != ProbeRefused {
		t.Fatalf("open breaker: claim %d, want ProbeRefused", v)
	}
	r, err := Turn(ctx, rdb, keys, "p", []string{""}, 1000, 1, time.Second)
	if err != nil || r.Granted != 0 || r.Lanes[0].Open <= 0 {
		t.Fatalf("open breaker: turn %+v, %v; want no slot and the open time left", r, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for claim("r1") != ProbeClaimed {
		if time.Now().After(deadline) {
			t.Fatal("the probe was never claimable after the open period")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v := claim("r2"); v != ProbeRefused {
		t.Fatalf("second claimant got %d, want ProbeRefused", v)
	}
	if err := OpenBreaker(ctx, rdb, keys, "p", "", time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, keys.Probe("p", "")).Val(); n != 0 {
		t.Fatal("re-opening kept the probe claim")
	}
	if err := CloseBreaker(ctx, rdb, keys, "p", ""); err != nil {
		t.Fatal(err)
	}
	if v := claim("r2"); v != ProbeClosed {
		t.Fatalf("after close: claim %d, want ProbeClosed", v)
	}
}
