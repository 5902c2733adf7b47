"""Restarts are invisible: `spe hub start` runs the proxy, the hub and the services under
supervisord; a killed hub (kill -9), a cleanly stopped and started hub, a killed proxy and a
killed egress service come back, and a workspace started before keeps its container and its
kernel (a variable set in a cell is still there), reached through the proxy as before.

Real parts: supervisord, configurable-http-proxy, JupyterHub, DockerSpawner, Docker, the
session recorder, the egress service. Everything is named after one run id and removed at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
import websocket
from pathlib import Path

import docker
import pytest
import requests

from hub.hubapp.auth import make_demo_users
from hub.hubapp.client import HubClient
from hub.hubapp.process import free_loopback_port, hub_env, remove_run_resources
from hub.hubapp.supervisor_run import program_pids
from tests.hubfixture import EXAMPLES, _provision
from tests.integration.kernel import Kernel
from tools.images import ensure_images

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
SERVER = "demo-2026-001"
# a pending egress request, submitted from the kernel with the workspace's own token
SUBMIT = """
import json, duckdb, spe
sql = "SELECT gender_concept_id, count(*) AS n FROM person GROUP BY 1 ORDER BY 1"
df = duckdb.sql(sql.replace("FROM person", "FROM '/data/person.parquet'")).df()
req = spe.submit(df, description="persons by sex", provenance_sql=sql, name="t.parquet")
print(json.dumps({"id": req["id"], "state": req["state"], "versions": len(req["versions"])}))
"""
WAIT_SECONDS = 240  # generous: 2 cores shared by many sessions


def spe_cli(home: Path, env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "hub.cli", "--home", str(home), "--actor", "tester", *args],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, f"spe {' '.join(args)}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def wait_for(what: str, check, timeout_seconds: float = WAIT_SECONDS, logs: Path | None = None):
    deadline = time.monotonic() + timeout_seconds
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as err:  # not yet: retried until the deadline
            last = err
        time.sleep(0.5)
    tails = ""
    if logs is not None:
        for f in sorted(logs.glob("*.log")):
            tails += f"\n--- {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-25:])
    raise AssertionError(f"{what}: not within {timeout_seconds} s (last error: {last}){tails}")


def attach(server_url: str, token: str, kernel_id: str) -> Kernel:
    """A new websocket to an existing kernel (the kernel that ran before the restart)."""
    k = Kernel.__new__(Kernel)
    k.server_url, k.token, k.timeout_seconds, k.kernel_id = server_url.rstrip("/") + "/", token, 60, kernel_id
    ws_url = k.server_url.replace("http://", "ws://", 1) + f"api/kernels/{kernel_id}/channels"
    k.ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"], timeout=60)
    k.session = uuid.uuid4().hex
    return k


@pytest.fixture(scope="module")
def supervised(tmp_path_factory):
    run = uuid.uuid4().hex[:6]
    home = tmp_path_factory.mktemp(f"sup-{run}")
    ensure_images()
    _provision(home, "dataset", "add-example")
    _provision(home, "permit", "apply", str(EXAMPLES / "demo-gibleed.yaml"))
    _provision(home, "permit", "provision", "DEMO-2026-001")
    passwords = make_demo_users(home / "hub" / "demo-users.json")
    network, bridge, chain = f"spe-s{run}", f"spes{run}", f"SPE-S{run.upper()}"
    ports = {k: free_loopback_port() for k in ("public", "proxy", "hub", "egress", "mirror")}
    env = hub_env(dict(os.environ), SPE_HOME=home, SPE_DB_URL=f"sqlite:///{home / 'registry.db'}",
                  SPE_NETWORK=network, SPE_BRIDGE=bridge, SPE_FIREWALL_CHAIN=chain, SPE_NAME_PREFIX=f"spe-s{run}",
                  SPE_PUBLIC_PORT=ports["public"], SPE_PROXY_API_PORT=ports["proxy"], SPE_HUB_PORT=ports["hub"],
                  SPE_EGRESS_PORT=ports["egress"], SPE_MIRROR_PORT=ports["mirror"])
    url = f"http://127.0.0.1:{ports['public']}"
    try:
        spe_cli(home, env, "hub", "start", "--wait-seconds", str(WAIT_SECONDS))
        yield {"home": home, "env": env, "url": url, "passwords": passwords, "logs": home / "hub" / "logs",
               "prefix": f"spe-s{run}"}
    finally:
        spe_cli(home, env, "hub", "stop", check=False)
        remove_run_resources(docker.from_env(), network, bridge, chain)


@pytest.fixture(scope="module")
def workspace(supervised):
    alice = HubClient(supervised["url"])
    assert alice.login("alice", supervised["passwords"]["alice"])
    alice.create_token(note="restart test")
    alice.spawn("alice", SERVER, timeout_seconds=WAIT_SECONDS)
    url = alice.user_url("alice", SERVER)
    kernel = Kernel(url, alice.token)
    kernel.run("answer = 6 * 7")
    pending = json.loads(kernel.run(SUBMIT).strip().splitlines()[-1])
    kernel.ws.close()  # only the websocket: Kernel.close() would shut the kernel down
    return {"alice": alice, "url": url, "kernel_id": kernel.kernel_id, "container": container_id(supervised),
            "pending": pending}


def container_id(supervised) -> str:
    ctrs = docker.from_env().containers.list(filters={"label": f"spe.deployment={supervised['prefix']}"})
    assert len(ctrs) == 1, f"expected one workspace container, found {[c.name for c in ctrs]}"
    return ctrs[0].id


def hub_answers(url: str) -> bool:
    return requests.get(f"{url}/hub/api/", timeout=5).status_code == 200


def assert_same_kernel(supervised, workspace) -> None:
    """The same container, and the kernel started before still holds its variable, through the proxy."""
    def kernel_answers():
        k = attach(workspace["url"], workspace["alice"].token, workspace["kernel_id"])
        try:
            return k.run("print(answer)").strip()
        finally:
            k.ws.close()

    assert wait_for("the kernel through the proxy", kernel_answers, logs=supervised["logs"]) == "42"
    assert container_id(supervised) == workspace["container"]


def test_all_programs_run_under_the_supervisor(supervised):
    pids = program_pids(supervised["home"] / "hub")
    expected = {"proxy", "hub", "egress", "frontoffice", "session-recorder", "package-mirror", "spe-lifecycle",
                "idle-culler"}
    assert expected <= set(pids), pids
    assert all(pids[name] > 0 for name in expected), pids
    status = spe_cli(supervised["home"], supervised["env"], "hub", "status")
    assert "RUNNING" in status.stdout and "hub" in status.stdout


def test_killed_hub_comes_back_and_adopts_the_workspace(supervised, workspace):
    hub_dir = supervised["home"] / "hub"
    old = program_pids(hub_dir)["hub"]
    os.kill(old, signal.SIGKILL)  # a crash: no cleanup at all
    wait_for("a new hub process", lambda: program_pids(hub_dir).get("hub") not in (0, old, None), logs=hub_dir / "logs")
    wait_for("the hub API", lambda: hub_answers(supervised["url"]), logs=hub_dir / "logs")
    assert_same_kernel(supervised, workspace)
    server = workspace["alice"].server("alice", SERVER)
    assert server and server["ready"], server


def test_stopped_and_started_hub_keeps_the_workspace(supervised, workspace):
    home, env = supervised["home"], supervised["env"]
    spe_cli(home, env, "hub", "stop")
    assert spe_cli(home, env, "hub", "status", check=False).returncode == 1
    assert container_id(supervised) == workspace["container"]  # the workspace outlives the hub
    spe_cli(home, env, "hub", "start", "--wait-seconds", str(WAIT_SECONDS))
    assert_same_kernel(supervised, workspace)


def test_killed_proxy_comes_back_with_the_routes(supervised, workspace):
    hub_dir = supervised["home"] / "hub"
    old = program_pids(hub_dir)["proxy"]
    os.kill(old, signal.SIGKILL)
    wait_for("a new proxy process", lambda: program_pids(hub_dir).get("proxy") not in (0, old, None), logs=hub_dir / "logs")
    assert_same_kernel(supervised, workspace)


def test_killed_egress_comes_back_and_serves(supervised, workspace):
    hub_dir = supervised["home"] / "hub"
    old = program_pids(hub_dir)["egress"]
    os.kill(old, signal.SIGKILL)
    wait_for("a new egress process", lambda: program_pids(hub_dir).get("egress") not in (0, old, None),
             logs=hub_dir / "logs")
    # through the proxy: the egress pages send an anonymous visitor to the hub's login
    resp = wait_for("egress through the proxy", lambda: (lambda r: r if r.status_code in (200, 302) else None)(
        requests.get(f"{supervised['url']}/services/egress/", allow_redirects=False, timeout=10)),
        logs=hub_dir / "logs")
    assert resp.status_code in (200, 302)
    # the request submitted before the crash is still there, unchanged, asked from the same kernel
    k = attach(workspace["url"], workspace["alice"].token, workspace["kernel_id"])
    try:
        after = json.loads(k.run(f"r = spe.request({workspace['pending']['id']!r}); "
                                 "print(json.dumps({'id': r['id'], 'state': r['state'], "
                                 "'versions': len(r['versions'])}))").strip().splitlines()[-1])
    finally:
        k.ws.close()
    assert after == workspace["pending"]


def test_services_restart_by_name(supervised):
    home, env = supervised["home"], supervised["env"]
    old = program_pids(home / "hub")["package-mirror"]
    spe_cli(home, env, "services", "restart", "package-mirror")
    new = program_pids(home / "hub")["package-mirror"]
    assert new not in (0, old)
    bad = spe_cli(home, env, "services", "restart", "no-such-thing", check=False)
    assert bad.returncode != 0 and "no program named" in bad.stderr


def test_backup_while_everything_runs_restores_into_a_fresh_home(supervised, workspace, tmp_path):
    """`spe backup create` with the hub, egress and a workspace running; restored elsewhere, the
    audit trail verifies and the pending request and its submitted file are there."""
    import sqlalchemy as sa

    from egress.tables import egress_requests
    from hub.db import make_engine

    home, env = supervised["home"], supervised["env"]
    backup = tmp_path / "backup"
    out = spe_cli(home, env, "backup", "create", str(backup)).stdout
    assert "backup written" in out
    manifest = json.loads((backup / "manifest.json").read_text())
    paths = {f["path"] for f in manifest["files"]}
    assert "data/hub/jupyterhub.sqlite" in paths and "data/hub/service-tokens.json" in paths
    assert any(p.startswith("data/egress-store/") for p in paths)  # the submitted file
    assert not any("/logs/" in p or p.endswith((".sock", ".pid", "supervisord.conf")) for p in paths)
    new = tmp_path / "restored"
    new_env = {**env, "SPE_HOME": str(new), "SPE_DB_URL": f"sqlite:///{new / 'registry.db'}"}
    restored = subprocess.run([sys.executable, "-m", "hub.cli", "--home", str(new), "--db-url",
                               f"sqlite:///{new / 'registry.db'}", "backup", "restore", str(backup)],
                              env=new_env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert restored.returncode == 0, restored.stderr
    verify = subprocess.run([sys.executable, "-m", "hub.cli", "--home", str(new), "--db-url",
                             f"sqlite:///{new / 'registry.db'}", "audit", "verify"],
                            env=new_env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr
    with make_engine(f"sqlite:///{new / 'registry.db'}").connect() as conn:
        ids = {r[0] for r in conn.execute(sa.select(egress_requests.c.id))}
    assert workspace["pending"]["id"] in ids
