"""The provisioning Job built from the hub pod template the chart really renders (real helm),
its permit ConfigMap, the extracts PVC, and the reading of a Job's progress (hub.provision.kubejob)."""

from __future__ import annotations

import pytest
import yaml

from hub.exceptions import InvalidInput
from hub.provision import kubejob
from hub.provision.kubeops import ProvisionRequest, check_request
from tests.conftest import EXAMPLES
from tests.helm.conftest import find, render, tools  # noqa: F401

PERMIT = "DEMO-2026-001"


@pytest.fixture(scope="module")
def hub_templates(tools):  # noqa: F811
    """{values file: the hub Deployment's pod template} for the chart as rendered by helm."""
    out = {}
    for name in ("default-values.yaml", "postgres-values.yaml", "sqlite-pvc-values.yaml", "kube-1.20-values.yaml"):
        (dep,) = find(render(tools, name), "Deployment", "spe-hub")
        out[name] = dep["spec"]["template"]
    return out


def build(template, **kw):
    args = dict(release="spe", namespace="spe", suffix="ab1c2", actor="olga", configmap_name="cm")
    args.update(kw)
    return kubejob.make_provision_job(template, PERMIT, **args)


def container(job):
    (c,) = job["spec"]["template"]["spec"]["containers"]
    return c


@pytest.mark.parametrize("values", ["default-values.yaml", "postgres-values.yaml", "sqlite-pvc-values.yaml",
                                    "kube-1.20-values.yaml"])
def test_job_is_derived_from_the_rendered_hub(hub_templates, values):
    template = hub_templates[values]
    (hub,) = [c for c in template["spec"]["containers"] if c["name"] == "hub"]
    job = build(template)
    pod = job["spec"]["template"]["spec"]
    c = container(job)
    assert c["image"] == hub["image"] and c["imagePullPolicy"] == hub["imagePullPolicy"]
    assert c["securityContext"] == hub["securityContext"] and c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["securityContext"]["runAsNonRoot"] and not c["securityContext"]["allowPrivilegeEscalation"]
    assert pod["securityContext"] == template["spec"]["securityContext"]
    # the registry URL exactly as the hub gets it (a Secret reference for PostgreSQL)
    (db,) = [e for e in c["env"] if e["name"] == "SPE_DB_URL"]
    assert db == next(e for e in hub["env"] if e["name"] == "SPE_DB_URL")
    if values == "postgres-values.yaml":
        assert db["valueFrom"]["secretKeyRef"] == {"name": "spe-registry-db", "key": "url"}
    # never the proxy token nor the hub's values Secret / config
    names = {e["name"] for e in c["env"]}
    assert names == {"SPE_HOME", "SPE_DB_URL", "HOME", "SPE_ACTOR"}
    assert {e["name"]: e.get("value") for e in c["env"]}["SPE_ACTOR"] == "olga"
    vols = {v["name"]: v for v in pod["volumes"]}
    assert set(vols) == {"home", "tmp", "keys", "extracts", "state", "permit"}
    hub_vols = {v["name"]: v for v in template["spec"]["volumes"]}
    for name in ("keys", "extracts", "state", "home", "tmp"):
        assert vols[name] == hub_vols[name]
    hub_mounts = {m["name"]: m for m in hub["volumeMounts"]}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    for name in ("keys", "extracts", "state", "home", "tmp"):
        assert mounts[name] == hub_mounts[name]
    assert mounts["permit"] == {"name": "permit", "mountPath": "/etc/spe-permit", "readOnly": True}
    assert vols["permit"]["configMap"]["name"] == "cm"
    # a batch pod: no token, no probes, no ports, no retry
    assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod
    assert pod["restartPolicy"] == "Never" and pod["enableServiceLinks"] is False
    assert not {"readinessProbe", "livenessProbe", "ports"} & set(c)
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] == 1800
    assert "ttlSecondsAfterFinished" not in job["spec"]
    # seccomp: the field from 1.19 (copied above), never the hub's other annotations
    annotations = job["spec"]["template"]["metadata"].get("annotations", {})
    assert not any(k.startswith(("prometheus.io", "checksum/")) for k in annotations)


def test_command_applies_then_provisions_with_memory_from_the_limit(hub_templates):
    job = build(hub_templates["default-values.yaml"])
    cmd = container(job)["command"]
    assert cmd[:2] == ["sh", "-ec"]
    assert cmd[2] == ('spe permit apply /etc/spe-permit/permit.yaml && '
                      'exec spe permit provision "$1" --memory-limit "$2"')
    # hub limit 1Gi -> 75 % for DuckDB, passed as a positional parameter, never inside the script
    assert cmd[3:] == ["spe-provision", PERMIT, f"{int(2**30 * 0.75) // 10**6}MB"]
    plain = build(hub_templates["default-values.yaml"], configmap_name=None)
    assert container(plain)["command"][2] == 'exec spe permit provision "$1" --memory-limit "$2"'
    assert "permit" not in {v["name"] for v in plain["spec"]["template"]["spec"]["volumes"]}


