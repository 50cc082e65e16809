#!/usr/bin/env bash
# The whole test suite: the README's test command, and what .ci/run calls.
# Installs redis-server (Debian package) when it is missing; the tests start their own
# Redis processes on free loopback ports in temporary directories.
#
#   FUZZTIME=5s   how long each fuzz target runs (0 skips fuzzing)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "test.sh: redis-server is missing; installing the Debian package" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
# Debian's package may start a system redis on 6379; the tests never use it.

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2; echo "$unformatted" >&2; exit 1
fi
echo "== go vet"
go vet ./...
echo "== go test -race"
go test -race -count=1 -timeout 10m ./...

FUZZTIME=${FUZZTIME:-5s}
if [ "$FUZZTIME" != "0" ]; then
  echo "== fuzz ($FUZZTIME each)"
  go test -run '^$' -fuzz '^FuzzParse$' -fuzztime "$FUZZTIME" ./strictjson/
  go test -run '^$' -fuzz '^FuzzValidate$' -fuzztime "$FUZZTIME" ./providers/
fi
echo "== all tests passed"
