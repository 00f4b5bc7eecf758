# Container image for ip-masq-agent.
#
#   docker build -t REGISTRY/ip-masq-agent:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/ip-masq-agent:0.1.0 --push .
#   bash scripts/image.sh REGISTRY/ip-masq-agent:0.1.0     # with podman, no Docker needed (README)
#
# Base image: Debian 12 (bookworm) with Node.js 20, pinned by its full version tag. The digest could
# not be resolved where this file was written (no registry access); to pin it as well, run
# `docker buildx imagetools inspect node:20.20.2-bookworm-slim` and build with
# `--build-arg NODE_IMAGE=node:20.20.2-bookworm-slim@sha256:<digest>`.
# Rebuild regularly: the apt packages below come from the Debian archive at build time, so a
# rebuild picks up Debian's security fixes for iptables, nftables and their libraries.
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

# Type-check and bundle: src/main.ts and its runtime dependencies (yaml, zod) become one file,
# dist/bin/ip-masq-agent.js (package.json's bin), so the image needs no node_modules.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY scripts/bundle.mjs ./scripts/bundle.mjs
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
# iptables ships both iptables-legacy and iptables-nft; the agent detects which one the node uses
# (as kubernetes-sigs/iptables-wrappers does) and calls that one by name, so no wrapper script and
# no update-alternatives are needed. nftables is for --backend=nftables.
# npm, npx, corepack and yarn are removed: the agent needs only node, and fewer tools in the
# image mean fewer CVE reports against it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables nftables \
 && rm -rf /var/lib/apt/lists/* \
 && rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx \
      /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
ENV NODE_ENV=production
# A V8 heap cap well inside the DaemonSet's 256Mi limit: without it V8 lets the garbage of parsing
# a large config pile up (283 MiB resident with 50,000 CIDRs). A 4 MiB young generation: parsing a
# large config otherwise grows it to 16 MiB per semi-space and keeps it (10,000 CIDRs: 96 -> 74 MiB
# resident), at the price of more scavenges while a large config is parsed (README "Limits",
# bench/sizes.bench.ts). Other V8 flags (--optimize-for-size, --lite-mode) were measured and are
# not worth it (README "Performance", bench/startup.bench.ts).
ENV NODE_OPTIONS="--max-old-space-size=160 --max-semi-space-size=4"
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/dist/bin/ip-masq-agent.js ./dist/bin/ip-masq-agent.js
# {"type":"commonjs"}: the bundle is CommonJS in a "type": "module" package; the yaml library is
# a file beside it, loaded only when a config needs it (scripts/bundle.mjs).
COPY --from=build /app/dist/bin/package.json ./dist/bin/package.json
COPY --from=build /app/dist/bin/ip-masq-agent-yaml.js ./dist/bin/ip-masq-agent-yaml.js
COPY deploy/image/ip-masq-agent /usr/local/bin/ip-masq-agent
RUN chmod 0755 /usr/local/bin/ip-masq-agent \
 && ln -s /usr/local/bin/ip-masq-agent /ip-masq-agent \
 && ln -s /usr/local/bin/ip-masq-agent /usr/bin/ip-masq-agent
LABEL org.opencontainers.image.title="ip-masq-agent" \
      org.opencontainers.image.description="Kubernetes IP Masquerade Agent (iptables and nftables)" \
      org.opencontainers.image.licenses="Apache-2.0"
# No USER: the process stays root inside the container on purpose. Kubernetes grants added
# capabilities (NET_ADMIN, NET_RAW) only to root in the container: a non-root process gets them
# in its bounding set but not as effective ones, and iptables/nft would fail with "Permission
# denied". The DaemonSet drops every other capability, forbids privilege escalation and mounts the
# root filesystem read-only, so root here can change netfilter rules and little else.
ENTRYPOINT ["node", "/app/dist/bin/ip-masq-agent.js"]
