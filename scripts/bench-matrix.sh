#!/usr/bin/env bash
# Context benchmarks on every supported Node major, ambient against native,
# medians of ROUNDS runs (default 5). Prints one markdown table and writes the
# raw medians to benchmark/results/context.json.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f ambient.node ] || npm run build
args=()
for major in ${AMBIENT_NODE_MAJORS:-20 22 24 26}; do
  args+=(--node "$(bash scripts/node-bin.sh "$major")")
done
mkdir -p benchmark/results
node benchmark/run.js --rounds "${ROUNDS:-5}" "${args[@]}" --json benchmark/results/context.json "$@"
