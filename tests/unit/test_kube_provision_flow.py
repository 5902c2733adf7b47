"""The order of `provision_on_cluster` (hub.provision.kubeops) with an in-memory Kubernetes API:
a real subclass of the one door `KubeApi` at the outer edge, no cluster. What is created
when, what is left behind on each failure, and the one line the operator reads."""

from __future__ import annotations

import copy

import pytest

from hub.exceptions import Conflict, Failure, Forbidden, NotFound, Refused
from hub.provision.kubeops import KubeApi, ProvisionRequest, provision_on_cluster
from tests.conftest import EXAMPLES

PERMIT = "DEMO-2026-001"
HUB_TEMPLATE = {
    "metadata": {"labels": {"app.kubernetes.io/name": "spe", "app.kubernetes.io/instance": "spe",
                            "app.kubernetes.io/component": "hub"}},
    "spec": {"securityContext": {"runAsNonRoot": True},
             "containers": [{"name": "hub", "image": "spe/hub:1", "env": [{"name": "SPE_DB_URL", "value": "sqlite:////s/r.db"}],
                             "resources": {"limits": {"memory": "1Gi"}},
                             "volumeMounts": [{"name": "keys", "mountPath": "/srv/spe/keys"},
                                              {"name": "extracts", "mountPath": "/srv/spe/extracts"}]}],
             "volumes": [{"name": "keys", "secret": {"secretName": "k"}},
                         {"name": "extracts", "persistentVolumeClaim": {"claimName": "spe-extracts"}}]}}


class MemoryKubeApi(KubeApi):
    """The Kubernetes API as a dict of objects; each Job runs through `script` (pod, job) states."""

    def __init__(self, *, script=None, minor="20", refuse_job=None, has_pvc=True):
        self.objects: dict[tuple[str, str], dict] = {}
        self.calls: list[str] = []
        self.script = list(script or [("Running", {}), ("Succeeded", {"succeeded": 1})])
        self.minor = minor
        self.refuse_job = refuse_job
        self.log = "extract DEMO-2026-001/1: 10 persons\n"
        self.objects[("Deployment", "spe-hub")] = {"spec": {"template": copy.deepcopy(HUB_TEMPLATE)}}
        if has_pvc:
            self.objects[("PVC", "spe-extracts")] = {"spec": {"accessModes": ["ReadWriteOnce"]},
                                                      "status": {"phase": "Bound"}}

    def _get(self, kind, name, what):
        self.calls.append(f"get {kind}")
        if (kind, name) not in self.objects:
            raise NotFound(f"{what}: not found")
        return copy.deepcopy(self.objects[(kind, name)])

    def server_version(self):
        return "1", self.minor

    def read_deployment(self, namespace, name):
        return self._get("Deployment", name, f"deployment {namespace}/{name}")

    def read_pvc(self, namespace, name):
        try:
            return self._get("PVC", name, "pvc")
        except NotFound:
            return None

    def create_pvc(self, body):
        self.calls.append("create PVC")
        self.objects[("PVC", body["metadata"]["name"])] = body
        return body

    def create_configmap(self, body):
        self.calls.append("create ConfigMap")
        self.objects[("ConfigMap", body["metadata"]["name"])] = body
        return body

    def set_owner(self, namespace, configmap, owner):
        self.calls.append("own ConfigMap")
        self.objects[("ConfigMap", configmap)]["metadata"]["ownerReferences"] = [owner]

    def delete_configmap(self, namespace, name):
        self.calls.append("delete ConfigMap")
        del self.objects[("ConfigMap", name)]

    def create_job(self, body):
        self.calls.append("create Job")
        if self.refuse_job:
            raise self.refuse_job
        body = {**body, "metadata": {**body["metadata"], "uid": "uid-1"}, "status": {}}
        self.objects[("Job", body["metadata"]["name"])] = body
        return body

    def read_job(self, namespace, name):
        job = self._get("Job", name, "job")
        self.pod_phase, status = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        job["status"] = status
        return job

    def job_pods(self, namespace, job):
        phase = getattr(self, "pod_phase", "Pending")
        status = {"phase": phase}
        if phase in ("Succeeded", "Failed"):
            code = 0 if phase == "Succeeded" else self.exit_code
            status["containerStatuses"] = [{"state": {"terminated": {"exitCode": code, "reason": "Error"}}}]
        return [{"metadata": {"name": f"{job}-pod"}, "status": status}]

    def pod_log(self, namespace, pod, tail_lines=60):
        return self.log

    def list_jobs(self, namespace, selector):
        self.calls.append(f"list Jobs {selector}")
        return [copy.deepcopy(o) for (k, _), o in self.objects.items() if k == "Job"]

    def delete_job(self, namespace, name):
        self.calls.append("delete Job")
        del self.objects[("Job", name)]
        self.objects.pop(("ConfigMap", name), None)  # what the garbage collector does for an owned object


def request(**kw):
    args = dict(permit_id=PERMIT, namespace="spe", permit_text=(EXAMPLES / "demo-gibleed.yaml").read_text(),
                actor="olga")
    args.update(kw)
    return ProvisionRequest(**args)


def run(api, req):
    lines = []
    outcome = provision_on_cluster(api, req, lines.append, poll_seconds=0)
    return outcome, lines


def kinds(api):
    return sorted(k for k, _ in api.objects)


