"""The lifecycle service's backends (hub.lifecycle_backends) and the audit of culls under the
permit: the Kubernetes API is faked at its edge (the CoreV1Api object), our code is real."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from kubernetes.client.exceptions import ApiException

from hub.audit.tables import audit_events
from hub.hubapp.audit_log import permit_of_server
from hub.lifecycle import delete_permit_data
from hub.lifecycle_backends import KubeWorkVolumes, permit_label
from hub.naming import server_name_for
from hub.permits.store import PermitStore
from tests.conftest import EXAMPLES

PERMIT = "DEMO-2026-001"


class FakeCore:
    """CoreV1Api at the edge: PVCs by namespace with labels; label selectors `k=v`."""

    def __init__(self, claims: dict[str, tuple[str, dict]], vanish: set[str] = frozenset()):
        self.claims = dict(claims)  # name -> (namespace, labels)
        self.vanish = set(vanish)  # deleted by someone else between the list and the delete
        self.deleted: list[tuple[str, str]] = []

    def list_namespaced_persistent_volume_claim(self, namespace, label_selector):
        wanted = dict(part.split("=", 1) for part in label_selector.split(","))
        items = [SimpleNamespace(metadata=SimpleNamespace(name=name, labels=labels))
                 for name, (ns, labels) in sorted(self.claims.items())
                 if ns == namespace and wanted.items() <= labels.items()]
        return SimpleNamespace(items=items)

    def delete_namespaced_persistent_volume_claim(self, name, namespace):
        if name in self.vanish or self.claims.get(name, ("",))[0] != namespace:
            raise ApiException(status=404, reason="Not Found")
        del self.claims[name]
        self.deleted.append((namespace, name))


def test_kube_backend_deletes_only_this_permits_claims_in_its_namespace():
    mine, other = permit_label(PERMIT), permit_label("OTHER-1")
    core = FakeCore({
        "spe-work-demo-bob": ("spe", {"spe.permit": mine, "spe.user": "u-bob"}),
        "spe-work-demo-carol": ("spe", {"spe.permit": mine, "spe.user": "u-carol"}),
        "spe-work-other-bob": ("spe", {"spe.permit": other}),
        "spe-work-demo-elsewhere": ("team-b", {"spe.permit": mine}),  # another release's namespace
        "spe-state": ("spe", {}),
    }, vanish={"spe-work-demo-carol"})
    assert KubeWorkVolumes(core, "spe").delete_for_permit(PERMIT) == ["spe-work-demo-bob", "spe-work-demo-carol"]
    assert core.deleted == [("spe", "spe-work-demo-bob")]
    assert set(core.claims) == {"spe-work-demo-carol", "spe-work-other-bob", "spe-work-demo-elsewhere", "spe-state"}


def test_kube_backend_raises_what_is_not_a_missing_claim():
    class Forbidden(FakeCore):
        def delete_namespaced_persistent_volume_claim(self, name, namespace):
            raise ApiException(status=403, reason="Forbidden")

    core = Forbidden({"w": ("spe", {"spe.permit": permit_label(PERMIT)})})
    with pytest.raises(ApiException):
        KubeWorkVolumes(core, "spe").delete_for_permit(PERMIT)


def test_deleting_a_permits_data_through_the_kube_backend_is_audited(settings, engine, eunomia):
    PermitStore(engine).apply_file(EXAMPLES / "demo-gibleed.yaml", "op")
    core = FakeCore({"spe-work-demo-bob": ("spe", {"spe.permit": permit_label(PERMIT)})})
    delete_permit_data(settings, engine, PERMIT, volumes=KubeWorkVolumes(core, "spe"))
    with engine.connect() as conn:
        rows = conn.execute(sa.select(audit_events).where(
            audit_events.c.action == "workspace.volumes.delete")).mappings().all()
    assert [(r["permit_id"], json.loads(r["detail"])["volumes"]) for r in rows] == [(PERMIT, ["spe-work-demo-bob"])]
    # nothing left: a second round deletes and audits nothing
    delete_permit_data(settings, engine, PERMIT, volumes=KubeWorkVolumes(core, "spe"))
    with engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(audit_events).where(
            audit_events.c.action == "workspace.volumes.delete")).scalar()
    assert n == 1


def test_a_cull_is_filed_under_the_permit_not_the_server_name(engine, eunomia):
    PermitStore(engine).apply_file(EXAMPLES / "demo-gibleed.yaml", "op")
    server = server_name_for(PERMIT)
    assert server != PERMIT  # server names are lower-case slugs: the reason for the mapping
    assert permit_of_server(engine, server) == PERMIT
    assert permit_of_server(engine, "no-such-permit") is None
    assert permit_of_server(engine, "") is None


@pytest.mark.parametrize("argv, message", [
    (["--backend", "kube"], "--backend kube needs --namespace"),
    (["--checkpoint-every-seconds", "0"], "must be positive"),
    (["--verify-every-seconds", "-1", "--checkpoint-every-seconds", "5"], "must be positive"),
])
def test_lifecycle_refuses_bad_flags_in_one_line(argv, message, capsys):
    from hub.lifecycle import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().splitlines()[-1].count(message) == 1


def test_a_server_already_stopping_is_not_stopped_again():
    """A slow pod stop spans several lifecycle rounds: only servers running or starting are listed
    (so a stop is requested, and audited as `workspace.terminate`, once)."""
    from hub.lifecycle import HubApi, Running

    class PageApi(HubApi):  # the REST door answers one page, as JupyterHub does
        def _call(self, method, path):
            assert (method, path) == ("GET", "/users?state=active&offset=0&limit=200")
            return {"items": [{"name": "bob", "servers": {
                "": {"ready": True},  # the default server: never an SPE workspace
                "p-1": {"ready": True, "pending": None},
                "p-2": {"ready": False, "pending": "spawn"},
                "p-3": {"ready": False, "pending": "stop"}}}], "_pagination": {"next": None}}

    assert PageApi("http://hub/hub/api", "t").running_servers() == [Running("bob", "p-1"), Running("bob", "p-2")]
