#!/usr/bin/env bash
# Debian packages the test suite and the harness use, installed once on a fresh machine:
#   iptables  real dropped packets for the partition tests (as root)
#   chromium  headless browser that opens Locust's web UI and the run reports in tests
#   prometheus  scrapes a local cluster with dashboards/prometheus.yml in tests (and for you)
# Idempotent and quiet when everything is present; without root or apt it says what is
# missing and carries on (the tests that need a package then skip with that reason).
set -euo pipefail

want=(iptables chromium prometheus)
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "system-deps: missing ${missing[*]} (install them as root with apt-get); tests that need them will skip" >&2
  exit 0
fi
echo "system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