def test_success_creates_configmap_then_job_then_owns_it_and_deletes_the_job():
    api = MemoryKubeApi()
    outcome, lines = run(api, request())
    assert [c for c in api.calls if not c.startswith(("get", "list"))] == [
        "create ConfigMap", "create Job", "own ConfigMap", "delete Job"]
    assert [line.split(": ", 1)[1] for line in lines[1:]] == ["running", "succeeded"]
    assert lines[0] == f"job {outcome.job} created in namespace spe"
    assert kinds(api) == ["Deployment", "PVC"]  # Job and its ConfigMap gone
    assert outcome.log_tail.startswith("extract DEMO-2026-001/1") and not outcome.kept


def test_keep_job_keeps_the_job_and_its_owned_configmap():
    api = MemoryKubeApi()
    outcome, _ = run(api, request(keep_job=True))
    assert kinds(api) == ["ConfigMap", "Deployment", "Job", "PVC"]
    cm = api.objects[("ConfigMap", outcome.job)]
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    job = api.objects[("Job", outcome.job)]
    assert "ttlSecondsAfterFinished" not in job["spec"]  # 1.20
    assert job["spec"]["template"]["spec"]["affinity"]  # a ReadWriteOnce extracts volume


def test_ttl_on_newer_clusters_and_no_configmap_without_a_permit_file():
    api = MemoryKubeApi(minor="27")
    outcome, _ = run(api, request(keep_job=True, permit_text=None))
    assert kinds(api) == ["Deployment", "Job", "PVC"]
    assert api.objects[("Job", outcome.job)]["spec"]["ttlSecondsAfterFinished"] == 7 * 24 * 3600


def test_no_release_creates_nothing():
    api = MemoryKubeApi()
    with pytest.raises(NotFound, match="no SPE release 'other' in namespace 'spe'"):
        run(api, request(release="other"))
    assert kinds(api) == ["Deployment", "PVC"] and "create ConfigMap" not in api.calls


def test_missing_extracts_volume_is_an_error_unless_its_creation_is_asked():
    api = MemoryKubeApi(has_pvc=False)
    with pytest.raises(NotFound, match="PVC spe/spe-extracts\\) does not exist.*--create-extracts-size"):
        run(api, request())
    assert kinds(api) == ["Deployment"]
    outcome, lines = run(api, request(create_extracts_size="5Gi", storage_class="local-path"))
    assert "created the extracts volume PVC spe-extracts (5Gi)" in lines[0]
    pvc = api.objects[("PVC", "spe-extracts")]
    assert pvc["spec"]["storageClassName"] == "local-path"


def test_configmap_is_removed_when_the_job_is_refused():
    api = MemoryKubeApi(refuse_job=Forbidden("create Job spe/x: your kubeconfig user is not allowed"))
    with pytest.raises(Forbidden):
        run(api, request())
    assert kinds(api) == ["Deployment", "PVC"] and api.calls[-1] == "delete ConfigMap"


def test_refusal_inside_the_job_is_one_line_with_the_reason_and_the_job_is_kept():
    api = MemoryKubeApi(script=[("Running", {}), ("Failed", {"failed": 1, "conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]})])
    api.exit_code = 2
    api.log = "provision x\nspe: error: no dataset named 'nosuch' is registered (spe dataset list)\n"
    with pytest.raises(Refused) as err:
        run(api, request())
    message = str(err.value)
    assert message.startswith(f"provisioning {PERMIT} was refused: no dataset named 'nosuch' is registered")
    assert "kubectl -n spe logs job/spe-provision-demo-2026-001-" in message and "\n" not in message
    assert "Job" in kinds(api) and "delete Job" not in api.calls


def test_a_system_failure_names_the_reason_and_the_log():
    api = MemoryKubeApi(script=[("Failed", {"failed": 1, "conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]})])
    api.exit_code = 137
    api.log = "Killed\n"
    with pytest.raises(Failure, match=r"failed: the provisioning container ended with exit code 137 \(Error\) "
                                      r"\(job kept; log: kubectl -n spe logs job/"):
        run(api, request())


def test_cli_bad_input_is_one_line_and_touches_no_registry(tmp_path, capsys):
    """Checked before any kubeconfig is read; the operator's machine has no registry to audit in."""
    from hub.cli import main

    other = tmp_path / "other.yaml"
    other.write_text((EXAMPLES / "demo-gibleed.yaml").read_text().replace(f"id: {PERMIT}", "id: OTHER-1"))
    home = tmp_path / "home"
    code = main(["--home", str(home), "kube", "provision", PERMIT, "--permit-file", str(other),
                 "--kubeconfig", str(tmp_path / "absent")])
    err = capsys.readouterr().err
    assert code == 2 and err == "spe: error: permit_file: the permit file is for 'OTHER-1', not 'DEMO-2026-001'\n"
    code = main(["--home", str(home), "kube", "provision", PERMIT, "--kubeconfig", str(tmp_path / "absent")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("spe: error: kubeconfig: cannot load the kubeconfig") and err.count("\n") == 1
    assert not (home / "registry.db").exists()


def test_one_provisioning_per_permit_at_a_time():
    api = MemoryKubeApi()
    api.objects[("Job", "spe-provision-demo-old")] = {"metadata": {"name": "spe-provision-demo-old"},
                                                      "status": {"active": 1}}
    with pytest.raises(Conflict, match="a provisioning of DEMO-2026-001 is still running: job spe-provision-demo-old"):
        run(api, request())
    assert "create ConfigMap" not in api.calls
    assert "list Jobs app.kubernetes.io/instance=spe,app.kubernetes.io/component=provision,spe.io/permit=DEMO-2026-001" \
        in api.calls
    api.objects[("Job", "spe-provision-demo-old")]["status"] = {"failed": 1, "conditions": [
        {"type": "Failed", "status": "True"}]}
    outcome, _ = run(api, request())  # a finished (kept) Job does not block
    assert outcome.job != "spe-provision-demo-old"
