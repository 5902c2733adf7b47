"""Provision a permit on Kubernetes from an operator's machine: check the release, ensure the
extracts volume, run one provisioning Job (built by `hub.provision.kubejob`) and follow it.

`KubeApi` is the one door to the Kubernetes API (the `kubernetes` client with the operator's
own kubeconfig); it returns the API's JSON as plain dicts and turns API errors into
`hub.exceptions`. `provision_on_cluster()` is the sequence: nothing is created before every
input has been checked, and a Job that failed is kept (with its pod) for inspection.

This runs outside the cluster and has no registry access: the provisioning, and its audit
events, happen inside the Job (`spe permit provision`). Must not import egress.
"""

from __future__ import annotations

import logging
import secrets
import string
import time
from dataclasses import dataclass
from typing import Callable

from hub.exceptions import Conflict, Failure, Forbidden, InvalidInput, NotFound, Refused, SpeError
from hub.permits.model import parse_permit
from hub.provision import kubejob
from hub.yamlio import load_yaml_text

log = logging.getLogger("spe.kube")
POLL_SECONDS = 2.0
REQUEST_TIMEOUT_SECONDS = 30
LOG_TAIL_LINES = 60
WAIT_GRACE_SECONDS = 60  # beyond the Job's own deadline, for the Job controller to mark it failed
TTL_SECONDS_AFTER_FINISHED = 7 * 24 * 3600  # a kept Job goes away after a week (clusters ≥ 1.21)
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits


