"""checkov, offline, over the rendered chart and the workspace pod the permit spawner builds."""

from __future__ import annotations

import json
import os
import subprocess

import yaml

from tests.helm.conftest import CI_DIR, NAMESPACE, render_text
from tests.kube_support import kubeconfig, make_permit, pod_for  # noqa: F401

SKIPS = yaml.safe_load((CI_DIR / "checkov-skips.yaml").read_text())["skips"]


def test_every_skip_is_justified():
    ids = [s["id"] for s in SKIPS]
    assert len(ids) == len(set(ids))
    for s in SKIPS:
        assert set(s) == {"id", "why"} and len(s["why"].split()) >= 12, s["id"]


async def test_checkov_passes_with_justified_skips(tools, tmp_path, kubeconfig):  # noqa: F811
    out_dir = tmp_path / "rendered"
    out_dir.mkdir()
    for path in sorted(CI_DIR.glob("*-values.yaml")):  # every values file CI renders
        (out_dir / path.name).write_text(render_text(tools, path.name))
    _, pod = await pod_for(make_permit())
    pod["metadata"]["namespace"] = NAMESPACE
    (out_dir / "workspace-pod.yaml").write_text(yaml.safe_dump(pod))
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "ERROR"}
    run = subprocess.run(
        [str(tools / "checkov"), "-d", str(out_dir), "--framework", "kubernetes", "--skip-download",
         "--compact", "-o", "json", "--skip-check", ",".join(s["id"] for s in SKIPS)],
        capture_output=True, text=True, env=env, timeout=600)
    report = json.loads(run.stdout)
    report = report if isinstance(report, dict) else report[0]
    failed = [(c["check_id"], c["check_name"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == [], "\n".join(map(str, failed))
    summary = report["summary"]
    # checkov really looked: the restricted-pod checks ran on every workload and the workspace pod
    assert summary["passed"] >= 200 and summary["resource_count"] >= 30, summary
    resources = {c["resource"] for c in report["results"]["passed_checks"]}
    assert f"Pod.{NAMESPACE}.spe-bob-p-diab-01" in resources
    assert run.returncode == 0, run.stderr[-2000:]
