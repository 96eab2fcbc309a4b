#!/usr/bin/env bash
# A project that depends on ambient gets a working addon compiled on install,
# with no extra step: from the `npm pack` tarball, and from a path to a fresh
# checkout. Each is installed into a scratch project, which then requires it
# and imports it from an ES module by package name.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

probe='
const { AsyncLocalStorage, AsyncContext, nativeVersion } = require("ambient");
const als = new AsyncLocalStorage();
const v = new AsyncContext.Variable();
als.run("request-1", () => v.run("tenant", () => setTimeout(() => {
  if (als.getStore() !== "request-1" || v.get() !== "tenant") throw new Error("context lost");
  console.log("ambient " + nativeVersion() + " works from", require.resolve("ambient"));
}, 1)));'

esm_probe='
import { RequestContext, pinoMixin, nativeVersion } from "ambient";
const mixin = pinoMixin();
await RequestContext.run({ requestId: "esm-1" }, async () => {
  await new Promise((resolve) => setTimeout(resolve, 1));
  if (mixin().requestId !== "esm-1") throw new Error("context lost in an ES module");
});
console.log("ambient " + nativeVersion() + " imports by name from an ES module");'

scratch() {
  local dir="$work/$1"
  mkdir -p "$dir"
  (cd "$dir" && npm init -y >/dev/null)
  echo "$dir"
}

echo "--- from the packed tarball"
tarball=$(cd "$root" && npm pack --silent --pack-destination "$work" | tail -n 1)
if tar -tzf "$work/$tarball" | grep -q '\.node$'; then
  echo "the tarball must not ship a prebuilt addon"; exit 1
fi
dir=$(scratch from-tarball)
(cd "$dir" && npm install --no-audit --no-fund --loglevel=error "$work/$tarball" && node -e "$probe" && node --input-type=module -e "$esm_probe")

echo "--- from a path to a fresh checkout"
git clone --quiet "$root" "$work/checkout"
dir=$(scratch from-path)
(cd "$dir" && npm install --no-audit --no-fund --loglevel=error "$work/checkout" && node -e "$probe" && node --input-type=module -e "$esm_probe")
echo "pack check: 2 passed, 0 failed"
