"""`spe kube provision` against a real cluster: the operator's CLI (kubernetes client, the
admin kubeconfig) runs a provisioning Job derived from the installed chart's hub Deployment.

One chart install, then: bad input that creates nothing; a provisioning with a permit file
(Job kept and checked); a second one that makes extract version 2 (Job deleted); a permit the
registry refuses inside the Job (one clear line, Job kept). The hub image is this tree's
(the `images` fixture).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from hub.cli import main as spe_main
from hub.identity import local_operator
from tests.conftest import EXAMPLES
from tests.helm.conftest import CHART
from tests.k8s.conftest import khelm, kubectl

pytestmark = pytest.mark.k8s

PERMIT = "DEMO-2026-001"
ACTOR = "olga-k8s-test"
# The operator's real identity (hub.identity): the Job's events carry it as their claimed actor.
OPERATOR = local_operator().actor


def values_file(tmp_path: Path, image: str) -> Path:
    name, _, tag = image.rpartition(":")
    values = {
        "hub": {"image": {"name": name, "tag": tag, "pullPolicy": "Never"}},
        "registry": {"db": {"type": "sqlite", "pvc": {"storage": "1Gi", "storageClassName": "local-path"}}},
        "extracts": {"pvc": {"storage": "1Gi", "storageClassName": "local-path"}},
        "egress": {"store": {"storage": "1Gi", "storageClassName": "local-path"}},
        "keys": {"store": "pvc", "pvc": {"storage": "10Mi", "storageClassName": "local-path"}},
        "workspace": {"storage": {"capacity": "1Gi", "storageClassName": "local-path"}},
    }
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def spe(capsys, tmp_path, *args) -> tuple[int, str, str]:
    """The operator's CLI, in-process, with a scratch SPE_HOME (it has no registry of its own)."""
    capsys.readouterr()
    code = spe_main(["--home", str(tmp_path / "operator"), "--actor", ACTOR, "kube", "provision", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def provision_objects(tools, cluster, ns) -> str:
    return kubectl(tools, cluster, "-n", ns, "get", "jobs,configmaps,pods", "-l",
                   "app.kubernetes.io/component=provision", "-o", "name").stdout.strip()


def hub_python(tools, cluster, ns, script: str) -> str:
    return kubectl(tools, cluster, "-n", ns, "exec", "deploy/spe-hub", "--", "python3", "-c", script).stdout.strip()


CURRENT = ("from hub.settings import Settings; from hub.db import make_engine; "
           "from hub.provision.extracts import current_extract; import json, os; s = Settings.from_env(); "
           f"r = current_extract(make_engine(s.db_url), {PERMIT!r}); "
           f"print(json.dumps({{'version': r['extract_version'], 'files': sorted(os.listdir(r['path'])), "
           f"'dirs': sorted(os.listdir(s.extracts_dir / {PERMIT!r}))}}))")
EVENTS = ("from hub.settings import Settings; from hub.db import make_engine; import sqlalchemy as sa, json; "
          "from hub.audit.tables import audit_events as events; s = Settings.from_env(); e = make_engine(s.db_url); "
          "c = e.connect(); print(json.dumps([[r.action, json.loads(r.detail or '{}').get('claimed_actor'), r.outcome] "
          "for r in c.execute(sa.select(events)"
          f".where(events.c.detail.contains({OPERATOR!r})).order_by(events.c.seq))]))")


def test_operator_provisions_through_the_kubernetes_client(tools, cluster, images, namespace, volumes, tmp_path,
                                                          capsys):
    started = time.monotonic()
    image = images["hub"]
    ns, kc = namespace, str(cluster)
    try:
        khelm(tools, cluster, "install", "spe", str(CHART), "-n", ns, "-f", str(values_file(tmp_path, image)))
        out = kubectl(tools, cluster, "-n", ns, "rollout", "status", "deploy/spe-hub", "--timeout=300s", check=False)
        assert out.returncode == 0, f"hub not ready: {out.stderr}"
        kubectl(tools, cluster, "-n", ns, "exec", "deploy/spe-hub", "--", "spe", "dataset", "add-example")
        common = ["--namespace", ns, "--kubeconfig", kc, "--timeout-seconds", "600"]
        demo = EXAMPLES / "demo-gibleed.yaml"

        # --- bad input: one clear line, exit 2, nothing created in the cluster ---
        other = tmp_path / "other.yaml"
        other.write_text(demo.read_text().replace(f"id: {PERMIT}", "id: OTHER-2026-009"))
        code, _, err = spe(capsys, tmp_path, PERMIT, "--permit-file", str(other), *common)
        assert code == 2 and "the permit file is for 'OTHER-2026-009', not 'DEMO-2026-001'" in err, err
        broken = tmp_path / "broken.yaml"
        broken.write_text("id: [DEMO-2026-001\n")
        code, _, err = spe(capsys, tmp_path, PERMIT, "--permit-file", str(broken), *common)
        assert code == 2 and "invalid YAML at line" in err, err
        code, _, err = spe(capsys, tmp_path, PERMIT, "--permit-file", str(demo), "--release", "nope", *common)
        assert code == 2 and f"no SPE release 'nope' in namespace '{ns}'" in err, err
        code, _, err = spe(capsys, tmp_path, PERMIT, "--namespace", "default", "--kubeconfig", kc)
        assert code == 2 and "no SPE release 'spe' in namespace 'default'" in err, err
        assert provision_objects(tools, cluster, ns) == ""
        assert len(err.strip().splitlines()) == 1  # one line, no traceback

        # --- first provisioning, with the permit file, Job kept ---
        code, out, err = spe(capsys, tmp_path, PERMIT, "--permit-file", str(demo), "--keep-job", *common)
        assert code == 0, err
        job = out.split(" by job ")[1].split()[0]
        assert f"provision {PERMIT}: job {job}: succeeded" in err and f"job {job} created in namespace {ns}" in err
        assert out.splitlines()[1].startswith(f"extract {PERMIT}/1: ")
        status = json.loads(kubectl(tools, cluster, "-n", ns, "get", "job", job, "-o", "json").stdout)
        assert status["status"]["succeeded"] == 1
        assert status["metadata"]["labels"]["spe.io/permit"] == PERMIT
        assert status["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
        cm = json.loads(kubectl(tools, cluster, "-n", ns, "get", "configmap", job, "-o", "json").stdout)
        assert cm["metadata"]["ownerReferences"][0]["uid"] == status["metadata"]["uid"]
        current = json.loads(hub_python(tools, cluster, ns, CURRENT))
        assert current["version"] == 1 and current["dirs"] == ["1"]
        assert "manifest.json" in current["files"] and "person.parquet" in current["files"]

        # --- second provisioning (permit already stored): version 2, Job and its pod deleted ---
        code, out, err = spe(capsys, tmp_path, PERMIT, *common)
        assert code == 0, err
        job2 = out.split(" by job ")[1].split()[0]
        assert job2 != job and "(job deleted)" in out
        assert out.splitlines()[1].startswith(f"extract {PERMIT}/2: ")
        current = json.loads(hub_python(tools, cluster, ns, CURRENT))
        assert current["version"] == 2 and current["dirs"] == ["1", "2"]
        gone = kubectl(tools, cluster, "-n", ns, "get", "job", job2, check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr
        # the provisioning audited inside the cluster's registry, naming the operator
        events = json.loads(hub_python(tools, cluster, ns, EVENTS))
        assert [a for a, _, _ in events] == [
            "permit.create", "permit.activate", "extract.provision", "extract.provision"], events

        # --- a permit the registry refuses inside the Job: one line with the reason, Job kept, refusal audited ---
        unknown = tmp_path / "unknown-dataset.yaml"
        unknown.write_text(demo.read_text().replace("dataset: eunomia", "dataset: nosuch"))
        code, _, err = spe(capsys, tmp_path, PERMIT, "--permit-file", str(unknown), *common)
        last = err.strip().splitlines()[-1]
        print(f"refused inside the Job, as the operator sees it:\n{err}")
        assert code == 2, err
        assert last.startswith(f"spe: error: provisioning {PERMIT} was refused: ") and "nosuch" in last, err
        assert f"kubectl -n {ns} logs job/" in last
        failed = last.split("logs job/")[1].rstrip(")")
        kept = json.loads(kubectl(tools, cluster, "-n", ns, "get", "job", failed, "-o", "json").stdout)
        assert kept["status"].get("failed") == 1
        assert json.loads(hub_python(tools, cluster, ns, CURRENT))["version"] == 2  # untouched
        assert json.loads(hub_python(tools, cluster, ns, EVENTS))[-1] == ["cli.permit.apply", OPERATOR, "refused"]
    finally:
        print(f"kube provision cluster test: {time.monotonic() - started:.0f} s")
        khelm(tools, cluster, "uninstall", "spe", "-n", ns, check=False)
