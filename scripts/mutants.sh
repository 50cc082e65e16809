#!/usr/bin/env bash
# Negative controls (docs/guarantees.md, "Negative controls"): each scripts/mutants/*.patch
# deliberately breaks the relay, and the test suite must then fail. A mutant the suite
# does not catch is a missing test.
#
# The script copies the working tree (tracked files and untracked ones git does not
# ignore, so a new test counts before it is committed) into a temporary directory, runs
# the suite there once unpatched (the baseline: a suite that already fails would make
# every mutant look caught), then, for each patch, resets the copy, applies the patch and
# runs the same suite, which must fail. It prints which packages and tests failed and how
# long each run took. The repository itself is never modified; the copy is removed on
# exit. Exit status: 0 when the baseline passes and every mutant is caught; 1 when a
# mutant survives, a patch no longer applies or no longer compiles, or the baseline fails.
#
#   MUTANTS="a-dead-letter-everything ..."  patch names (without .patch) to run; default all
#   MUTANT_PKGS="./..."        packages to test, in this order; default: every package of
#                              the module (go list ./...), the mutated packages first
#   MUTANT_FAILFAST=0          run every package and test of every mutant to the end, to
#                              list all the tests that catch it (slow; for the docs)
#   MUTANT_TIMEOUT=10m         go test -timeout for each run
#   MUTANT_KEEP_LOGS=dir       keep every run's go test output in dir
#
# The command is `go test -count=1 -failfast -timeout $MUTANT_TIMEOUT <packages>`: no
# -race, to keep it fast (the race detector finds other bugs; these are logic ones).
# -failfast also stops go test from starting further packages once one fails (those
# already running finish; cmd/go's testShouldFailFast), so a mutant run stops at the first
# catching package. The
# default package list is the whole suite, the same set the baseline runs, ordered so the
# unit tests of the mutated code (relay/forward, relay/queue, relay/ingest) come first and
# the slow end-to-end packages (cmd/relay, chaos) last: a mutant the unit tests catch then
# costs their time, not the whole suite's, and one only the end-to-end tests catch still
# meets them. The table names the
# packages that failed before go test stopped, with the first failing test of each.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

timeout=${MUTANT_TIMEOUT:-10m}
failfast=-failfast
if [ "${MUTANT_FAILFAST:-1}" = 0 ]; then failfast=; fi
if [ -n "${MUTANT_PKGS:-}" ]; then
  pkgs=$MUTANT_PKGS
