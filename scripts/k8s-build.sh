#!/usr/bin/env bash
# Build a single-node Kubernetes v1.20.2 from Debian bookworm's `kubernetes` SOURCE package
# (no k3s/kind/kwok in our registries), with bookworm's Go 1.19. Cached outside the repository:
# a second run only checks the binaries. Takes ~7-15 min on 2 cores the first time, ~1.4 GB peak.
#
#   ${SPE_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spe/k8s-1.20.2}/bin/
#     kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl pause etcd
#
# Facts this relies on (issue 6): GOPATH mode with the tree at $GOPATH/src/k8s.io/kubernetes,
# `make generated_files` first, version ldflags on the vendored path, Debian's reflect2 1.0.2
# replacing the vendored 1.0.1 (broken with Go >= 1.18), etcd unpacked with `dpkg -x` (installing
# etcd-server would start a system etcd), a static pause built from build/pause/linux/pause.c.
set -euo pipefail
CACHE="${SPE_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spe/k8s-1.20.2}"
BIN="$CACHE/bin"
WANT=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
log() { echo "k8s-build: $*" >&2; }

have_all() { for b in "${WANT[@]}" pause etcd; do [ -x "$BIN/$b" ] || return 1; done; }
if have_all; then echo "$BIN"; exit 0; fi
mkdir -p "$BIN" "$CACHE/src"

need=()
for p in golang-1.19-go golang-1.19-src golang-github-modern-go-reflect2-dev dpkg-dev rsync; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ! -f /etc/apt/sources.list.d/spe-deb-src.sources ]; then
  # apt-get source needs deb-src entries; same mirror and suites as the binary ones.
  sed -n '/^Types: deb$/,/^$/p' /etc/apt/sources.list.d/debian.sources | sed 's/^Types: deb$/Types: deb-src/' \
    > /etc/apt/sources.list.d/spe-deb-src.sources
  apt-get update -qq
fi
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get install -y -qq --no-install-recommends "${need[@]}" >"$CACHE/apt.log" 2>&1 || { tail -20 "$CACHE/apt.log"; exit 1; }
fi

cd "$CACHE/src"
if [ ! -d kubernetes-src ]; then
  log "fetching Debian's kubernetes source package"
  rm -rf dl && mkdir dl && (cd dl && apt-get source -qq --download-only kubernetes >/dev/null && dpkg-source -x --no-check ./*.dsc tree >/dev/null)
  mv dl/tree kubernetes-src && rm -rf dl
fi
GOPATH="$CACHE/gopath"
mkdir -p "$GOPATH/src/k8s.io"
ln -sfn "$CACHE/src/kubernetes-src" "$GOPATH/src/k8s.io/kubernetes"
K="$GOPATH/src/k8s.io/kubernetes"
# reflect2 1.0.1 (vendored) panics with Go >= 1.18; Debian ships 1.0.2.
R=/usr/share/gocode/src/github.com/modern-go/reflect2
if [ -d "$K/vendor/github.com/modern-go/reflect2" ] && ! grep -q "1.0.2" "$K/vendor/github.com/modern-go/reflect2/.spe-version" 2>/dev/null; then
  rm -rf "$K/vendor/github.com/modern-go/reflect2" && cp -r "$R" "$K/vendor/github.com/modern-go/reflect2"
  echo 1.0.2 > "$K/vendor/github.com/modern-go/reflect2/.spe-version"
fi
export GOPATH GO111MODULE=off GOFLAGS=-mod=vendor GOCACHE="$CACHE/gocache" PATH=/usr/lib/go-1.19/bin:$PATH
export GOFLAGS=  # GOPATH mode: -mod is not allowed
cd "$K"
if [ ! -f "$CACHE/.generated" ]; then
  log "make generated_files"
  make generated_files >"$CACHE/generated.log" 2>&1 || { tail -30 "$CACHE/generated.log"; exit 1; }
  touch "$CACHE/.generated"
fi
LD="-s -w -X k8s.io/kubernetes/vendor/k8s.io/component-base/version.gitVersion=v1.20.2 \
 -X k8s.io/kubernetes/vendor/k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/kubernetes/vendor/k8s.io/component-base/version.gitMinor=20 \
 -X k8s.io/kubernetes/vendor/k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version.gitVersion=v1.20.2"
for b in "${WANT[@]}"; do
  [ -x "$BIN/$b" ] && continue
  log "go build $b"
  go build -p 2 -ldflags "$LD" -o "$BIN/$b.part" "./cmd/$b" >"$CACHE/build-$b.log" 2>&1 || { tail -30 "$CACHE/build-$b.log"; exit 1; }
  mv "$BIN/$b.part" "$BIN/$b"
done
if [ ! -x "$BIN/pause" ]; then
  gcc -Os -static -o "$BIN/pause" build/pause/linux/pause.c
fi
if [ ! -x "$BIN/etcd" ]; then
  log "unpacking etcd-server (not installing: that would start a system etcd)"
  tmp="$(mktemp -d)"; (cd "$tmp" && apt-get download -qq etcd-server >/dev/null && dpkg -x ./etcd-server_*.deb x)
  cp "$tmp/x/usr/bin/etcd" "$BIN/etcd"; rm -rf "$tmp"
fi
have_all
echo "$BIN"
