#!/usr/bin/env bash
# One command for the whole test suite on a fresh machine, as root:
# installs what is missing, builds, runs unit and integration tests (in namespaces it creates),
# including the container image's tests (scripts/image.sh builds the image once per content).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --image-tools
# The image's Node.js (setup installed it): npm, tsc, the linter, the test runner and the agents it starts.
export PATH="$PWD/.node/bin:$PATH"
npm run --silent lint
node scripts/run-tests.mjs "${1:-all}"
