#!/usr/bin/env bash
# Install and start what SPE needs from the host on a fresh Debian machine (idempotent).
# Docker engine, debootstrap (base image without a registry), iptables (workspace firewall),
# configurable-http-proxy, Chromium (browser tests), PostgreSQL and Prometheus (tests).
set -euo pipefail
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v iptables >/dev/null || need+=(iptables)
command -v chromium >/dev/null || need+=(chromium)
command -v prometheus >/dev/null || need+=(prometheus)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/tmp/spe-apt.log 2>&1 || { tail -20 /tmp/spe-apt.log; exit 1; }
fi
if ! command -v configurable-http-proxy >/dev/null; then
  echo "installing configurable-http-proxy from npm"
  npm install -g --silent configurable-http-proxy >/tmp/spe-npm.log 2>&1 || { tail -20 /tmp/spe-npm.log; exit 1; }
fi
if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd"
  (dockerd >/var/log/spe-dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start (see /var/log/spe-dockerd.log)"; exit 1; }
fi
