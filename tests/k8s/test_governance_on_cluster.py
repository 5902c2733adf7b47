"""The governance around a permit workspace on a real cluster (issue 16): the session recorder on
the browser path, its recording across a hub pod restart, the idle culler, and the lifecycle
service acting through the Kubernetes backend (stop, refuse, delete extract and work PVC).

One chart install, one scenario (an install and a first spawn cost minutes on the test node):
1. a cell run through the proxy is in the audit trail as `session.cell` (the proxy's route to
   the workspace is the recorder's Service, never the pod);
2. the hub pod is deleted: the workspace pod keeps running, a kernel connection opened before
   keeps working, and its next cell is recorded; the route still leads through the recorder;
3. a signed checkpoint appears on schedule and `spe audit verify` checks its signature; left
   idle, the workspace is culled, and the cull is in the permit's audit export;
4. started again, then the permit is expired: the lifecycle service stops the workspace, a new
   start is refused, and (grace 0 days) the extract and the work PVC are deleted, audited.
"""

from __future__ import annotations

import base64
import json

import pytest
import requests
import yaml

from hub.lifecycle_backends import permit_label
from hub.naming import safe_slug
from tests.conftest import EXAMPLES
from tests.helm.conftest import CHART
from tests.integration.kernel import Kernel
from tests.k8s.conftest import khelm, kubectl
from tests.k8s.test_workspace_on_cluster import PERMIT, SERVER, TOKEN, diagnostics, hub_exec, values_file, wait

pytestmark = pytest.mark.k8s
WORK_PVC = safe_slug("work", PERMIT, "bob")  # hub.spawner.spec: the (permit, user) work volume


def governance_values(tmp_path, images):
    path = values_file(tmp_path, images)
    values = yaml.safe_load(path.read_text())
    # a lifecycle round every 5 s, data deleted as soon as the permit ends; culled after 300 s
    # idle (longer than a hub pod restart on a loaded node: the workspace must outlive that), the
    # hub reading the proxy's activity every 10 s (JupyterHub's default: 300 s)
    values["hub"]["config"]["SpeHub"] = {"lifecycle_period_seconds": 5, "extract_grace_days": 0,
                                         "idle_timeout_seconds": 300, "audit_checkpoint_seconds": 60}
    values["hub"]["config"]["JupyterHub"]["last_activity_interval"] = 10
    values["workspace"]["networkPolicy"] = {"selfCheck": False}  # test_workspace_on_cluster covers it
    path.write_text(yaml.safe_dump(values))
    return path


def test_recorder_culler_and_lifecycle_on_the_cluster(tools, cluster, images, namespace, volumes, tmp_path):
    try:
        run_scenario(tools, cluster, namespace, tmp_path, images)
    except AssertionError as e:
        rec = kubectl(tools, cluster, "-n", namespace, "logs", "deploy/spe-recorder", "--tail=60", check=False).stdout
        raise AssertionError(f"{e}\n--- diagnostics ---\n{diagnostics(tools, cluster, namespace)}"
                             f"\nrecorder log:\n{rec}") from None
    finally:
        khelm(tools, cluster, "uninstall", "spe", "-n", namespace, check=False)


def audit_events(tools, cluster, ns, permit=None) -> list[dict]:
    args = ["spe", "audit", "export"] + (["--permit", permit] if permit else [])
    out = []
    for line in hub_exec(tools, cluster, ns, *args).stdout.splitlines():
        if line.strip().startswith("{"):
            ev = json.loads(line)
            if ev.get("action"):
                ev["detail"] = json.loads(ev["detail"]) if isinstance(ev.get("detail"), str) else ev.get("detail") or {}
                out.append(ev)
    return out


def actions(events, action):
    return [e for e in events if e["action"] == action]


