"""A real JupyterHub (with its proxy) running the real egress service as a hub-managed service,
on free ports, over a real registry with the Eunomia extract of one permit. Shared by the
egress integration and end-to-end tests.

People (groups → custom scopes, as in the SPE hub config):
  alice, bob    researchers, members of permit P (alice is the PI)
  mallory       researcher, not a member of P
  carol, dave   output checkers, not members
  erin          output checker who is ALSO a researcher member of P (must not review it)
  olga          operator (custom:spe:operate): sees every DP budget row of a permit

Tokens are minted through the hub API by a test service (`test-admin`), with exactly the
scopes a workspace server token or a browser session would carry: a workspace token holds
`access:servers!server=<user>/<server>` (the permit's named server, `hub.naming`) plus
`custom:spe:submit`. Nothing of ours is mocked: the service introspects each token with the hub.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml
from hub.hubapp.process import free_loopback_port as free_port  # noqa: E402
from hub.naming import server_name_for

REPO = Path(__file__).resolve().parents[2]
PERMIT = "DEMO-2026-001"
MAX_REQUEST_BYTES = 20 * 1024 * 1024  # service upload limit in these tests (files: 16 MiB by permit)
CHECKER_SCOPES = ["custom:spe:review", "custom:spe:release"]
RESEARCHER_SCOPES = ["custom:spe:submit", "custom:spe:download", "custom:spe:import"]
COUNT_SQL = ("SELECT gender_concept_id, year_of_birth, count(*) AS n FROM person "
             "GROUP BY gender_concept_id, year_of_birth ORDER BY gender_concept_id, year_of_birth")




@dataclass
class Hub:
    home: Path
    db_url: str
    hub_url: str  # public (proxy) URL
    api_url: str
    egress_url: str  # the service, directly (as a workspace reaches it)
    public_egress_url: str  # through the proxy (as a browser reaches it)
    admin_token: str
    extract_dir: Path
    process: subprocess.Popen
    log_path: Path

    def token(self, user: str, scopes: list[str], note: str = "test") -> str:
        r = requests.post(f"{self.api_url}users/{user}/tokens", headers={"Authorization": f"token {self.admin_token}"},
                          json={"scopes": scopes, "note": note, "expires_in": 3600}, timeout=30)
        assert r.status_code in (200, 201), r.text
        return r.json()["token"]

    def workspace_token(self, user: str, permit: str = PERMIT) -> str:
        """What a named server's JUPYTERHUB_API_TOKEN carries in an SPE workspace."""
        server = server_name_for(permit)  # the hub's name for the permit's workspace
        return self.token(user, [f"access:servers!server={user}/{server}", "custom:spe:submit"], "workspace")

    def user_token(self, user: str, scopes: list[str]) -> str:
        return self.token(user, scopes, "session")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:]


def make_registry(home: Path, db_url: str) -> Path:
    """Dataset, permit P (alice, bob, erin) and its Eunomia extract, written by the real control plane."""
    from hub.datasets.example import DESCRIPTOR, eunomia_path
    from hub.datasets.registry import add_dataset
    from hub.db import make_engine
    from hub.permits.store import PermitStore
    from hub.provision.run import provision
    from hub.settings import Settings

    settings = Settings(home=home, db_url=db_url, actor="tester")
    settings.ensure_dirs()
    engine = make_engine(db_url)
    add_dataset(engine, name="eunomia", kind="omop-duckdb", source=eunomia_path(), descriptor_path=DESCRIPTOR,
                actor="tester")
    doc = yaml.safe_load((REPO / "examples" / "permits" / "demo-gibleed.yaml").read_text())
    doc["id"] = PERMIT
    doc["members"] = [{"username": "alice", "role": "principal_investigator"},
                      {"username": "bob", "role": "researcher"},
                      {"username": "erin", "role": "researcher"}]
    PermitStore(engine).apply(doc, "tester")
    return provision(engine, settings, PERMIT, "tester").path


