# Container image for ip-masq-agent, for amd64 and arm64.
#
#   docker build -t REGISTRY/ip-masq-agent:0.2.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/ip-masq-agent:0.2.0 --push .
#   bash scripts/image.sh [--arch=arm64] [TAG]     # with podman, no Docker needed (README)
#
# The final image is distroless: no base image, only what the agent runs (node, iptables, nft, conntrack, tini
# as PID 1, dash as /bin/sh), unpacked from Debian 12 (bookworm) packages and the Node.js binary
# that the Node.js project publishes on npm (deploy/image/rootfs.sh). Every stage that runs a
# command runs on the build platform; for another architecture only files are fetched and copied,
# so a multi-architecture build needs no emulation.
# Rebuild regularly: the Debian packages are fetched at build time, so a rebuild picks up Debian's
# security fixes for glibc, iptables, nftables and their libraries.

# The one place that names the Node.js version; scripts/image.sh and scripts/setup.sh (which installs
# it into .node/ for the build, the tests and the benches) read this line.
ARG NODE_VERSION=26.12.1
# The build stages' image (Debian bookworm with node and npm), pinned by its full version tag. To
# pin its digest too: `docker buildx imagetools inspect node:26.12.1-bookworm-slim`, then
# `--build-arg BUILD_IMAGE=node:26.12.1-bookworm-slim@sha256:<digest>`.
ARG BUILD_IMAGE=node:${NODE_VERSION}-bookworm-slim

# Type-check and bundle: src/main.ts and its runtime dependencies (yaml, zod) become one file,
# dist/bin/ip-masq-agent.js (package.json's bin), so the image needs no node_modules. Pure
# JavaScript, so it is built once on the build platform for every target.
FROM --platform=$BUILDPLATFORM ${BUILD_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY scripts/bundle.mjs ./scripts/bundle.mjs
COPY src ./src
RUN npm run build

# The target's root filesystem, assembled on the build platform (apt-get download, dpkg-deb -x).
FROM --platform=$BUILDPLATFORM ${BUILD_IMAGE} AS rootfs
ARG TARGETARCH
ARG NODE_VERSION
COPY deploy/image/rootfs.sh /usr/local/lib/rootfs.sh
RUN bash /usr/local/lib/rootfs.sh "$TARGETARCH" "$NODE_VERSION" /rootfs && rm -rf /var/lib/apt/lists/*
# `ip-masq-agent ...` for `kubectl exec`, and the reference images' paths for a DaemonSet's
# `command:`; the script puts tini in front of the agent when it is PID 1 itself.
COPY deploy/image/ip-masq-agent /rootfs/usr/local/bin/ip-masq-agent
RUN chmod 0755 /rootfs/usr/local/bin/ip-masq-agent \
 && ln -s /usr/local/bin/ip-masq-agent /rootfs/ip-masq-agent \
 && ln -s /usr/local/bin/ip-masq-agent /rootfs/usr/bin/ip-masq-agent

FROM scratch
COPY --from=rootfs /rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENV NODE_ENV=production
# A V8 heap cap well inside the DaemonSet's 256Mi limit: without it V8 lets the garbage of parsing
# a large config pile up (283 MiB resident with 50,000 CIDRs). A 4 MiB young generation: parsing a
# large config otherwise grows it to 16 MiB per semi-space and keeps it (10,000 CIDRs: 96 -> 74 MiB
# resident), at the price of more scavenges while a large config is parsed (README "Limits",
# bench/sizes.bench.ts). Other V8 flags (--optimize-for-size, --lite-mode) were measured and are
# not worth it (README "Performance", bench/startup.bench.ts).
ENV NODE_OPTIONS="--max-old-space-size=160 --max-semi-space-size=4 --disable-sigusr1"
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/dist/bin/ip-masq-agent.js ./dist/bin/ip-masq-agent.js
# {"type":"commonjs"}: the bundle is CommonJS in a "type": "module" package; the yaml library is
# a file beside it, loaded only when a config needs it (scripts/bundle.mjs).
COPY --from=build /app/dist/bin/package.json ./dist/bin/package.json
COPY --from=build /app/dist/bin/ip-masq-agent-yaml.js ./dist/bin/ip-masq-agent-yaml.js
# scripts/image.sh passes these; `docker build` without them labels the image "unknown".
ARG VERSION=unknown
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="ip-masq-agent" \
      org.opencontainers.image.description="Kubernetes IP Masquerade Agent (iptables and nftables)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"
# No USER: the process stays root inside the container on purpose. Kubernetes grants added
# capabilities (NET_ADMIN, NET_RAW) only to root in the container: a non-root process gets them
# in its bounding set but not as effective ones, and iptables/nft would fail with "Permission
# denied". The DaemonSet drops every other capability, forbids privilege escalation and mounts the
# root filesystem read-only, so root here can change netfilter rules and little else.
# tini is PID 1: it reaps orphaned processes (node does not), and passes signals to the agent and
# the agent's exit code back.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/node", "/app/dist/bin/ip-masq-agent.js"]