def test_names_labels_and_options(hub_templates):
    job = build(hub_templates["default-values.yaml"], ttl_seconds_after_finished=600, deadline_seconds=90)
    name = job["metadata"]["name"]
    assert name.startswith("spe-provision-demo-2026-001-") and name.endswith("-ab1c2") and len(name) <= 63
    labels = job["metadata"]["labels"]
    assert labels["spe.io/permit"] == PERMIT and labels["app.kubernetes.io/component"] == "provision"
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    assert job["spec"]["ttlSecondsAfterFinished"] == 600 and job["spec"]["activeDeadlineSeconds"] == 90
    affinity = job["spec"]["template"]["spec"]["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert affinity[0]["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "hub"
    loose = build(hub_templates["default-values.yaml"], colocate_with_hub=False)
    assert "affinity" not in loose["spec"]["template"]["spec"]


def test_kube_120_keeps_the_seccomp_it_was_rendered_with(tools):  # noqa: F811
    """Rendered for 1.18 (before the securityContext field) the hub carries the annotation; so does the Job."""
    (dep,) = find(render(tools, "default-values.yaml", "--kube-version", "1.18.0"), "Deployment", "spe-hub")
    job = build(dep["spec"]["template"])
    assert job["spec"]["template"]["metadata"]["annotations"] == {
        "seccomp.security.alpha.kubernetes.io/pod": "runtime/default"}
    assert "seccompProfile" not in container(job)["securityContext"]


@pytest.mark.parametrize("permit_id, ok", [
    ("DEMO-2026-001", True), ("a" * 63, True), ("x", False), ("-bad", False), ("a b", False),
    ("a;rm -rf /", False), ("a" * 64, False), ("ü-permit", False), ("p.1_v", True)])
def test_permit_id_is_checked_and_names_stay_dns_labels(permit_id, ok):
    if not ok:
        with pytest.raises(InvalidInput):
            kubejob.job_name("spe", permit_id, "abcde")
        return
    name = kubejob.job_name("a" * 53, permit_id, "abcde")
    assert len(name) <= 63 and name == name.lower() and name.endswith("-abcde")
    assert kubejob.job_name("spe", permit_id, "abcde") != kubejob.job_name("spe", permit_id[:-1] + "Z", "abcde")


@pytest.mark.parametrize("release", ["", "Spe", "a" * 54, "spe_1", "-spe"])
def test_bad_release_names(release):
    with pytest.raises(InvalidInput):
        kubejob.hub_deployment_name(release)


def test_label_value_falls_back_to_a_slug():
    assert kubejob.permit_label_value("P-1.") .startswith("p-p-1-")
    assert kubejob.permit_label_value("P-1") == "P-1"


def test_a_foreign_deployment_is_refused():
    foreign = {"spec": {"containers": [{"name": "web", "image": "nginx"}], "volumes": []}}
    with pytest.raises(InvalidInput, match="no container named 'hub'"):
        build(foreign)
    no_vols = {"spec": {"containers": [{"name": "hub", "image": "x", "env": [{"name": "SPE_DB_URL", "value": "u"}]}]}}
    with pytest.raises(InvalidInput, match="no keys, extracts volume"):
        build(no_vols)


@pytest.mark.parametrize("quantity, expected", [("1Gi", 2**30), ("512Mi", 512 * 2**20), ("2G", 2 * 10**9),
                                                ("1.5Gi", int(1.5 * 2**30)), ("100", 100)])
def test_quantities(quantity, expected):
    assert kubejob.parse_quantity_bytes(quantity) == expected


@pytest.mark.parametrize("quantity", ["", "1 GB", "lots", "-1Gi", "1e9"])
def test_bad_quantities(quantity):
    with pytest.raises(InvalidInput):
        kubejob.parse_quantity_bytes(quantity)


@pytest.mark.parametrize("major, minor, ok", [("1", "20", False), ("1", "21", True), ("1", "21+", True),
                                              ("1", "32", True), ("", "", False), ("2", "0", True)])
def test_ttl_gate(major, minor, ok):
    assert kubejob.ttl_supported(major, minor) is ok


def test_extracts_pvc_is_adoptable_by_helm():
    pvc = kubejob.make_extracts_pvc("spe-extracts", release="spe", namespace="ns", storage="5Gi", storage_class="fast")
    assert pvc["metadata"]["annotations"]["meta.helm.sh/release-name"] == "spe"
    assert pvc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert pvc["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}},
                           "storageClassName": "fast"}
    assert kubejob.needs_colocation([pvc]) is True
    assert kubejob.needs_colocation([{"spec": {"accessModes": ["ReadWriteMany"]}}]) is False


def test_configmap_is_bounded():
    cm = kubejob.make_permit_configmap("j", PERMIT, "id: x\n", release="spe", namespace="ns")
    assert cm["data"] == {"permit.yaml": "id: x\n"} and cm["metadata"]["labels"]["spe.io/permit"] == PERMIT
    with pytest.raises(InvalidInput, match="larger than"):
        kubejob.make_permit_configmap("j", PERMIT, "#" * (kubejob.MAX_PERMIT_FILE_BYTES + 1), release="spe",
                                      namespace="ns")
    ref = kubejob.make_owner_reference({"metadata": {"name": "j", "uid": "u-1"}})
    assert ref["kind"] == "Job" and ref["uid"] == "u-1"


# --- input checks before any cluster call ---

def demo_text():
    return (EXAMPLES / "demo-gibleed.yaml").read_text()


def test_request_checks_pass_for_the_demo_permit():
    check_request(ProvisionRequest(PERMIT, "ns", permit_text=demo_text()))


@pytest.mark.parametrize("change, message", [
    (dict(permit_id="OTHER-1"), "the permit file is for 'DEMO-2026-001', not 'OTHER-1'"),
    (dict(permit_text="id: [unclosed\n"), "invalid YAML at line"),
    (dict(permit_text="- a list\n"), "must be a YAML mapping"),
    (dict(permit_text=yaml.safe_dump({"id": PERMIT})), "permit:"),
    (dict(release="Bad_Release"), "Helm release name"),
    (dict(timeout_seconds=5), "at least 30 seconds"),
    (dict(create_extracts_size="big"), "Kubernetes quantity"),
    (dict(permit_id="no spaces"), "is not a permit id"),
])
def test_bad_requests_are_refused_locally(change, message):
    args = dict(permit_id=PERMIT, namespace="ns", permit_text=demo_text())
    args.update(change)
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[")):
        check_request(ProvisionRequest(**args))


# --- progress of a Job, from the API's JSON ---

def pod(phase="Pending", waiting=None, terminated=None, scheduled=None, name="p1"):
    status = {"phase": phase}
    if waiting or terminated:
        state = {"waiting": waiting} if waiting else {"terminated": terminated}
        status["containerStatuses"] = [{"name": "provision", "state": state}]
    if scheduled:
        status["conditions"] = [{"type": "PodScheduled", **scheduled}]
    return {"metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"}, "status": status}


JOB = {"spec": {"activeDeadlineSeconds": 60}, "status": {}}


def failed_job(reason="BackoffLimitExceeded", message="Job has reached the specified backoff limit"):
    return {"spec": {"activeDeadlineSeconds": 60},
            "status": {"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": reason,
                                                    "message": message}]}}


