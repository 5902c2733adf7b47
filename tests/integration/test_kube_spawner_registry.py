"""PermitKubeSpawner against a real registry: the permit and its current extract come from
SQLite after a real provisioning run; only DNS (the cluster's) answers from memory."""

from __future__ import annotations

import pytest
from jupyterhub import orm

from hub.exceptions import Refused
from hub.permits.store import PermitStore
from hub.provision.run import provision
from hub.spawner.kube import PermitKubeSpawner
from hub.naming import server_name_for
from tests.conftest import EXAMPLES
from tests.kube_support import Hub, User, api_json, kubeconfig  # noqa: F401

P1, P2 = "DEMO-2026-001", "DEMO-2026-002"


class ClusterDnsSpawner(PermitKubeSpawner):
    def resolve_endpoint(self, hostport):
        host, _, port = hostport.rpartition(":")
        return {"spe-hub": "10.96.0.10", "spe-egress": "10.96.0.11"}[host], int(port)


@pytest.fixture
def registry(engine, eunomia):
    store = PermitStore(engine)
    store.apply_file(EXAMPLES / "demo-gibleed.yaml", "op")
    store.apply_file(EXAMPLES / "demo-second.yaml", "op")
    return store


def spawner(settings, permit_id, user="bob"):
    return ClusterDnsSpawner(
        user=User(user), hub=Hub(), orm_spawner=orm.Spawner(name=server_name_for(permit_id)), namespace="spe",
        image="spe/workspace:0.1.0", spe_home=str(settings.home), spe_db_url=settings.db_url,
        extracts_claim="spe-extracts", workspace_labels={"spe.io/role": "workspace"},
        hub_service="spe-hub:8081", egress_service="spe-egress:8090", netlock_image="spe/hub:0.1.0")


async def test_pod_mounts_the_current_extract_from_the_registry(settings, engine, registry, kubeconfig):  # noqa: F811
    result = provision(engine, settings, P1, "op")
    sp = spawner(settings, P1)
    await sp.load_user_options()
    pod = await api_json(await sp.get_pod_manifest())
    (nb,) = pod["spec"]["containers"]
    (data,) = [m for m in nb["volumeMounts"] if m["mountPath"] == "/data"]
    assert data["subPath"] == f"{P1}/{result.extract_version}" and data["readOnly"] is True
    assert (settings.extracts_dir / data["subPath"] / "manifest.json").is_file()


async def test_unprovisioned_permit_refused(settings, engine, registry, kubeconfig):  # noqa: F811
    sp = spawner(settings, P2, user="carol")
    with pytest.raises(Refused, match="no provisioned extract"):
        await sp.load_user_options()
    # a stranger is refused as a stranger: she learns nothing about the permit's extract
    with pytest.raises(Refused, match="bob is not a member of permit DEMO-2026-002"):
        await spawner(settings, P2, user="bob").load_user_options()
