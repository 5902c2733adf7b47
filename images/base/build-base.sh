#!/usr/bin/env bash
# Produce the base image of the SPE workspace and print its reference on stdout (one line).
#
# 1. BASE_IMAGE (default python:3.11-slim-bookworm) if it is already local or `docker pull` works.
# 2. Otherwise (no registry reachable, as on air-gapped HDAB hosts) build it from Debian:
#    debootstrap --variant=minbase SUITE + python3, venv, pip, ca-certificates, tini, then
#    `docker import` as SPE_BASE_TAG-<input hash> (default spe/base:bookworm-<hash>), also
#    tagged SPE_BASE_TAG. The mirror is the one the host's apt uses. The image is labelled with
#    the hash of its inputs (this script, suite, packages, mirror) and not rebuilt while an
#    image with that hash exists (SPE_FORCE=1 rebuilds, e.g. monthly for security updates).
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
  say "pull failed (no registry?): using $SPE_BASE_TAG, built from Debian $SUITE by debootstrap"
fi

mapfile -t mirrors < <(python3 "$here/apt_sources.py" "$SUITE")
MIRROR="${mirrors[0]}"
SECURITY="${mirrors[1]}"
input_hash="$(
  { cat "$0" "$here/apt_sources.py"; echo "$SUITE $PACKAGES $MIRROR $SECURITY $(uname -m)"; } |
    sha256sum | cut -c1-16
)"
# The hash is part of the tag, so source trees with different recipes on one engine keep
# their own base instead of rebuilding a shared tag in turn; SPE_BASE_TAG is an alias.
case "$SPE_BASE_TAG" in
  *:*) HASH_TAG="$SPE_BASE_TAG-$input_hash" ;;
  *) HASH_TAG="$SPE_BASE_TAG:$input_hash" ;;
esac
have="$(docker image inspect -f '{{ index .Config.Labels "spe.input-hash" }}' "$HASH_TAG" 2>/dev/null || true)"
if [ "$have" = "$input_hash" ] && [ -z "${SPE_FORCE:-}" ]; then
  say "$HASH_TAG is up to date"
  echo "$HASH_TAG"; exit 0
fi

[ "$(id -u)" = 0 ] || die "debootstrap needs root (run as root, or make BASE_IMAGE pullable)"
command -v debootstrap >/dev/null || die "debootstrap not installed (apt-get install debootstrap)"

root="$(mktemp -d /var/tmp/spe-base.XXXXXX)"
cleanup() {
  # debootstrap mounts /proc and /sys in the target; a failed run may leave them mounted
  awk -v r="$root/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount -l
  rm -rf "$root"
}
trap cleanup EXIT
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

say "docker import as $HASH_TAG"
tar --numeric-owner -C "$root" -c . | docker import \
  --change "LABEL spe.input-hash=$input_hash" \
  --change "LABEL org.opencontainers.image.title=spe-base org.opencontainers.image.description=Debian-$SUITE-minbase-python3" \
  --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' \
  - "$HASH_TAG" >>"$LOG" 2>&1 || die "docker import failed"
docker tag "$HASH_TAG" "$SPE_BASE_TAG"
say "built $HASH_TAG in $((SECONDS - start)) s ($(docker image inspect -f '{{.Size}}' "$HASH_TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
echo "$HASH_TAG"
