#!/usr/bin/env bash
# A working Docker engine for the Docker backend and its tests, on a fresh Debian-like
# machine (as root): installs docker.io, debootstrap, iptables and docker-compose when missing, starts
# dockerd in the background when none answers, and waits until it does.
# Idempotent: a second call with a running engine returns at once.
# Exit 0 = `docker info` works; otherwise one line on stderr saying why, and exit 1
# (the Docker tests then skip with that line as their reason).
set -euo pipefail

log=${DOCKERD_LOG:-/var/log/refcluster-dockerd.log}
say() { echo "docker-setup: $*" >&2; }
fail() { say "$*"; exit 1; }

docker info >/dev/null 2>&1 && command -v debootstrap >/dev/null && command -v docker-compose >/dev/null && exit 0

want=()
command -v dockerd >/dev/null || want+=(docker.io)
command -v debootstrap >/dev/null || want+=(debootstrap)
command -v iptables >/dev/null || want+=(iptables)
command -v docker-compose >/dev/null || want+=(docker-compose)
if [ ${#want[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || fail "missing ${want[*]}: run as root (or install them) to use Docker"
  command -v apt-get >/dev/null || fail "missing ${want[*]} and no apt-get to install them"
  say "installing ${want[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || fail "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null \
    || fail "apt-get install ${want[*]} failed"
fi

if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || fail "no Docker engine answers and only root can start dockerd"
  if ! pgrep -x dockerd >/dev/null; then
    say "starting dockerd (log: $log)"
    # setsid: the engine outlives this script and the test run that called it
    setsid dockerd >>"$log" 2>&1 </dev/null &
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || fail "dockerd did not come up in 30 s: $(tail -n 3 "$log" 2>/dev/null | tr '\n' ' ')"
fi
exit 0
