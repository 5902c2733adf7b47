"""Test support for the Kubernetes spawner: a permit factory, the JupyterHub user/hub objects at
the edge, a spawner whose outside doors (registry, extracts dir, DNS) answer from memory, and a
dummy kubeconfig. Shared by tests/unit and tests/helm."""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path

import kubernetes_asyncio.config.kube_config
import pytest
from jupyterhub import orm
from kubernetes_asyncio.client import ApiClient

from hub.permits.model import Member, Permit, Resources
from hub.spawner.kube import PermitKubeSpawner
from hub.permits.access import permit_for_server

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: dummy, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: dummy, user: {token: dummy}}]
contexts: [{name: dummy, context: {cluster: dummy, user: dummy, namespace: spe}}]
current-context: dummy
"""


def make_permit(permit_id="p-diab-01", **kw) -> Permit:
    today = date.today()
    fields = dict(
        id=permit_id, title="Diabetes cohort", purpose="scientific_research", organisation="Uni",
        principal_investigator="alice",
        members=(Member("alice", "principal_investigator"), Member("bob", "researcher")),
        dataset="eunomia", tables={"person": ("person_id", "year_of_birth")},
        valid_from=today - timedelta(days=1), valid_until=today + timedelta(days=30),
        resources=Resources(mem_limit="2G", cpu_limit=1.5, pids_limit=256),
        version=3, status="active",
    )
    fields.update(kw)
    return Permit(**fields)


class User:
    """The JupyterHub user object at the edge (only what a spawner reads)."""

    def __init__(self, name):
        self.name, self.id, self.url = name, 7, f"/user/{name}/"
        self.escaped_name = name


class Hub:
    public_host = ""
    url = "http://spe-hub:8081/hub/"
    base_url = "/hub/"
    api_url = "http://spe-hub:8081/hub/api"


MIRROR_TOKENS: dict = {}  # permit id -> its index token (the registry's mirror_indexes, in memory)


class RegistrySpawner(PermitKubeSpawner):
    """Real spawner; the registry, extract directory and DNS doors answer from memory."""

    permits: dict = {}

    def load_permit(self, server_name):
        return permit_for_server(self.permits.values(), server_name)

    def load_extract_relpath(self, permit):
        return f"{permit.id}/{permit.version}"

    def resolve_endpoint(self, hostport):
        host, _, port = hostport.rpartition(":")
        return {"spe-hub": "10.96.0.10", "spe-egress": "10.96.0.11", "spe-mirror": "10.96.0.12"}[host], int(port)

    def load_mirror_token(self, permit):
        return MIRROR_TOKENS.setdefault(permit.id, f"{len(MIRROR_TOKENS):032x}")

    def resolve_dns_server(self):
        return "10.96.0.2"


@pytest.fixture
def kubeconfig(tmp_path, monkeypatch):
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    # kubernetes_asyncio reads $KUBECONFIG once, at import; point its default at the dummy file.
    monkeypatch.setattr(kubernetes_asyncio.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    return path


# The audit trail the spawners write to (a real SQLite registry; one per test process).
AUDIT_DB_URL = f"sqlite:///{Path(tempfile.mkdtemp(prefix='spe-kube-test.')) / 'registry.db'}"


def make_spawner(permit: Permit, username="bob", server=None, user_options=None, **traits):
    RegistrySpawner.permits = {permit.id: permit}
    config = dict(namespace="spe", spe_db_url=AUDIT_DB_URL, image="spe/workspace:0.1.0", extracts_claim="spe-extracts",
                  workspace_labels={"spe.io/role": "workspace", "spe.io/release": "spe"},
                  hub_service="spe-hub:8081", egress_service="spe-egress:8090",
                  netlock_image="spe/hub:0.1.0", netlock_image_pull_policy="Never")
    config.update(traits)
    orm_spawner = orm.Spawner(name=permit.id if server is None else server)
    sp = RegistrySpawner(user=User(username), hub=Hub(), orm_spawner=orm_spawner, **config)
    sp.user_options = user_options or {}
    return sp


async def api_json(obj) -> dict:
    """A kubernetes_asyncio model as the API server would receive it (camelCase JSON)."""
    async with ApiClient() as api:  # closes its HTTP session (an open one is a ResourceWarning)
        return api.sanitize_for_serialization(obj)


async def pod_for(permit, **kw):
    """(spawner, pod JSON as the API server would receive it, camelCase)."""
    sp = make_spawner(permit, **kw)
    await sp.load_user_options()
    return sp, await api_json(await sp.get_pod_manifest())
