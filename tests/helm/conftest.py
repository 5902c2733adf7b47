"""Fixtures for the chart tests: real helm, kubectl and checkov, installed outside the repository
by scripts/k8s-tools.sh (cached, so a second run takes well under a second)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "spe"
CI_DIR = ROOT / "helm" / "ci"
NAMESPACE = "spe-test"
RELEASE = "spe"
# values files rendered for an old cluster: --kube-version for `helm template`
KUBE_VERSIONS = {"kube-1.20-values.yaml": "1.20.0"}
CI_FILES = sorted(p.name for p in CI_DIR.glob("*-values.yaml"))


@pytest.fixture(scope="session")
def tools() -> Path:
    out = subprocess.run(["bash", str(ROOT / "scripts" / "k8s-tools.sh"), "--checkov"],
                         capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable})
    assert out.returncode == 0, f"scripts/k8s-tools.sh failed:\n{out.stderr[-3000:]}"
    bin_dir = Path(out.stdout.strip().splitlines()[-1])
    for tool in ("helm", "kubectl", "checkov"):
        assert (bin_dir / tool).exists(), f"{tool} missing from {bin_dir}"
    return bin_dir


def helm(tools: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    # HOME-independent: helm keeps no state we need; a scratch config dir avoids touching ~/.config.
    env = {**os.environ, "HELM_CONFIG_HOME": "/tmp/spe-helm-config", "HELM_CACHE_HOME": "/tmp/spe-helm-cache",
           "HELM_DATA_HOME": "/tmp/spe-helm-data"}
    out = subprocess.run([str(tools / "helm"), *args], capture_output=True, text=True, env=env)
    if check:
        assert out.returncode == 0, f"helm {' '.join(args)} failed:\n{out.stderr}"
    return out


def render_text(tools: Path, values_file: str | Path, *extra: str) -> str:
    path = values_file if isinstance(values_file, Path) else CI_DIR / values_file
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "-f", str(path), *extra]
    name = path.name
    if name in KUBE_VERSIONS:
        args += ["--kube-version", KUBE_VERSIONS[name]]
    return helm(tools, *args).stdout


def render(tools: Path, values_file: str | Path, *extra: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(render_text(tools, values_file, *extra)) if d]


@pytest.fixture(scope="session")
def rendered(tools) -> dict[str, list[dict]]:
    """Every CI values file rendered once per session."""
    return {name: render(tools, name) for name in CI_FILES}


def find(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def pod_specs(docs: list[dict]) -> list[tuple[str, dict, dict]]:
    """(workload name, pod template metadata, pod spec) of every workload."""
    out = []
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            t = d["spec"]["template"]
            out.append((d["metadata"]["name"], t["metadata"], t["spec"]))
    return out