class KubeApi:
    """The narrow door to the Kubernetes API. Every call goes through `_call`."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None):
        from kubernetes import client, config

        try:
            self.api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
        except (config.ConfigException, FileNotFoundError, OSError) as err:
            raise InvalidInput(f"cannot load the kubeconfig: {err}", field="kubeconfig") from None
        self.core = client.CoreV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.batch = client.BatchV1Api(self.api_client)
        self.version = client.VersionApi(self.api_client)
        self._kubeconfig, self._context = kubeconfig, context

    def default_namespace(self) -> str:
        """The namespace of the kubeconfig context in use, else `default` (as kubectl does)."""
        from kubernetes import config

        try:
            contexts, active = config.list_kube_config_contexts(config_file=self._kubeconfig)
        except config.ConfigException:
            return "default"
        if self._context:
            active = next((c for c in contexts or [] if c.get("name") == self._context), None)
        return ((active or {}).get("context") or {}).get("namespace") or "default"

    def _call(self, what: str, fn, *args, **kwargs):
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT_SECONDS)  # never hang on a dead API server
        try:
            result = fn(*args, **kwargs)
        except ApiException as err:
            detail = _api_message(err)
            if err.status == 404:
                raise NotFound(f"{what}: not found{detail}") from None
            if err.status in (401, 403):
                raise Forbidden(f"{what}: your kubeconfig user is not allowed{detail}") from None
            if err.status in (400, 409, 422):
                raise Refused(f"{what}: the API server refused it{detail}") from None
            raise Failure(f"{what}: API server answered {err.status}{detail}") from None
        except (HTTPError, OSError) as err:
            raise Failure(f"{what}: cannot reach the Kubernetes API ({type(err).__name__})") from None
        return self.api_client.sanitize_for_serialization(result) if not isinstance(result, str) else result

    def server_version(self) -> tuple[str, str]:
        v = self._call("read the server version", self.version.get_code)
        return v.get("major", ""), v.get("minor", "")

    def read_deployment(self, namespace: str, name: str) -> dict:
        return self._call(f"deployment {namespace}/{name}", self.apps.read_namespaced_deployment, name, namespace)

    def read_pvc(self, namespace: str, name: str) -> dict | None:
        try:
            return self._call(f"PVC {namespace}/{name}", self.core.read_namespaced_persistent_volume_claim,
                              name, namespace)
        except NotFound:
            return None

    def create_pvc(self, body: dict) -> dict:
        m = body["metadata"]
        return self._call(f"create PVC {m['namespace']}/{m['name']}",
                          self.core.create_namespaced_persistent_volume_claim, m["namespace"], body)

    def create_configmap(self, body: dict) -> dict:
        m = body["metadata"]
        return self._call(f"create ConfigMap {m['namespace']}/{m['name']}", self.core.create_namespaced_config_map,
                          m["namespace"], body)

    def set_owner(self, namespace: str, configmap: str, owner: dict) -> None:
        self._call(f"set the owner of ConfigMap {namespace}/{configmap}", self.core.patch_namespaced_config_map,
                   configmap, namespace, {"metadata": {"ownerReferences": [owner]}})

    def delete_configmap(self, namespace: str, name: str) -> None:
        self._call(f"delete ConfigMap {namespace}/{name}", self.core.delete_namespaced_config_map, name, namespace)

    def create_job(self, body: dict) -> dict:
        m = body["metadata"]
        return self._call(f"create Job {m['namespace']}/{m['name']}", self.batch.create_namespaced_job,
                          m["namespace"], body)

    def read_job(self, namespace: str, name: str) -> dict:
        return self._call(f"Job {namespace}/{name}", self.batch.read_namespaced_job, name, namespace)

    def list_jobs(self, namespace: str, selector: str) -> list[dict]:
        return self._call(f"Jobs in {namespace}", self.batch.list_namespaced_job, namespace,
                          label_selector=selector).get("items") or []

    def delete_job(self, namespace: str, name: str) -> None:
        self._call(f"delete Job {namespace}/{name}", self.batch.delete_namespaced_job, name, namespace,
                   propagation_policy="Background")  # its pod and the owned ConfigMap go with it

    def job_pods(self, namespace: str, job: str) -> list[dict]:
        return self._call(f"pods of Job {namespace}/{job}", self.core.list_namespaced_pod, namespace,
                          label_selector=f"job-name={job}").get("items") or []

    def pod_log(self, namespace: str, pod: str, tail_lines: int = LOG_TAIL_LINES) -> str:
        return self._call(f"log of pod {namespace}/{pod}", self.core.read_namespaced_pod_log, pod, namespace,
                          tail_lines=tail_lines)


def _api_message(err) -> str:
    import json

    try:
        msg = json.loads(err.body or "{}").get("message")
    except (ValueError, AttributeError):
        msg = None
    return f" ({msg})" if msg else (f" ({err.reason})" if err.reason else "")


@dataclass(frozen=True)
class ProvisionRequest:
    permit_id: str
    namespace: str
    release: str = "spe"
    permit_text: str | None = None  # YAML of a permit to apply first
    timeout_seconds: int = kubejob.DEFAULT_DEADLINE_SECONDS
    keep_job: bool = False
    create_extracts_size: str | None = None
    storage_class: str | None = None
    actor: str = "operator"


@dataclass(frozen=True)
class ProvisionOutcome:
    job: str
    pod: str | None
    seconds: float
    log_tail: str
    kept: bool


def check_request(req: ProvisionRequest) -> None:
    """Every check that needs no cluster: a bad id, release or permit file creates nothing."""
    kubejob.check_permit_id(req.permit_id)
    kubejob.check_release(req.release)
    if req.timeout_seconds < 30:
        raise InvalidInput(f"at least 30 seconds, got {req.timeout_seconds}", field="timeout_seconds")
    if req.create_extracts_size:
        kubejob.parse_quantity_bytes(req.create_extracts_size)
    if req.permit_text is not None:
        permit = parse_permit(load_yaml_text(req.permit_text, "permit", "permit_file"))
        if permit.id != req.permit_id:
            raise InvalidInput(f"the permit file is for {permit.id!r}, not {req.permit_id!r}", field="permit_file")


def new_suffix() -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))


def ensure_extracts_volume(api: KubeApi, req: ProvisionRequest, hub_template: dict,
                           say: Callable[[str], None]) -> list[dict]:
    """The hub's extracts PVC (and state PVC, if any), creating the extracts PVC only when asked."""
    claim = kubejob.claim_name_of(hub_template, "extracts")
    if not claim:
        raise InvalidInput("the hub Deployment has no extracts PVC; is this an SPE chart?", field="deployment")
    pvc = api.read_pvc(req.namespace, claim)
    if pvc is None:
        if not req.create_extracts_size:
            raise NotFound(f"the extracts volume (PVC {req.namespace}/{claim}) does not exist: `helm upgrade` "
                           f"the release to recreate it, or pass --create-extracts-size SIZE [--storage-class NAME]")
        body = kubejob.make_extracts_pvc(claim, release=req.release, namespace=req.namespace,
                                         storage=req.create_extracts_size, storage_class=req.storage_class)
        pvc = api.create_pvc(body)
        say(f"created the extracts volume PVC {claim} ({req.create_extracts_size})")
    elif pvc.get("status", {}).get("phase") == "Lost":
        raise Failure(f"the extracts volume PVC {req.namespace}/{claim} is Lost (its PersistentVolume is gone)")
    pvcs = [pvc]
    state = kubejob.claim_name_of(hub_template, "state")
    if state:
        found = api.read_pvc(req.namespace, state)
        if found is None:
            raise NotFound(f"the registry state volume (PVC {req.namespace}/{state}) does not exist")
        pvcs.append(found)
    return pvcs


