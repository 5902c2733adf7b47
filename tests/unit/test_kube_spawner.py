"""PermitKubeSpawner builds the workspace pod from the permit (no cluster: a dummy kubeconfig)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from jupyterhub import orm

from hub.exceptions import Forbidden, Refused
from hub.spawner.kube import SPAWN_ID_ANNOTATION, check_subpath, is_spawned_pod, make_kube_overrides
from hub.spawner.spec import SpawnSettings, make_workspace_spec
from hub.audit.tables import audit_events
from hub.db import make_engine
from tests.kube_support import AUDIT_DB_URL, Hub, RegistrySpawner, User, kubeconfig, make_permit, make_spawner, pod_for  # noqa: F401


def container(pod, name="notebook"):
    return next(c for c in pod["spec"]["containers"] if c["name"] == name)


async def test_pod_mounts_only_its_extract_read_only(kubeconfig):
    _, pod = await pod_for(make_permit())
    nb = container(pod)
    mounts = {m["mountPath"]: m for m in nb["volumeMounts"]}
    data = mounts["/data"]
    assert data["readOnly"] is True and data["subPath"] == "p-diab-01/3"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    claim = volumes[data["name"]]["persistentVolumeClaim"]
    assert claim == {"claimName": "spe-extracts", "readOnly": True}
    # the work volume is the (permit, user) PVC, nothing else is a claim
    claims = sorted(v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]
                    if v.get("persistentVolumeClaim"))
    assert claims == ["spe-extracts", "spe-work-p-diab-01-bob"]
    assert not any(v.get("secret") or v.get("hostPath") for v in pod["spec"]["volumes"])


async def test_pod_is_locked_down(kubeconfig):
    sp, pod = await pod_for(make_permit())
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 1000
    nb = container(pod)
    sc = nb["securityContext"]
    assert sc["runAsUser"] == 1000 and sc["runAsNonRoot"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["metadata"]["name"] == "spe-bob-p-diab-01"
    assert sp.pvc_name == "spe-work-p-diab-01-bob"


async def test_resource_limits_come_from_the_permit(kubeconfig):
    _, pod = await pod_for(make_permit())
    resources = container(pod)["resources"]
    limits, requests = resources["limits"], resources["requests"]
    assert int(limits["memory"]) == 2 * 1024**3 and float(limits["cpu"]) == 1.5
    assert int(requests["memory"]) == 2 * 1024**3 and float(requests["cpu"]) == 0.15


async def test_labels_select_the_workspace_network_policy(kubeconfig):
    _, pod = await pod_for(make_permit())
    labels = pod["metadata"]["labels"]
    assert labels["spe.io/role"] == "workspace" and labels["spe.io/release"] == "spe"
    assert labels["spe.permit"] == "p-p-diab-01"
    env = {e["name"]: e.get("value") for e in container(pod)["env"]}
    assert env["SPE_PERMIT_ID"] == "p-diab-01" and env["SPE_DATA_DIR"] == "/data"
    assert env["JUPYTER_RUNTIME_DIR"].startswith("/tmp/")  # the root filesystem is read-only
    # the workspace client reaches the egress service's routes, under its JupyterHub prefix
    assert env["SPE_EGRESS_URL"] == "http://spe-egress:8090/services/egress/"


async def test_the_work_volume_carries_the_permit_the_lifecycle_deletes_it_by(kubeconfig):
    from hub.lifecycle_backends import permit_label

    sp, _ = await pod_for(make_permit())
    pvc = sp.get_pvc_manifest()
    assert pvc.metadata.name == "spe-work-p-diab-01-bob"
    assert pvc.metadata.labels["spe.permit"] == permit_label("p-diab-01") == "p-p-diab-01"
    assert pvc.metadata.labels["spe.user"] == "u-bob"


async def test_before_kubernetes_1_19_seccomp_is_an_annotation_not_a_field(kubeconfig):
    def fields(pod):
        spec = pod["spec"]
        contexts = [spec["securityContext"]] + [c["securityContext"] for c in spec["containers"] + spec["initContainers"]]
        return ["seccompProfile" in ctx for ctx in contexts]

    _, modern = await pod_for(make_permit())
    assert fields(modern) == [True, True, True] and "seccomp.security.alpha.kubernetes.io/pod" not in \
        modern["metadata"]["annotations"]
    _, old = await pod_for(make_permit(), seccomp_field=False)
    assert fields(old) == [False, False, False]
    assert old["metadata"]["annotations"]["seccomp.security.alpha.kubernetes.io/pod"] == "runtime/default"
    assert old["metadata"]["annotations"][SPAWN_ID_ANNOTATION]  # the spawn id stays beside it


async def test_init_container_locks_egress_with_only_net_admin_and_net_raw(kubeconfig):
    _, pod = await pod_for(make_permit())
    (init,) = pod["spec"]["initContainers"]
    assert init["name"] == "netlock" and init["image"] == "spe/hub:0.1.0"
    assert init["imagePullPolicy"] == "Never"
    sc = init["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]}
    assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
    script = init["command"][2]
    assert "':OUTPUT DROP [0:0]'" in script and "| iptables-restore -w\n" in script
    assert "-d 10.96.0.10/32 -p tcp --dport 8081 -j ACCEPT" in script
    assert "-d 10.96.0.11/32 -p tcp --dport 8090 -j ACCEPT" in script
    assert "--dport 53" not in script
    assert not init.get("env") and [m["mountPath"] for m in init["volumeMounts"]] == ["/run"]


async def test_hub_and_egress_names_resolve_without_dns(kubeconfig):
    _, pod = await pod_for(make_permit())
    assert pod["spec"]["hostAliases"] == [{"ip": "10.96.0.10", "hostnames": ["spe-hub"]},
                                          {"ip": "10.96.0.11", "hostnames": ["spe-egress"]}]


async def test_dns_allowed_only_to_cluster_resolver(kubeconfig):
    _, pod = await pod_for(make_permit(), allow_dns=True)
    script = pod["spec"]["initContainers"][0]["command"][2]
    assert "-d 10.96.0.2/32 -p udp --dport 53 -j ACCEPT" in script


async def test_one_pod_per_permit_and_user(kubeconfig):
    permit = make_permit()
    _, a = await pod_for(permit, username="alice")
    _, b = await pod_for(permit, username="bob")
    other = make_permit("p-other-02")
    _, c = await pod_for(other, username="bob")
    names = {a["metadata"]["name"], b["metadata"]["name"], c["metadata"]["name"]}
    assert len(names) == 3


@pytest.mark.parametrize("options, message", [
    ({"namespace": "kube-system"}, "refusing namespace"),
    ({"volumes": [{"name": "x", "hostPath": {"path": "/"}}]}, "refusing volumes"),
    ({"image": "evil:1"}, "refusing image"),
    ({"anything": 1}, "refusing anything"),
])
async def test_user_options_refused(kubeconfig, options, message):
    sp = make_spawner(make_permit(), user_options=options)
    with pytest.raises(Refused, match=message):
        await sp.load_user_options()
    assert not sp.volumes and not sp.init_containers  # nothing applied
    # and the refusal is in the audit trail, with its reason
    with make_engine(AUDIT_DB_URL).connect() as conn:
        last = conn.execute(sa.select(audit_events).order_by(audit_events.c.seq.desc()).limit(1)).mappings().one()
    assert (last["action"], last["outcome"], last["actor"]) == ("workspace.spawn", "refused", "bob")
    assert message in json.loads(last["detail"])["reason"]


async def test_permit_naming_escaping_extract_refused(kubeconfig):
    permit = make_permit()

    class Escaping(RegistrySpawner):
        def load_extract_relpath(self, permit):
            return f"{permit.id}/../p-other-02/1"

    RegistrySpawner.permits = {permit.id: permit}
    sp = Escaping(user=User("bob"), hub=Hub(), orm_spawner=orm.Spawner(name=permit.id), namespace="spe",
                  spe_db_url=AUDIT_DB_URL, extracts_claim="spe-extracts", hub_service="spe-hub:8081",
                  egress_service="spe-egress:8090", netlock_image="i:1")
    with pytest.raises(Forbidden, match="does not belong to permit"):
        await sp.load_user_options()


@pytest.mark.parametrize("relpath", ["../x/1", "/abs/1", "a/./b", "a//b", "a/b/..", "", "a\\..\\b"])
def test_subpath_checks(relpath):
    with pytest.raises(Forbidden, match="escapes"):
        check_subpath(relpath)


async def test_non_member_and_inactive_refused(kubeconfig):
    with pytest.raises(Refused, match="not a member"):
        await pod_for(make_permit(), username="mallory")
    with pytest.raises(Refused, match="suspended"):
        await pod_for(make_permit(status="suspended"))


async def test_unknown_permit_and_default_server_refused(kubeconfig):
    with pytest.raises(Forbidden, match="no permit"):
        await pod_for(make_permit(), server="p-unknown")
    with pytest.raises(Refused, match="server name must name the permit"):
        await pod_for(make_permit(), server="")


async def test_user_namespaces_refused(kubeconfig):
    with pytest.raises(Forbidden, match="hub's namespace only"):
        await pod_for(make_permit(), enable_user_namespaces=True)


def test_overrides_without_lock_have_no_init_container():
    spec = make_workspace_spec(make_permit(), "bob", "p-diab-01/3", SpawnSettings(image="w:1"))
    o = make_kube_overrides(spec, extracts_claim="c", workspace_labels={}, lock_script=None)
    assert o["init_containers"] == {} and "netlock-run" not in o["volumes"]
    assert o["volume_mounts"]["data"]["readOnly"] is True


async def test_each_manifest_carries_a_fresh_spawn_id(kubeconfig):
    sp, pod = await pod_for(make_permit())
    first = pod["metadata"]["annotations"][SPAWN_ID_ANNOTATION]
    assert first == sp._spe_spawn_id and len(first) == 32
    again = await sp.get_pod_manifest()
    assert again.metadata.annotations[SPAWN_ID_ANNOTATION] not in ("", first)


def _pod(spawn_id=None, ip="10.1.2.3", deleting=False):
    meta = {"name": "spe-bob-p", "uid": "u1", "annotations": {SPAWN_ID_ANNOTATION: spawn_id} if spawn_id else {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-23T17:00:00Z"
    return {"metadata": meta, "status": {"podIP": ip} if ip else {}}


@pytest.mark.parametrize("pod, expected", [
    (_pod("s1"), True),
    (_pod("s0"), False),  # the pod an earlier spawn left under the same name
    (_pod(None), False),  # a pod nobody tagged
    (_pod("s1", ip=None), False),  # no IP yet: nothing to probe
    (_pod("s1", deleting=True), False),
    (None, False),
])
def test_only_this_spawns_live_pod_is_probed(pod, expected):
    assert is_spawned_pod(pod, "s1") is expected
    assert is_spawned_pod(pod, "") is False  # before the manifest exists, no pod is ours


async def test_imports_and_the_permits_mirror_index_reach_the_pod_read_only(kubeconfig):
    from tests.kube_support import MIRROR_TOKENS

    permit = make_permit()
    _, pod = await pod_for(permit, mirror_service="spe-mirror:8110", inflow_claim="spe-inflow")
    nb = container(pod)
    mounts = {m["mountPath"]: m for m in nb["volumeMounts"]}
    imports = mounts["/imports"]
    assert imports["readOnly"] is True and imports["subPath"] == f"imports/{permit.id}"  # its own permit only
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes[imports["name"]]["persistentVolumeClaim"] == {"claimName": "spe-inflow", "readOnly": True}
    env = {e["name"]: e.get("value") for e in nb["env"]}
    assert env["PIP_INDEX_URL"] == f"http://spe-mirror:8110/{MIRROR_TOKENS[permit.id]}/simple/"
    assert env["PIP_TRUSTED_HOST"] == "spe-mirror:8110" and env["PIP_PREFIX"] == "/home/jovyan/work/.local"
    assert "PIP_NO_INDEX" not in env and env["SPE_IMPORTS_DIR"] == "/imports"
    # the mirror is one of the endpoints the egress lock allows, and its name resolves without DNS
    lock = " ".join(c["command"][-1] for c in pod["spec"]["initContainers"])
    assert "-d 10.96.0.12/32 -p tcp --dport 8110 -j ACCEPT" in lock
    aliases = {h: a["ip"] for a in pod["spec"]["hostAliases"] for h in a["hostnames"]}
    assert aliases["spe-mirror"] == "10.96.0.12"


async def test_without_a_mirror_pip_has_no_index_and_without_inflow_no_imports(kubeconfig):
    _, pod = await pod_for(make_permit())
    nb = container(pod)
    env = {e["name"]: e.get("value") for e in nb["env"]}
    assert env["PIP_NO_INDEX"] == "1" and "PIP_INDEX_URL" not in env
    assert "/imports" not in {m["mountPath"] for m in nb["volumeMounts"]}