def run_scenario(tools, cluster, namespace, tmp_path, images):
    k = lambda *a, **kw: kubectl(tools, cluster, "-n", namespace, *a, **kw)  # noqa: E731
    khelm(tools, cluster, "install", "spe", str(CHART), "-n", namespace, "-f", str(governance_values(tmp_path, images)))
    for dep in ("spe-hub", "spe-proxy", "spe-egress", "spe-recorder"):
        out = k("rollout", "status", f"deploy/{dep}", "--timeout=300s", check=False)
        assert out.returncode == 0, f"{dep} not ready:\n{out.stderr}\n{k('logs', f'deploy/{dep}', '--tail=40', check=False).stdout}"
    hub_exec(tools, cluster, namespace, "spe", "dataset", "add-example")
    hub_exec(tools, cluster, namespace, "sh", "-c", "cat > /tmp/permit.yaml",
             stdin=(EXAMPLES / "demo-gibleed.yaml").read_text())
    hub_exec(tools, cluster, namespace, "spe", "permit", "apply", "/tmp/permit.yaml")
    hub_exec(tools, cluster, namespace, "spe", "permit", "provision", PERMIT)

    proxy_ip = k("get", "svc", "spe-proxy", "-o", "jsonpath={.spec.clusterIP}").stdout
    api = f"http://{proxy_ip}/hub/api"
    auth = {"Authorization": f"token {TOKEN}"}
    requests.post(f"{api}/users/bob", headers=auth, timeout=30)
    requests.post(f"{api}/groups/researchers/users", headers=auth, json={"users": ["bob"]}, timeout=30)

    def server():
        return requests.get(f"{api}/users/bob", headers=auth, timeout=30).json().get("servers", {}).get(SERVER)

    def start():
        r = requests.post(f"{api}/users/bob/servers/{SERVER}", headers=auth, timeout=60)
        assert r.status_code in (201, 202), r.text
        wait("workspace ready", 300, lambda: (server() or {}).get("ready"))

    def route_target():
        """Where the proxy sends the workspace's path (its route API, with the proxy's token)."""
        secret = json.loads(k("get", "secret", "spe-hub", "-o", "json").stdout)
        token = base64.b64decode(secret["data"]["proxy-token"]).decode()
        proxy_api = k("get", "svc", "spe-proxy-api", "-o", "jsonpath={.spec.clusterIP}").stdout
        routes = requests.get(f"http://{proxy_api}:8001/api/routes", headers={"Authorization": f"token {token}"},
                              timeout=30).json()
        return next(v["target"] for p, v in routes.items() if p.rstrip("/") == f"/user/bob/{SERVER}")

    start()
    pod = k("get", "pod", "-l", "spe.io/role=workspace", "-o", "jsonpath={.items[0].metadata.name}").stdout
    pod_uid = k("get", "pod", pod, "-o", "jsonpath={.metadata.uid}").stdout
    assert route_target() == "http://spe-recorder:8765"

    # 1. a cell through the browser path is recorded, under the permit, before it runs
    kernel = Kernel(f"http://{proxy_ip}/user/bob/{SERVER}/", TOKEN, timeout_seconds=120)
    assert kernel.run("print(6 * 7)") == "42\n"
    cells = wait("the cell in the audit trail", 60, lambda: [
        e for e in actions(audit_events(tools, cluster, namespace), "session.cell") if e["detail"]["code"] == "print(6 * 7)"])
    assert [(e["actor"], e["permit_id"]) for e in cells] == [("bob", PERMIT)]

    # 2. the hub pod goes away: the workspace keeps running, the open kernel connection too, and
    # what it runs meanwhile and after is recorded; the route still leads through the recorder
    hub_pod = k("get", "pod", "-l", "app.kubernetes.io/component=hub", "-o", "jsonpath={.items[0].metadata.name}").stdout
    k("delete", "pod", hub_pod, "--wait=true", "--timeout=120s")
    assert kernel.run("print(7 * 6, 'while the hub restarts')") == "42 while the hub restarts\n"
    out = k("rollout", "status", "deploy/spe-hub", "--timeout=300s", check=False)
    assert out.returncode == 0, out.stderr
    wait("the hub answers again", 180, lambda: requests.get(f"{api}/users/bob", headers=auth, timeout=10).ok)
    assert k("get", "pod", pod, "-o", "jsonpath={.metadata.uid}").stdout == pod_uid
    wait("the hub keeps the running workspace over its restart", 240, lambda: (server() or {}).get("ready"))
    assert kernel.run("print('after the restart')") == "after the restart\n"
    kernel.close()
    assert route_target() == "http://spe-recorder:8765"
    codes = [e["detail"]["code"] for e in actions(audit_events(tools, cluster, namespace), "session.cell")]
    assert {"print(7 * 6, 'while the hub restarts')", "print('after the restart')"} <= set(codes), codes

    # the lifecycle service signs a checkpoint on schedule (the key: created by the first export
    # above, keys.store=pvc here) and has verified the trail; `spe audit verify` checks the signature
    cps = wait("a scheduled checkpoint", 120, lambda: [
        e for e in actions(audit_events(tools, cluster, namespace), "audit.checkpoint") if e["actor"] == "system"])
    assert cps[0]["detail"]["seq"] > 0
    scheduled = [e for e in actions(audit_events(tools, cluster, namespace), "audit.verify") if e["actor"] == "system"]
    assert scheduled and scheduled[0]["outcome"] == "ok", scheduled
    verified = hub_exec(tools, cluster, namespace, "spe", "audit", "verify").stdout
    assert "chain intact" in verified and "signatures checked" in verified and "NOT" not in verified, verified

    # 3. left idle, the workspace is culled; the cull is in the permit's own audit export
    wait("the idle workspace culled", 900, lambda: server() is None)
    culls = wait("the cull in the permit's export", 60, lambda: actions(
        audit_events(tools, cluster, namespace, permit=PERMIT), "workspace.cull"))
    assert [(c["actor"], c["permit_id"], c["detail"]["user"]) for c in culls] == [("idle-culler", PERMIT, "bob")]
    pvc = k("get", "pvc", "-l", f"spe.permit={permit_label(PERMIT)}", "-o", "jsonpath={.items[*].metadata.name}").stdout
    assert pvc.split() == [WORK_PVC], pvc  # culling keeps the work volume

    # 4. the permit expires with its workspace running: stopped by the lifecycle service, a new
    # start refused, then (grace 0 days) its extract and work PVC deleted, each deletion audited
    start()
    hub_exec(tools, cluster, namespace, "spe", "--actor", "olivia", "permit", "expire", PERMIT, "--reason", "test")
    wait("the expired permit's workspace stopped", 180, lambda: server() is None)
    terminated = actions(audit_events(tools, cluster, namespace), "workspace.terminate")
    assert [(e["actor"], e["permit_id"], e["detail"]["server"]) for e in terminated] == [("system", PERMIT, SERVER)]
    assert "expired" in terminated[0]["detail"]["reason"]
    r = requests.post(f"{api}/users/bob/servers/{SERVER}", headers=auth, timeout=60)
    refused = wait("the refused start in the audit trail", 120, lambda: [
        e for e in actions(audit_events(tools, cluster, namespace), "workspace.spawn") if e["outcome"] == "refused"])
    assert r.status_code >= 400 or not (server() or {}).get("ready"), r.text
    assert "expired" in refused[0]["detail"]["reason"], refused
    wait("the work PVC deleted", 180, lambda: not k("get", "pvc", "-l", f"spe.permit={permit_label(PERMIT)}",
                                                    "-o", "name").stdout.strip())
    listing = hub_exec(tools, cluster, namespace, "sh", "-c", f"ls /srv/spe/extracts/{PERMIT} 2>&1 || true").stdout
    events = audit_events(tools, cluster, namespace)
    (vols,) = actions(events, "workspace.volumes.delete")
    assert (vols["permit_id"], vols["detail"]["volumes"]) == (PERMIT, [WORK_PVC])
    assert [e["permit_id"] for e in actions(events, "extract.delete")] == [PERMIT], listing
    assert "No such file" in listing or not listing.strip(), listing