else
  # Every package, reordered: these first, in this order, then the rest, then these last.
  # Names that no longer exist are simply not listed (go list is the source of truth).
  mod=$(go list -m)
  pkgs=$(go list ./... | awk -v mod="$mod" '
    BEGIN {
      nf = split("relay/forward relay/queue relay/ingest relay/admin providers", f, " ")
      nl = split("cmd/relay chaos", l, " ")
      for (i = 1; i <= nf; i++) rank[mod "/" f[i]] = i
      for (i = 1; i <= nl; i++) rank[mod "/" l[i]] = 1000 + i
    }
    { printf "%d %s\n", ($0 in rank) ? rank[$0] : 500, $0 }' | sort -s -n -k1,1 | awk '{print $2}' | tr '\n' ' ')
fi

patches=()
if [ -n "${MUTANTS:-}" ]; then
  for name in $MUTANTS; do
    p="scripts/mutants/${name%.patch}.patch"
    [ -f "$p" ] || { echo "mutants.sh: no such mutant: $p" >&2; exit 1; }
    patches+=("$p")
  done
else
  for p in scripts/mutants/*.patch; do
    [ -f "$p" ] && patches+=("$p")
  done
fi
[ ${#patches[@]} -gt 0 ] || { echo "mutants.sh: no patches in scripts/mutants/" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/relay-mutants.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
copy="$work/relay"
logs=${MUTANT_KEEP_LOGS:-$work/logs}
mkdir -p "$copy" "$logs"

# The copy is a git repository of its own, so that each mutant starts from the same
# files (reset + clean) while the go build cache still hits for unchanged packages (it
# keys on the directory, which stays the same).
git ls-files -z --cached --others --exclude-standard |
  tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$copy"
g() { git -C "$copy" -c user.name=mutants -c user.email=mutants@localhost -c core.hooksPath=/dev/null "$@"; }
g init -q
g add -A
g commit -qm unpatched

reset_copy() { g reset -q --hard && g clean -qfdx; }

# Every patch must still apply before any minutes are spent testing.
for p in "${patches[@]}"; do
  if ! g apply --check "$root/$p" 2>"$work/apply.err"; then
    echo "mutants.sh: $p no longer applies to this tree; update it (docs/guarantees.md, Negative controls):" >&2
    cat "$work/apply.err" >&2
    exit 1
  fi
done

# run NAME: runs the suite in the copy, output in $logs/NAME.log; sets rc, secs, caught_by
# (failing packages with their failing top-level tests) and broken (a package that did
# not build).
run() {
  local name=$1 start end
  start=$(date +%s)
  set +e
  (cd "$copy" && go test -count=1 $failfast -timeout "$timeout" $pkgs) >"$logs/$name.log" 2>&1
  rc=$?
  set -e
  end=$(date +%s)
  secs=$((end - start))
  broken=$(grep -E '^FAIL[[:space:]].*\[(build|setup) failed\]' "$logs/$name.log" | awk '{print $2}' | tr '\n' ' ' || true)
  caught_by=$(awk '
    /^--- FAIL: / { tests = tests (tests == "" ? "" : ",") $3; next }
    /^FAIL[ \t]+[^ \t]+[ \t]+[0-9.]+s$/ {
      pkg = $2; sub(/^github.com\/eventrelay\/relay\//, "", pkg)
      out = out (out == "" ? "" : "; ") pkg (tests == "" ? " (no test named: panic or timeout)" : " " tests)
      tests = ""; next
    }
    /^(ok|FAIL)[ \t]/ { tests = "" }
    END { print out }' "$logs/$name.log")
}

printf 'mutants.sh: baseline (unpatched) and %d mutant(s): go test -count=1 %s -timeout %s %s\n' \
  "${#patches[@]}" "$failfast" "$timeout" "$pkgs"

run baseline
if [ "$rc" != 0 ]; then
  echo "mutants.sh: the unpatched suite fails (${secs}s), so no mutant can be judged: $caught_by ${broken:+build failed: $broken}" >&2
  grep -E '^(--- FAIL|FAIL|panic:)' "$logs/baseline.log" | head -40 >&2
  exit 1
fi
total=$secs
rows=("baseline|passes (required)|-|${secs}")

status=0
for p in "${patches[@]}"; do
  name=$(basename "$p" .patch)
  reset_copy
  g apply "$root/$p"
  run "$name"
  total=$((total + secs))
  if [ -n "$broken" ]; then
    rows+=("$name|BROKEN|does not compile: $broken|$secs")
    echo "mutants.sh: $p no longer compiles ($broken); update it" >&2
    grep -vE '^(ok|\?)[[:space:]]' "$logs/$name.log" | head -20 >&2
    status=1
  elif [ "$rc" = 0 ]; then
    rows+=("$name|NO (survived)|-|$secs")
    echo "mutants.sh: mutant $name SURVIVED: the suite passes with $p applied; a test is missing" >&2
    status=1
  else
    rows+=("$name|yes|$caught_by|$secs")
  fi
done
reset_copy

echo
printf '%-28s %-16s %6s  %s\n' mutant caught seconds "caught by (package: failing tests)"
for row in "${rows[@]}"; do
  IFS='|' read -r n c by s <<<"$row"
  printf '%-28s %-16s %6s  %s\n' "$n" "$c" "$s" "$by"
done
echo "total ${total}s"
if [ -n "${MUTANT_KEEP_LOGS:-}" ]; then echo "logs in $MUTANT_KEEP_LOGS"; fi
exit $status
