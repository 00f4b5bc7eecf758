#!/usr/bin/env bash
# One command for the whole test suite on a fresh machine, as root:
# installs what is missing, builds, runs unit and integration tests (in namespaces it creates).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node scripts/run-tests.mjs "${1:-all}"
