#!/usr/bin/env bash
# The whole suite, as the README's test command and CI run it: install the peers, install the
# project, run every test on Node 20 (or whatever node is first on PATH), then the unit tests and a
# start-up smoke test on Node 24, the current LTS new installs use.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/install-peers.sh
npm ci --no-audit --no-fund
npm test
bash test/node24.sh
