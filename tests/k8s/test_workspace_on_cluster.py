"""A permit workspace spawned through JupyterHub with the permit spawner on a real cluster.

The cluster's network plugin (CNI bridge) does NOT enforce NetworkPolicy, so every "blocked"
below is the netlock init container's doing. Images: this tree's own (the `images` fixture).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from hub.naming import server_name_for
from tests.conftest import EXAMPLES
from tests.helm.conftest import CHART
from tests.k8s.conftest import khelm, kubectl

pytestmark = pytest.mark.k8s

PERMIT = "DEMO-2026-001"
SERVER = server_name_for(PERMIT)  # JupyterHub server names are lower-case slugs
TOKEN = secrets.token_hex(16)


def split(image):
    name, _, tag = image.rpartition(":")
    return name, tag


def values_file(tmp_path: Path, images: dict) -> Path:
    hub_name, hub_tag = split(images["hub"])
    ws_name, ws_tag = split(images["workspace"])
    values = {
        "hub": {"image": {"name": hub_name, "tag": hub_tag, "pullPolicy": "Never"},
                "config": {"JupyterHub": {"authenticator_class": "dummy",
                                          "services": [{"name": "tester", "api_token": TOKEN}],
                                          "load_roles": [{"name": "tester", "services": ["tester"],
                                                          "scopes": ["admin:users", "admin:servers", "access:servers",
                                                                     "admin:groups"]}]},
                           "Authenticator": {"allow_all": True},
                           # a loaded 2-core test node starts jupyter-server slowly
                           "KubeSpawner": {"http_timeout": 180, "start_timeout": 300}}},
        "workspace": {"image": {"name": ws_name, "tag": ws_tag, "pullPolicy": "Never"},
                      "storage": {"capacity": "1Gi", "storageClassName": "local-path"}},
        "registry": {"db": {"type": "sqlite", "pvc": {"storage": "1Gi", "storageClassName": "local-path"}}},
        "extracts": {"pvc": {"storage": "1Gi", "storageClassName": "local-path"}},
        "egress": {"store": {"storage": "1Gi", "storageClassName": "local-path"}},
        "inflow": {"pvc": {"storage": "1Gi", "storageClassName": "local-path"}},  # the test node's static PVs
        "keys": {"store": "pvc", "pvc": {"storage": "10Mi", "storageClassName": "local-path"}},
    }
    path = tmp_path / "cluster-values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def wait(what, seconds, fn):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(2)
    raise AssertionError(f"{what} did not happen within {seconds} s (last: {last!r})")


def hub_exec(tools, cluster, ns, *cmd, stdin=None, check=True):
    return kubectl(tools, cluster, "-n", ns, "exec", "-i", "deploy/spe-hub", "--", *cmd, stdin=stdin, check=check)


def diagnostics(tools, cluster, namespace) -> str:
    """What an operator would look at first: pods, the workspace pod's events, the hub's log."""
    pods = kubectl(tools, cluster, "-n", namespace, "get", "pods", "-o", "wide", check=False).stdout
    ws = kubectl(tools, cluster, "-n", namespace, "describe", "pod", "-l", "spe.io/role=workspace", check=False).stdout
    hub = "\n".join(line for line in kubectl(tools, cluster, "-n", namespace, "logs", "deploy/spe-hub",
                                               "--tail=3000", check=False).stdout.splitlines()
                     if "GET /hub/api/users/bob" not in line)
    events = kubectl(tools, cluster, "-n", namespace, "get", "events", "--sort-by=.lastTimestamp", check=False).stdout
    return f"{pods}\n{ws[-3000:]}\nevents:\n{events[-4000:]}\nhub log:\n{hub[-6000:]}"


def test_permit_workspace_is_isolated(tools, cluster, images, namespace, volumes, tmp_path):
    try:
        run_scenario(tools, cluster, namespace, tmp_path, images)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- diagnostics ---\n{diagnostics(tools, cluster, namespace)}") from None
    finally:
        khelm(tools, cluster, "uninstall", "spe", "-n", namespace, check=False)


def run_scenario(tools, cluster, namespace, tmp_path, images):
    khelm(tools, cluster, "install", "spe", str(CHART), "-n", namespace, "-f", str(values_file(tmp_path, images)))
    for dep in ("spe-hub", "spe-proxy", "spe-egress", "spe-recorder"):
        out = kubectl(tools, cluster, "-n", namespace, "rollout", "status", f"deploy/{dep}", "--timeout=300s", check=False)
        if out.returncode != 0:
            logs = kubectl(tools, cluster, "-n", namespace, "logs", f"deploy/{dep}", "--tail=40", check=False)
            raise AssertionError(f"{dep} not ready:\n{out.stderr}\n{logs.stdout}{logs.stderr}")
    # the hub's start-up self-check finds what we know of this cluster: NetworkPolicy is ignored
    wait("the hub's NetworkPolicy self-check", 240, lambda: "NetworkPolicy is NOT enforced" in kubectl(
        tools, cluster, "-n", namespace, "logs", "deploy/spe-hub", check=False).stdout)
    # an operator re-runs it without restarting the hub: same verdict, as an exit code too
    rerun = hub_exec(tools, cluster, namespace, "spe", "--actor", "olivia", "kube", "netpol-check", check=False)
    assert rerun.returncode == 20 and "NetworkPolicy is NOT enforced" in rerun.stdout, rerun.stdout + rerun.stderr
    # the operator provisions inside the hub pod (registry, keys and extracts volumes)
    hub_exec(tools, cluster, namespace, "spe", "dataset", "add-example")
    hub_exec(tools, cluster, namespace, "sh", "-c", "cat > /tmp/permit.yaml",
             stdin=(EXAMPLES / "demo-gibleed.yaml").read_text())
    hub_exec(tools, cluster, namespace, "spe", "permit", "apply", "/tmp/permit.yaml")
    hub_exec(tools, cluster, namespace, "spe", "permit", "provision", PERMIT)

    proxy_ip = kubectl(tools, cluster, "-n", namespace, "get", "svc", "spe-proxy", "-o",
                       "jsonpath={.spec.clusterIP}").stdout
    hub_ip = kubectl(tools, cluster, "-n", namespace, "get", "svc", "spe-hub", "-o", "jsonpath={.spec.clusterIP}").stdout
    api = f"http://{proxy_ip}/hub/api"
    auth = {"Authorization": f"token {TOKEN}"}
    requests.post(f"{api}/users/bob", headers=auth, timeout=30)
    # SPE's roles (as on Docker): a researcher's workspace token may submit outputs and DP queries
    r = requests.post(f"{api}/groups/researchers/users", headers=auth, json={"users": ["bob"]}, timeout=30)
    assert r.status_code == 200, r.text
    r = requests.post(f"{api}/users/bob/servers/{SERVER}", headers=auth, timeout=60)
    assert r.status_code in (201, 202), r.text

    seen = {}

    def ready():
        logs = kubectl(tools, cluster, "-n", namespace, "logs", "-l", "spe.io/role=workspace", "-c", "notebook",
                       "--tail=40", check=False)
        if logs.stdout.strip():
            seen["notebook log"] = logs.stdout  # kept for the failure message: the pod is deleted on timeout
        lock = kubectl(tools, cluster, "-n", namespace, "logs", "-l", "spe.io/role=workspace", "-c", "netlock",
                       "--tail=40", check=False)
        if lock.stdout.strip():
            seen["netlock log"] = lock.stdout
        user = requests.get(f"{api}/users/bob", headers=auth, timeout=30).json()
        server = user.get("servers", {}).get(SERVER)
        return server if server and server.get("ready") else None

    try:
        wait("workspace ready", 240, ready)
    except AssertionError as e:
        raise AssertionError(f"{e}\nnetlock log:\n{seen.get('netlock log', '(none)')}"
                             f"\nnotebook log:\n{seen.get('notebook log', '(none)')}") from None
    pod = kubectl(tools, cluster, "-n", namespace, "get", "pod", "-l", "spe.io/role=workspace",
                  "-o", "jsonpath={.items[0].metadata.name}").stdout

    def in_pod(script):
        return kubectl(tools, cluster, "-n", namespace, "exec", pod, "-c", "notebook", "--",
                       "python3", "-c", script).stdout.strip()

    # uid 1000, no capabilities at all
    assert in_pod("import os; print(os.getuid(), os.getgid())") == "1000 1000"
    assert in_pod("print([l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0])") == "0000000000000000"
    # /data: this permit's extract only, read-only
    files = json.loads(in_pod("import os, json; print(json.dumps(sorted(os.listdir('/data'))))"))
    assert "manifest.json" in files and all(f.endswith(".parquet") or f == "manifest.json" for f in files)
    assert in_pod("import os\ntry:\n open('/data/x','w')\nexcept OSError as e: print(e.errno)") == "30"  # EROFS
    # the hub answers; everything else is refused by the lock (NetworkPolicy is not enforced here)
    probe = ("import socket,sys\ns=socket.socket(); s.settimeout(5)\n"
             "try:\n s.connect((sys.argv[1], int(sys.argv[2]))); print('open')\n"
             "except OSError as e: print(type(e).__name__)")

    def connect(ip, port):
        return kubectl(tools, cluster, "-n", namespace, "exec", pod, "-c", "notebook", "--",
                       "python3", "-c", probe, ip, str(port)).stdout.strip()

    assert connect(hub_ip, 8081) == "open"
    assert connect("10.254.0.1", 443) != "open"  # the Kubernetes API
    assert connect(proxy_ip, 80) != "open"        # another service
    proxy_pod_ip = kubectl(tools, cluster, "-n", namespace, "get", "pod", "-l", "app.kubernetes.io/component=proxy",
                           "-o", "jsonpath={.items[0].status.podIP}").stdout
    assert connect(proxy_pod_ip, 8000) != "open"  # another pod directly
    host_ip = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()[0]
    assert connect(host_ip, 16443) != "open"      # the node / outside world

    # the egress service (its own pod) knows the workspace's token through the hub: a DP count
    # is charged and held for review (the demo permit does not auto-release), the budget shows it
    dp = json.loads(in_pod("import json, spe.dp\na = spe.dp.count('person', epsilon=0.25)\n"
                           "print(json.dumps({'answer': a, 'budget': spe.dp.budget()}))"))
    assert dp["answer"]["release"] == "review" and "values" not in dp["answer"] and dp["answer"]["request_id"]
    assert (dp["budget"]["epsilon_total"], dp["budget"]["epsilon_spent"]) == (2.0, 0.25), dp["budget"]

    r = requests.delete(f"{api}/users/bob/servers/{SERVER}", headers=auth, timeout=60)
    assert r.status_code in (202, 204), r.text
    wait("workspace pod gone", 180, lambda: kubectl(tools, cluster, "-n", namespace, "get", "pod", pod,
                                                     check=False).returncode != 0)
    # the hub records the stop once KubeSpawner's stop returns, which can be after the pod left the API
    wait("server stopped", 120, lambda: SERVER not in requests.get(
        f"{api}/users/bob", headers=auth, timeout=30).json().get("servers", {}))

    # the trail holds the self-check, the spawn and the stop; the probe pod is gone
    def audit_by_action():
        out = {}
        for line in hub_exec(tools, cluster, namespace, "spe", "audit", "export").stdout.splitlines():
            if line.strip():
                ev = json.loads(line)
                ev["detail"] = json.loads(ev["detail"]) if isinstance(ev.get("detail"), str) else ev.get("detail") or {}
                out.setdefault(ev.get("action"), []).append(ev)
        return out

    by_action = wait("the stop in the audit trail", 60, lambda: (lambda a: a if "workspace.stop" in a else None)(
        audit_by_action()))
    checks = by_action["kube.networkpolicy_check"]
    # `spe --actor olivia` in the pod is recorded as its Unix account@host, olivia only as the claim (hub.identity)
    assert [(e["detail"].get("claimed_actor", e["actor"]), e["detail"]["result"], e["detail"]["netlock"])
            for e in checks] == [("hub", "not-enforced", True), ("olivia", "not-enforced", True)]
    assert checks[1]["detail"]["auth"] == "local-unix" and "@" in checks[1]["actor"]
    spawned = [e for e in by_action.get("workspace.spawn", []) if e["outcome"] == "ok"]
    assert [(e["actor"], e["permit_id"], e["detail"]["pod"]) for e in spawned] == [("bob", PERMIT, pod)]
    assert [(e["actor"], e["detail"]["pod"]) for e in by_action.get("workspace.stop", [])] == [("bob", pod)]
    probes = kubectl(tools, cluster, "-n", namespace, "get", "pods", "-l", "spe.io/probe", "-o", "name").stdout
    assert not probes.strip()
