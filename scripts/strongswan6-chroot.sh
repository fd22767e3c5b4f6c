#!/usr/bin/env bash
# Builds a Debian 13 (trixie) chroot with strongSwan 6.0.1 — charon, swanctl, the standard and
# extra plugins (kernel-libipsec) — for the interop tests (test/interop/strongswan6.test.ts runs
# charon from it inside a network namespace; test/interop/lab.ts `startCharon(ns, { root })`).
#   scripts/strongswan6-chroot.sh [DIR]       DIR defaults to /var/tmp/ikegw-strongswan6
# env: DEBIAN_MIRROR (default http://deb.debian.org/debian).
# Idempotent: an existing, complete DIR is left as it is (only the versions are printed); the
# build happens in DIR.partial and is renamed to DIR when it succeeded, so DIR is either complete
# or absent. Concurrent runs serialise on DIR.lock. Needs root and debootstrap
# (apt-get install debootstrap); 30 s to 2 min and ~150 MB the first time.
set -euo pipefail

dir=${1:-/var/tmp/ikegw-strongswan6}
dir=${dir%/}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PKGS=(strongswan-charon strongswan-swanctl libstrongswan-standard-plugins libcharon-extra-plugins)
stamp=.ikegw-strongswan6

if [ "$(id -u)" -ne 0 ]; then
  echo "strongswan6-chroot: needs root (debootstrap, chroot)" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null; then
  echo "strongswan6-chroot: debootstrap is not installed (apt-get install debootstrap)" >&2
  exit 1
fi

versions() {
  echo "strongswan6-chroot: $1"
  chroot "$1" dpkg-query -W -f='  ${Package} ${Version}\n' "${PKGS[@]}"
  # (both print plugin-load warnings on stderr when run without a configuration)
  chroot "$1" /usr/lib/ipsec/charon --version 2>/dev/null | sed 's/^/  charon: /'
  chroot "$1" swanctl --help 2>/dev/null | head -1 | sed 's/^/  swanctl: /'
}

mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9

if [ -f "$dir/$stamp" ] && [ -x "$dir/usr/lib/ipsec/charon" ]; then
  versions "$dir"
  exit 0
fi
if [ -e "$dir" ]; then
  echo "strongswan6-chroot: $dir exists but is not a complete chroot made by this script (no $stamp); remove it first" >&2
  exit 1
fi

part="$dir.partial"
rm -rf --one-file-system "$part"
start=$(date +%s)
echo "strongswan6-chroot: debootstrap --variant=minbase trixie $part $mirror"
if ! debootstrap --variant=minbase trixie "$part" "$mirror" >"$part.log" 2>&1; then
  tail -30 "$part.log" >&2
  exit 1
fi

# No daemon may start inside the chroot while packages are installed.
printf '#!/bin/sh\nexit 101\n' >"$part/usr/sbin/policy-rc.d"
chmod 0755 "$part/usr/sbin/policy-rc.d"
[ -s "$part/etc/resolv.conf" ] || cp /etc/resolv.conf "$part/etc/resolv.conf" 2>/dev/null || true

# /proc only for apt and the maintainer scripts, in a private mount namespace (gone when it ends).
echo "strongswan6-chroot: apt-get install ${PKGS[*]}"
if ! unshare -m --propagation private sh -c '
  set -e
  mount -t proc proc "$1/proc"
  shift
  chroot "$0" env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get update -q
  chroot "$0" env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get install -y -q --no-install-recommends "$@"
  chroot "$0" apt-get clean
' "$part" "$part" "${PKGS[@]}" >>"$part.log" 2>&1; then
  tail -30 "$part.log" >&2
  exit 1
fi
rm -rf "$part"/var/lib/apt/lists/*
echo "built $(date -u +%FT%TZ) by scripts/strongswan6-chroot.sh from $mirror" >"$part/$stamp"
mv "$part" "$dir"
rm -f "$part.log"
echo "strongswan6-chroot: built in $(($(date +%s) - start)) s"
versions "$dir"
