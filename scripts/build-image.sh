#!/usr/bin/env bash
# Builds the ikegw image offline: no registry pull. A Debian 12 base is made with
# `debootstrap --variant=minbase bookworm` (Debian's packages are the only thing fetched), slimmed
# like debian:12-slim, imported as $BASE, and the Containerfile is built on it.
#   scripts/build-image.sh [TAG]        TAG defaults to ikegw:<package.json version>
# env: BASE (default localhost/ikegw-base:bookworm; an existing image of that name is reused),
#      DEBIAN_MIRROR (default http://deb.debian.org/debian), NPM_REGISTRY (passed to the build).
# Needs root, podman (or buildah) and debootstrap: apt-get install podman buildah runc debootstrap
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' package.json)
tag=${1:-ikegw:$version}
base=${BASE:-localhost/ikegw-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
start=$(date +%s)

if ! podman image exists "$base"; then
  root=$(mktemp -d /var/tmp/ikegw-base.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  echo "build-image: debootstrap --variant=minbase bookworm -> $base"
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
    tail -20 "$root.log" >&2
    exit 1
  }
  rm -f "$root.log"
  # what debian:12-slim leaves out: package caches and lists, man pages, translations, docs
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
    "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/usr/share/info/*
  find "$root/usr/share/doc" -type f ! -name copyright -delete
  tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
fi

# The npm registry may sit behind a TLS-intercepting proxy whose CA only this host trusts: hand the
# host's bundle to the build as a secret (used while fetching, never stored in a layer).
ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
secret=()
if [ -s "$ca" ]; then secret=(--secret "id=cacerts,src=$ca"); fi

echo "build-image: building $tag on $base"
scripts/podman.sh build --build-arg "BASE=$base" ${NPM_REGISTRY:+--build-arg "NPM_REGISTRY=$NPM_REGISTRY"} \
  "${secret[@]}" -f Containerfile -t "$tag" .
size=$(podman image inspect "$tag" --format '{{.Size}}')
echo "build-image: $tag built in $(($(date +%s) - start)) s, $((size / 1000000)) MB"
