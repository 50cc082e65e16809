package main

import (
	"strings"
	"testing"
	"time"
)

func TestCLIDLQByFilter(t *testing.T) {
	r := startCLIRelay(t)
	r.addDead("ens", 700, "max_attempts")
	r.addDead("ens", 3, "permanent")
	cfg := r.good()
	dead := r.keys.Dead("ens")
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)

	code, out, errOut := relayCLI(t, "dlq", "replay", "--config", cfg, "--provider", "ens", "--reason", "permanent", "--dry-run")
	if code != 0 || out != "dry run, nothing changed: would replay 3 dead letters of ens\n" {
		t.Errorf("replay dry run: exit %d %q %q", code, out, errOut)
	}
	code, out, _ = relayCLI(t, "dlq", "purge", "--config", cfg, "--provider", "ens", "--reason", "max_attempts", "--dry-run")
	if code != 0 || out != "dry run, nothing changed: would purge 700 dead letters of ens\n" {
		t.Errorf("purge dry run (two pages): exit %d %q", code, out)
	}
	if n := r.xlen(dead); n != 703 {
		t.Fatalf("dry runs changed the dead letters: %d left", n)
	}
	code, out, errOut = relayCLI(t, "dlq", "purge", "--config", cfg, "--provider", "ens", "--reason", "permanent")
	if code != 2 || out != "" || !strings.Contains(errOut, "the filter matches") || !strings.Contains(errOut, "--yes") {
		t.Errorf("purge by filter without --yes: exit %d %q %q", code, out, errOut)
	}
	code, out, _ = relayCLI(t, "dlq", "purge", "--config", cfg, "--provider", "ens", "--reason", "permanent", "--status", "400",
		"--route", "ens/click", "--yes")
	if code != 0 || out != "purged 3 dead letters of ens\n" || r.xlen(dead) != 700 {
		t.Errorf("purge by filter: exit %d %q, %d left", code, out, r.xlen(dead))
	}
	code, out, _ = relayCLI(t, "dlq", "replay", "--config", cfg, "--provider", "ens", "--since", later)
	if code != 0 || out != "replayed 0 dead letters of ens\n" {
		t.Errorf("replay since later: exit %d %q", code, out)
	}
	code, out, _ = relayCLI(t, "dlq", "replay", "--config", cfg, "--provider", "ens", "--reason", "max_attempts", "--until", later)
	want := "replayed 500 of 500 matching so far (700 dead letters in all)\n" +
		"replayed 700 of 700 matching so far (700 dead letters in all)\nreplayed 700 dead letters of ens\n"
	if code != 0 || out != want {
		t.Errorf("replay by filter: exit %d\n%s\nwant\n%s", code, out, want)
	}
	if ev, d := r.xlen(r.keys.Events("ens")), r.xlen(dead); ev != 700 || d != 0 {
		t.Errorf("after the replay: events %d, dead %d", ev, d)
	}

	for _, bad := range [][]string{{"--since", "yesterday"}, {"--status", "abc"}} {
		code, out, errOut = relayCLI(t, append([]string{"dlq", "replay", "--config", cfg, "--provider", "ens"}, bad...)...)
		if code != 2 || out != "" || !strings.Contains(errOut, bad[1]) {
			t.Errorf("replay %v: exit %d %q %q", bad, code, out, errOut)
		}
	}
	// The relay checks what the CLI passes on: a reason it does not know.
	code, _, errOut = relayCLI(t, "dlq", "replay", "--config", cfg, "--provider", "ens", "--reason", "nope")
	if code != 1 || !strings.Contains(errOut, "filter.reason") {
		t.Errorf("replay --reason nope: exit %d %q", code, errOut)
	}
}
