#!/usr/bin/env bash
# Installs what the agent's demo and tests need on a fresh Debian machine (run as root):
# the netfilter tools and iproute2 from apt, and the npm dependencies from the lockfile.
# With --image-tools also podman (with runc and catatonit, for its pods), buildah and mmdebstrap:
# what scripts/image.sh and the image tests need.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=(iptables:iptables-nft nftables:nft iproute2:ip conntrack:conntrack util-linux:flock)
if [ "${1:-}" = --image-tools ]; then
  tools+=(podman:podman runc:runc catatonit:catatonit buildah:buildah mmdebstrap:mmdebstrap)
fi
need=()
for pair in "${tools[@]}"; do
  command -v "${pair#*:}" >/dev/null 2>&1 || need+=("${pair%%:*}")
done
# iptables-legacy ships in the iptables package; check it too.
command -v iptables-legacy >/dev/null 2>&1 || need+=(iptables)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build