def hub_config(tmp: Path, *, home: Path, db_url: str, public_port: int, hub_port: int, proxy_api_port: int,
               egress_port: int, admin_token: str, egress_args: tuple[str, ...] = ()) -> str:
    groups = {
        "researchers": {"users": ["alice", "bob", "mallory", "erin"]},
        "output-checkers": {"users": ["carol", "dave", "erin"]},
        "operators": {"users": ["olga"]},
    }
    roles = [
        {"name": "spe-researchers", "scopes": ["self", "access:services!service=egress", *RESEARCHER_SCOPES], "groups": ["researchers"]},
        {"name": "spe-output-checkers", "scopes": ["self", "access:services!service=egress", *CHECKER_SCOPES], "groups": ["output-checkers"]},
        {"name": "spe-operators", "scopes": ["self", "custom:spe:operate"], "groups": ["operators"]},
        {"name": "test-admin", "services": ["test-admin"], "scopes": ["admin:users", "tokens", "list:users"]},
    ]
    env = {"SPE_HOME": str(home), "SPE_DB_URL": db_url, "PYTHONPATH": str(REPO)}
    services = [
        {"name": "egress", "url": f"http://127.0.0.1:{egress_port}", "command": [sys.executable, "-m", "egress.app", f"--EgressApp.max_request_bytes={MAX_REQUEST_BYTES}",
                                                                              *egress_args],
         "cwd": str(REPO), "environment": env, "oauth_no_confirm": True,
         "oauth_client_allowed_scopes": sorted(CHECKER_SCOPES + RESEARCHER_SCOPES)},
        {"name": "test-admin", "api_token": admin_token},
    ]
    custom = {s: {"description": s} for s in CHECKER_SCOPES + RESEARCHER_SCOPES + ["custom:spe:operate"]}
    return "\n".join([
        f"c.JupyterHub.bind_url = 'http://127.0.0.1:{public_port}'",
        f"c.JupyterHub.hub_bind_url = 'http://127.0.0.1:{hub_port}'",
        f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{proxy_api_port}'",
        f"c.JupyterHub.db_url = 'sqlite:///{tmp / 'jupyterhub.sqlite'}'",
        f"c.JupyterHub.cookie_secret_file = '{tmp / 'cookie_secret'}'",
        f"c.ConfigurableHTTPProxy.pid_file = '{tmp / 'proxy.pid'}'",
        "c.JupyterHub.authenticator_class = 'dummy'",
        "c.DummyAuthenticator.password = 'test-password'",
        "c.Authenticator.allow_all = True",
        f"c.JupyterHub.custom_scopes = {custom!r}",
        f"c.JupyterHub.load_groups = {groups!r}",
        f"c.JupyterHub.load_roles = {roles!r}",
        f"c.JupyterHub.services = {services!r}",
        "c.JupyterHub.allow_named_servers = True",
        "",
    ])


def start_hub(tmp: Path, egress_args: tuple[str, ...] = ()) -> Hub:
    """The hub and its egress service (`egress_args`: extra `--EgressApp.*` settings)."""
    home = tmp / "spe"
    db_url = f"sqlite:///{home / 'registry.db'}"
    extract_dir = make_registry(home, db_url)
    ports = [free_port() for _ in range(4)]
    admin_token = secrets.token_hex(32)
    config = tmp / "jupyterhub_config.py"
    config.write_text(hub_config(tmp, home=home, db_url=db_url, public_port=ports[0], hub_port=ports[1],
                                 proxy_api_port=ports[2], egress_port=ports[3], admin_token=admin_token,
                                 egress_args=egress_args))
    log_path = tmp / "jupyterhub.log"
    env = dict(os.environ, PYTHONPATH=str(REPO), CONFIGPROXY_AUTH_TOKEN=secrets.token_hex(16))
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(config)], cwd=tmp, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    hub = Hub(home=home, db_url=db_url, hub_url=f"http://127.0.0.1:{ports[0]}/",
              api_url=f"http://127.0.0.1:{ports[1]}/hub/api/",
              egress_url=f"http://127.0.0.1:{ports[3]}/services/egress/",
              public_egress_url=f"http://127.0.0.1:{ports[0]}/services/egress/",
              admin_token=admin_token, extract_dir=extract_dir, process=process, log_path=log_path)
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"jupyterhub exited ({process.returncode}):\n{hub.log()}")
        try:
            ok_hub = requests.get(hub.api_url, timeout=2).status_code == 200
            ok_egress = requests.get(hub.egress_url + "api/requests", timeout=2).status_code == 401
            # and through the proxy (routes are added a moment after the hub starts)
            ok_proxy = ok_hub and ok_egress and requests.get(
                hub.hub_url + "hub/login", timeout=2).status_code == 200 and requests.get(
                hub.public_egress_url + "api/requests", timeout=2).status_code == 401
            if ok_proxy:
                return hub
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            stop_hub(hub)
            raise RuntimeError(f"jupyterhub or the egress service did not come up:\n{hub.log()}")
        time.sleep(0.3)


def stop_hub(hub: Hub) -> None:
    import signal

    if hub.process.poll() is None:
        os.killpg(hub.process.pid, signal.SIGTERM)
        try:
            hub.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(hub.process.pid, signal.SIGKILL)
            hub.process.wait(5)


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    started = start_hub(tmp_path_factory.mktemp("egress-hub"))
    yield started
    stop_hub(started)
    from hub.db import dispose_engines

    dispose_engines()


class Client:
    """A tiny HTTP client for the service (direct URL, hub token)."""

    def __init__(self, hub: Hub, token: str):
        self.base = hub.egress_url
        self.headers = {"Authorization": f"token {token}"}

    def get(self, path: str, headers: dict | None = None, **kw):
        return requests.get(self.base + path, headers={**self.headers, **(headers or {})}, timeout=120, **kw)

    def post(self, path: str, headers: dict | None = None, **kw):
        return requests.post(self.base + path, headers={**self.headers, **(headers or {})}, timeout=120, **kw)


def count_table(extract_dir: Path):
    """The count table COUNT_SQL computes, as the researcher's notebook would (pyarrow)."""
    import duckdb

    con = duckdb.connect()
    try:
        sql = COUNT_SQL.replace("FROM person", f"FROM read_parquet('{extract_dir / 'person.parquet'}')")
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def parquet_bytes(table) -> bytes:
    import io

    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def suppressed(table, threshold: int = 10):
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.column("n")
    return table.set_column(table.column_names.index("n"), "n",
                            pc.if_else(pc.less(n, threshold), pa.scalar(None, n.type), n))
