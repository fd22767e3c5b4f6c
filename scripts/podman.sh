#!/usr/bin/env bash
# podman with this host's quirks, in one place (the image build and test/deploy both call this).
#   scripts/podman.sh run|build|create ... -> podman <cmd> [quirk flags] ...
# Quirks, each detected, so a host without them gets plain podman:
#  - cgroup v1/hybrid layout (/sys/fs/cgroup is not cgroup2fs): crun refuses it; use runc.
#  - rlimits: podman asks for nofile/nproc of 1048576/4194304, which a host with lower limits
#    refuses (raising is not permitted here), and runc's nproc above kernel.pid_max was refused on
#    this machine too; ask for what this shell has, capped at pid_max.
set -euo pipefail
cmd=${1:?usage: podman.sh COMMAND [ARGS...]}
shift
flags=()
case "$cmd" in
  run | create | build)
    if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ] && command -v runc >/dev/null; then
      flags+=(--runtime runc)
    fi
    nofile=$(ulimit -Sn)
    nproc=$(ulimit -Su)
    pidmax=$(cat /proc/sys/kernel/pid_max)
    if [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pidmax" ]; then nproc=$pidmax; fi
    if [ "$nofile" != unlimited ] && [ "$nofile" -lt 1048576 ]; then flags+=(--ulimit "nofile=$nofile:$nofile"); fi
    if [ "$nproc" != unlimited ] && [ "$nproc" -lt 4194304 ]; then flags+=(--ulimit "nproc=$nproc:$nproc"); fi
    ;;
esac
exec podman "$cmd" "${flags[@]}" "$@"
