# Convenience targets; the README's two commands work without make.
.PHONY: run test build fuzz chaos mutants

run:
	go run ./cmd/relay serve --config relay.example.yaml

test:
	./scripts/test.sh

build:
	CGO_ENABLED=0 go build -trimpath -o bin/relay ./cmd/relay

# Longer fuzzing than CI does.
fuzz:
	go test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 5m ./strictjson/
	go test -run '^$$' -fuzz '^FuzzValidate$$' -fuzztime 5m ./providers/
	go test -run '^$$' -fuzz '^FuzzParseRetryAfter$$' -fuzztime 5m ./providers/
	go test -run '^$$' -fuzz '^FuzzOriginCheck$$' -fuzztime 5m ./relay/ingest/

# Fault-injection scenarios (chaos/doc.go) in long mode: CHAOS_LONG=1 multiplies their
# durations and loads by 6 (CHAOS_LONG=N by N). The bounded version runs with `go test ./...`.
chaos:
	CHAOS_LONG=$${CHAOS_LONG:-1} go test -count=1 ./chaos/ -run . -v -timeout 60m

# Negative controls (docs/guarantees.md): each scripts/mutants/*.patch breaks the relay in
# a temporary copy and the suite must fail; exits non-zero if a mutant survives.
# MUTANTS, MUTANT_PKGS, MUTANT_FAILFAST=0: see scripts/mutants.sh.
mutants:
	./scripts/mutants.sh

# Load benchmark against its ceilings in one run (bench/README.md): prints the table and
# writes bench/results.md. QUICK=1 for a short run (under 3 minutes). Installs nginx,
# redis-server and wrk with apt-get when missing (the comparison, the queue and the wrk
# rows need them).
.PHONY: bench
bench:
	@command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || (apt-get update -qq && apt-get install -y -qq nginx)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	go build -o bin/loadbench ./bench/cmd/loadbench
	QUICK=$${QUICK:-0} ./bin/loadbench run -out $${OUT:-bench/results.md}