@pytest.mark.parametrize("job, pods, phase, done, failed, reason", [
    (JOB, [], "waiting for a pod", False, False, ""),
    (JOB, [pod()], "pending", False, False, ""),
    (JOB, [pod(waiting={"reason": "ContainerCreating"})], "pending: ContainerCreating", False, False, ""),
    (JOB, [pod(scheduled={"status": "False", "reason": "Unschedulable", "message": "0/1 nodes are available"})],
     "pending: Unschedulable: 0/1 nodes are available", False, False, ""),
    (JOB, [pod(waiting={"reason": "ErrImageNeverPull", "message": "image spe/hub:x is not present"})],
     "pending: ErrImageNeverPull", True, True,
     "the provisioning pod cannot start: ErrImageNeverPull (image spe/hub:x is not present)"),
    (JOB, [pod("Running")], "running", False, False, ""),
    ({"spec": {}, "status": {"succeeded": 1}}, [pod("Succeeded", terminated={"exitCode": 0})], "succeeded", True, False, ""),
    (failed_job(), [pod("Failed", terminated={"exitCode": 2, "reason": "Error"})], "failed", True, True,
     "the provisioning container ended with exit code 2 (Error)"),
    (failed_job(), [pod("Failed", terminated={"exitCode": 137, "reason": "OOMKilled"})], "failed", True, True,
     "the provisioning container ended with exit code 137 (OOMKilled)"),
    (failed_job("DeadlineExceeded", "Job was active longer than specified deadline"), [], "failed", True, True,
     "the Job exceeded its deadline of 60 s (DeadlineExceeded)"),
])
def test_job_progress(job, pods, phase, done, failed, reason):
    p = kubejob.job_progress(job, pods)
    assert (p.phase, p.done, p.failed, p.reason) == (phase, done, failed, reason)


def test_last_error_line():
    log = "provision X: planning\nspe: error: dataset: dataset 'eunomia' is not registered\n"
    assert kubejob.last_error_line(log) == "dataset: dataset 'eunomia' is not registered"
    assert kubejob.last_error_line("all good\n") is None
