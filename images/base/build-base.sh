#!/usr/bin/env bash
# Produce the base image of the SPE workspace and print its reference on stdout (one line).
#
# 1. BASE_IMAGE (default python:3.11-slim-bookworm) if it is already local or `docker pull` works.
# 2. Otherwise (no registry reachable, as on air-gapped HDAB hosts) build it from Debian:
#    debootstrap --variant=minbase SUITE + python3, venv, pip, ca-certificates, tini, then
#    `docker import` as SPE_BASE_TAG (default spe/base:bookworm). The mirror is the one the
#    host's apt uses. The image is labelled with a hash of its inputs and not rebuilt while
#    the label matches (SPE_FORCE=1 rebuilds, e.g. monthly for security updates).
#
# Environment: BASE_IMAGE, SPE_BASE_TAG, SPE_BASE_SUITE (bookworm), SPE_BASE_MODE
# (auto | pull | debootstrap), SPE_BUILD_LOG_DIR (.spe/logs), SPE_FORCE.
# Progress goes to stderr, details to the log; a failure ends with one `build-base: error:` line.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
BASE_IMAGE="${BASE_IMAGE:-python:3.11-slim-bookworm}"
SPE_BASE_TAG="${SPE_BASE_TAG:-spe/base:bookworm}"
SUITE="${SPE_BASE_SUITE:-bookworm}"
MODE="${SPE_BASE_MODE:-auto}"
LOG_DIR="${SPE_BUILD_LOG_DIR:-.spe/logs}"
mkdir -p "$LOG_DIR"
LOG="$(cd "$LOG_DIR" && pwd)/build-base.log"
# Packages on top of minbase: the interpreter the workspace venv is made from, TLS roots, and
# tini as PID 1 (reaps kernels' zombies; the container runs with a pids limit).
PACKAGES="python3,python3-venv,python3-pip,ca-certificates,tini"

say() { echo "build-base: $*" >&2; echo "[$(date +%T)] $*" >>"$LOG"; }
die() { echo "build-base: error: $* (log: $LOG)" >&2; exit 1; }

: >"$LOG"
command -v docker >/dev/null || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "Docker engine not reachable (is dockerd running?)"

if [ "$MODE" != debootstrap ]; then
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    say "using local $BASE_IMAGE"
    echo "$BASE_IMAGE"; exit 0
  fi
  say "pulling $BASE_IMAGE"
  if timeout 600 docker pull -q "$BASE_IMAGE" >>"$LOG" 2>&1; then
    echo "$BASE_IMAGE"; exit 0
  fi
  [ "$MODE" = pull ] && die "docker pull $BASE_IMAGE failed and SPE_BASE_MODE=pull"
  say "pull failed (no registry?): building $SPE_BASE_TAG from Debian $SUITE with debootstrap"
fi

mapfile -t mirrors < <(python3 "$here/apt_sources.py" "$SUITE")
MIRROR="${mirrors[0]}"
SECURITY="${mirrors[1]}"
input_hash="$(
  { cat "$0" "$here/apt_sources.py"; echo "$SUITE $PACKAGES $MIRROR $SECURITY $(uname -m)"; } |
    sha256sum | cut -c1-16
)"
have="$(docker image inspect -f '{{ index .Config.Labels "spe.input-hash" }}' "$SPE_BASE_TAG" 2>/dev/null || true)"
if [ "$have" = "$input_hash" ] && [ -z "${SPE_FORCE:-}" ]; then
  say "$SPE_BASE_TAG is up to date (input hash $input_hash)"
  echo "$SPE_BASE_TAG"; exit 0
fi

[ "$(id -u)" = 0 ] || die "debootstrap needs root (run as root, or make BASE_IMAGE pullable)"
command -v debootstrap >/dev/null || die "debootstrap not installed (apt-get install debootstrap)"

root="$(mktemp -d /var/tmp/spe-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
start=$SECONDS
say "debootstrap $SUITE from $MIRROR into $root (1-3 min)"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >>"$LOG" 2>&1 ||
  die "debootstrap failed: $(grep -E '^[EW]:' "$LOG" | tail -1)"

say "applying $SUITE-updates and $SUITE-security"
cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY $SUITE-security main
EOF
{
  chroot "$root" apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get -y -q -o Dpkg::Options::=--force-confold upgrade
} >>"$LOG" 2>&1 || die "apt-get upgrade in the new root failed"

say "trimming (apt lists, caches, docs)"
chroot "$root" apt-get clean >>"$LOG" 2>&1
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
# Docker provides these at run time; the host's values must not leak into the image.
: >"$root/etc/resolv.conf"
: >"$root/etc/hostname"
: >"$root/etc/machine-id"

say "docker import as $SPE_BASE_TAG"
tar --numeric-owner -C "$root" -c . | docker import \
  --change "LABEL spe.input-hash=$input_hash" \
  --change "LABEL org.opencontainers.image.title=spe-base org.opencontainers.image.description=Debian-$SUITE-minbase-python3" \
  --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' \
  - "$SPE_BASE_TAG" >>"$LOG" 2>&1 || die "docker import failed"
say "built $SPE_BASE_TAG in $((SECONDS - start)) s ($(docker image inspect -f '{{.Size}}' "$SPE_BASE_TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
echo "$SPE_BASE_TAG"
