#!/usr/bin/env bash
# The flake check: clone the committed HEAD afresh and run CI's own entry point (.ci/run,
# with CI=true) N times in a row while a spinning process keeps one core busy. Prints one
# line per run (exit code and time) and a summary; exits non-zero when any run failed.
# Usage: scripts/flake-check.sh [RUNS]   (default 5; `make flake-check RUNS=5`)
set -uo pipefail
runs="${1:-5}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/mlineage-flake-XXXXXX")"
git clone --quiet "$repo" "$work/main"
# CI has ../shared beside the clone
if [ -d "$repo/../shared" ]; then cp -r "$repo/../shared" "$work/shared"; fi

( while :; do :; done ) &  # one core kept busy for the whole check
spinner=$!
trap 'kill "$spinner" 2>/dev/null' EXIT

failed=0
for i in $(seq 1 "$runs"); do
    started=$(date +%s)
    ( cd "$work/main" && CI=true bash .ci/run ) >"$work/run-$i.log" 2>&1
    rc=$?
    took=$(( $(date +%s) - started ))
    summary="$(grep -E '^[=]+ .*(passed|failed).* in ' "$work/run-$i.log" | tail -1)"
    echo "run $i/$runs: exit $rc in ${took}s  ${summary}"
    [ "$rc" -eq 0 ] || failed=$((failed + 1))
done
echo "flake check: $((runs - failed))/$runs green (logs in $work)"
[ "$failed" -eq 0 ]
