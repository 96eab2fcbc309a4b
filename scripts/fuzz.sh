#!/usr/bin/env bash
# Runs each cargo-fuzz target for SECONDS (default 60) and prints the
# executions and any crash. Not part of CI. Needs cargo-fuzz
# (`cargo install cargo-fuzz`); libFuzzer's instrumentation needs nightly
# compiler flags, which RUSTC_BOOTSTRAP=1 enables on the stable toolchain.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${SECONDS_PER_TARGET:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in traceparent tracestate baggage; do
  mkdir -p "corpus/$target"
  echo "=== $target (${seconds}s)"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" 2>&1 \
    | grep -E '^Done [0-9]+ runs|^#[0-9]+ +DONE|SUMMARY|panicked|Test unit written|crash-' || true
done
