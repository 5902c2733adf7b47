#!/usr/bin/env bash
# `make demo`: from a fresh clone (as root on Debian), bring up SPE with the Eunomia demo.
# Installs the system parts if absent, builds the images, registers the dataset, applies and
# provisions the demo permits, starts JupyterHub + proxy (+ services) in the background and
# prints the URL and the generated demo credentials. supervisord runs the proxy, the hub and the
# services (hub.hubapp.supervise); they include the package
# mirror (reviewed wheels for `pip install` in workspaces). `make stop` ends it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export SPE_HOME=${SPE_HOME:-$PWD/.spe}
spe() { "$PY" -m hub.cli "$@"; }

bash scripts/system-deps.sh
"$PY" -m tools.images           # builds spe/workspace:latest only when its inputs changed
spe dataset add-example
spe permit apply examples/permits/demo-gibleed.yaml
spe permit apply examples/permits/demo-second.yaml
for permit in DEMO-2026-001 DEMO-2026-002; do
  spe permit provision "$permit"
done
if spe hub status >/dev/null 2>&1; then spe hub stop; fi
creds=$(spe hub users)
spe hub start
url="http://${SPE_PUBLIC_IP:-127.0.0.1}:${SPE_PUBLIC_PORT:-8000}/"
cat <<MSG

SPE demo is running: ${url}
$creds

alice and bob are researchers on permit DEMO-2026-001 (alice also on DEMO-2026-002, with carol);
carla and dan check outputs and imports; olga operates; aud audits. Logs: ${SPE_HOME}/hub/hub.log
Files and packages enter workspaces through import requests: ${url}services/egress/imports
Operators add wheels for pip directly: spe mirror add tabulate==0.9.0 --all   (docs/operator-mirror.md)
Stop everything with: make stop
MSG
