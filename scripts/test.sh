#!/usr/bin/env bash
# The whole test suite: the README's test command, and what .ci/run calls.
# Installs redis-server (Debian package) when it is missing; the tests start their own
# Redis processes on free loopback ports in temporary directories.
#
#   FUZZTIME=30000x       how much each fuzz target runs (0 skips fuzzing). A count, not a
#                         duration: Go 1.26's fuzz coordinator can fail a target with a bare
#                         "context deadline exceeded" when a duration ends on a loaded
#                         machine (golang/go#75804, fixed in Go 1.27); a count never does.
#   RELAY_BROWSER_TEST=1  the headless-browser tests (cmd/relay/e2e_browser_test.go, e2e_charts_test.go) must
#                         run: chromium and chromium-driver are installed when missing,
#                         and a missing /usr/bin/chromium fails the test instead of
#                         skipping it. Set by .ci/run, and implied by CI=true. A default
#                         developer run downloads no browser (the test skips without one).
#   CI=true               also: nodejs and npm are installed when missing, and the Brevo SDK
#                         test's npm project must install (else test.sh fails). Outside CI
#                         a failed npm ci (registry out of reach) only makes that test skip.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

if ! command -v redis-server >/dev/null 2>&1; then
  echo "test.sh: redis-server is missing; installing the Debian package" >&2
  apt_install redis-server
fi
# Debian's package may start a system redis on 6379; the tests never use it.

if [ "${CI:-}" = "true" ] && [ -z "${RELAY_BROWSER_TEST:-}" ]; then
  export RELAY_BROWSER_TEST=1
fi
if [ "${CI:-}" = "true" ] || [ "${RELAY_BROWSER_TEST:-}" = "1" ]; then
  missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "test.sh: ${missing[*]} missing; installing the Debian package(s) for the browser test" >&2
    apt_install "${missing[@]}"
  fi
fi

# The ad-blocker test (relay/ingest/adblock_test.go) runs the relay's browser URLs through
# EasyList, EasyPrivacy and uBlock Origin's lists as Debian ships them; it installs its
# pinned engine (@ghostery/adblocker) with npm itself. In CI both must be there.
if [ "${CI:-}" = "true" ] && [ ! -d /usr/share/chromium/extensions/ublock-origin/assets ]; then
  echo "test.sh: filter lists missing; installing webext-ublock-origin-chromium for the ad-blocker test" >&2
  apt_install webext-ublock-origin-chromium
fi

# The Brevo SDK test (cmd/relay/e2e_brevo_sdk_test.go) drives Brevo's official Node SDK,
# pinned by cmd/relay/testdata/brevo-sdk/package-lock.json; node_modules is not committed.
brevo_sdk=cmd/relay/testdata/brevo-sdk
if [ "${CI:-}" = "true" ]; then
  missing=()
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "test.sh: ${missing[*]} missing; installing the Debian package(s) for the Brevo SDK test" >&2
    apt_install "${missing[@]}"
  fi
fi
if command -v npm >/dev/null 2>&1; then
  echo "== npm ci ($brevo_sdk)"
  if ! (cd "$brevo_sdk" && npm ci --no-audit --no-fund --loglevel=error); then
    if [ "${CI:-}" = "true" ]; then
      echo "test.sh: npm ci in $brevo_sdk failed; CI needs the Brevo SDK test" >&2; exit 1
    fi
    echo "test.sh: npm ci in $brevo_sdk failed (npm registry out of reach?); TestBrevoSDKThroughMirror will skip" >&2
  fi
else
  echo "test.sh: npm is missing; TestBrevoSDKThroughMirror will skip (CI=true installs it)" >&2
fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2; echo "$unformatted" >&2; exit 1
fi
echo "== go vet"
go vet ./...
echo "== go test -race"
go test -race -count=1 -timeout 10m ./...

FUZZTIME=${FUZZTIME:-30000x}
if [ "$FUZZTIME" != "0" ]; then
  echo "== fuzz ($FUZZTIME each)"
  go test -run '^$' -fuzz '^FuzzParse$' -fuzztime "$FUZZTIME" ./strictjson/
  go test -run '^$' -fuzz '^FuzzValidate$' -fuzztime "$FUZZTIME" ./providers/
  go test -run '^$' -fuzz '^FuzzParseRetryAfter$' -fuzztime "$FUZZTIME" ./providers/
  go test -run '^$' -fuzz '^FuzzOriginCheck$' -fuzztime "$FUZZTIME" ./relay/ingest/
fi
echo "== all tests passed"
