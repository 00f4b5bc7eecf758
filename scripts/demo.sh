#!/usr/bin/env bash
# One command for the demonstration on a fresh machine, as root: builds, then runs the agent
# inside network namespaces it creates (pod, node, outside) and shows who gets masqueraded.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The image's Node.js (setup installed it).
export PATH="$PWD/.node/bin:$PATH"
node dist/demo/demo.js "$@"
