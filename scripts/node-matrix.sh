#!/usr/bin/env bash
# Runs the JS test suite on every supported Node major. Majors other than the
# system node's come from the npm registry (scripts/node-bin.sh). The addon is
# built once: Node-API is ABI-stable across majors.
set -euo pipefail
cd "$(dirname "$0")/.."

majors="${AMBIENT_NODE_MAJORS:-20 22 24 26}"

[ -f ambient.node ] || npm run build

status=0
passed=0
failed=0
run_suite() {
  local bin=$1 version log
  version=$("$bin" --version)
  log=$(mktemp)
  echo "=== Node $version ($bin)"
  if ! "$bin" --test --test-reporter=spec __test__/*.spec.js > "$log" 2>&1; then
    status=1
  fi
  # The per-test lines are long; show failures in full and the summary.
  grep -E '✖|^ℹ (tests|pass|fail|skipped)' "$log" || true
  if [ $status -ne 0 ]; then sed -n '/failing tests/,$p' "$log"; fi
  passed=$((passed + $(sed -n 's/^ℹ pass //p' "$log")))
  failed=$((failed + $(sed -n 's/^ℹ fail //p' "$log")))
  rm -f "$log"
}

for major in $majors; do
  run_suite "$(bash scripts/node-bin.sh "$major")"
done
echo "matrix: $passed passed, $failed failed"
exit $status