def provision_on_cluster(api: KubeApi, req: ProvisionRequest, say: Callable[[str], None],
                         poll_seconds: float = POLL_SECONDS) -> ProvisionOutcome:
    """Run one provisioning Job for `req.permit_id` and wait for it. Raises on failure, after
    logging the pod's log tail (the SPE log; `--verbose` shows it)."""
    check_request(req)
    deployment = kubejob.hub_deployment_name(req.release)
    try:
        hub = api.read_deployment(req.namespace, deployment)
    except NotFound:
        raise NotFound(f"no SPE release {req.release!r} in namespace {req.namespace!r} (deployment {deployment} "
                       f"not found); pass --namespace/--release of the installed chart") from None
    template = hub["spec"]["template"]
    running = kubejob.active_jobs(api.list_jobs(req.namespace, kubejob.permit_selector(req.release, req.permit_id)))
    if running:  # two provisionings of one permit would race for the next extract version
        raise Conflict(f"a provisioning of {req.permit_id} is still running: job {running[0]} "
                       f"(wait for it, or: kubectl -n {req.namespace} delete job {running[0]})")
    pvcs = ensure_extracts_volume(api, req, template, say)
    major, minor = api.server_version()
    suffix = new_suffix()
    name = kubejob.job_name(req.release, req.permit_id, suffix)
    job = kubejob.make_provision_job(
        template, req.permit_id, release=req.release, namespace=req.namespace, suffix=suffix, actor=req.actor,
        configmap_name=name if req.permit_text is not None else None, deadline_seconds=req.timeout_seconds,
        ttl_seconds_after_finished=TTL_SECONDS_AFTER_FINISHED if kubejob.ttl_supported(major, minor) else None,
        colocate_with_hub=kubejob.needs_colocation(pvcs))

    # The ConfigMap exists before the pod that mounts it; it is owned by the Job right after the
    # Job exists, and removed by hand if the Job could not be created.
    if req.permit_text is not None:
        api.create_configmap(kubejob.make_permit_configmap(name, req.permit_id, req.permit_text,
                                                           release=req.release, namespace=req.namespace))
        try:
            created = api.create_job(job)
        except BaseException:
            try:
                api.delete_configmap(req.namespace, name)
            except SpeError:
                log.warning("could not delete ConfigMap %s/%s after the Job failed to be created", req.namespace, name)
            raise
        try:
            api.set_owner(req.namespace, name, kubejob.make_owner_reference(created))
        except SpeError as err:  # the Job runs anyway; only the clean-up is left to the operator
            say(f"warning: ConfigMap {name} is not owned by the Job ({err}); delete it after the Job")
    else:
        api.create_job(job)
    say(f"job {name} created in namespace {req.namespace}")
    return follow_job(api, req, name, say, poll_seconds)


def follow_job(api: KubeApi, req: ProvisionRequest, name: str, say: Callable[[str], None],
               poll_seconds: float = POLL_SECONDS) -> ProvisionOutcome:
    started = time.monotonic()
    deadline = started + req.timeout_seconds + WAIT_GRACE_SECONDS
    last_phase = None
    try:
        while True:
            progress = kubejob.job_progress(api.read_job(req.namespace, name), api.job_pods(req.namespace, name))
            if progress.phase != last_phase:
                say(f"job {name}: {progress.phase}")
                last_phase = progress.phase
            if progress.done:
                break
            if time.monotonic() > deadline:
                progress = kubejob.Progress("timed out", done=True, failed=True, pod=progress.pod,
                                            reason=f"no result within {req.timeout_seconds + WAIT_GRACE_SECONDS} s")
                break
            time.sleep(poll_seconds)
    except KeyboardInterrupt:  # the Job does not depend on this process: say where to follow it
        say(f"stopped waiting; the Job goes on: kubectl -n {req.namespace} logs -f job/{name}")
        raise
    seconds = time.monotonic() - started
    tail = ""
    if progress.pod:
        try:
            tail = api.pod_log(req.namespace, progress.pod)
        except (NotFound, Refused, Failure) as err:  # a pod that never started has no log
            tail = f"(no log: {err})"
    where = f"kubectl -n {req.namespace} logs job/{name}"
    if progress.failed:
        log.debug("provisioning job %s/%s failed: %s; pod log tail:\n%s", req.namespace, name, progress.reason, tail)
        refused = kubejob.last_error_line(tail)
        if progress.exit_code == kubejob.EXIT_REFUSED and refused:
            raise Refused(f"provisioning {req.permit_id} was refused: {refused} (job {name} kept; log: {where})")
        raise Failure(f"provisioning job {name} failed: {progress.reason}"
                      + (f": {refused}" if refused else "") + f" (job kept; log: {where})")
    log.debug("provisioning job %s/%s succeeded; pod log tail:\n%s", req.namespace, name, tail)
    if not req.keep_job:
        api.delete_job(req.namespace, name)
    return ProvisionOutcome(job=name, pod=progress.pod, seconds=seconds, log_tail=tail, kept=req.keep_job)
