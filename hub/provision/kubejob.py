"""Pure builders for provisioning on Kubernetes: the Job, its permit ConfigMap, the extracts PVC,
and the reading of a Job's progress. Plain dicts in, plain dicts out (the API's JSON shape).

The provisioning pod is *derived* from the hub Deployment's pod template as the cluster
serves it, so it runs the same image with the same registry URL, key store and extracts volume
as the hub, under the same restricted securityContext. What it takes from the hub is an
allow-list (volumes, environment): a volume or variable added to the hub later (a Secret with
the proxy token, say) does not leak into the Job by default — fail closed.

No I/O here and no `kubernetes` import: `hub.provision.kubeops` talks to the API. Must not
import egress.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

from hub.exceptions import InvalidInput
from hub.naming import safe_slug

HUB_CONTAINER = "hub"
# Volumes of the hub pod the provisioning pod needs: writable SPE_HOME (spe.log), scratch, the
# pseudonym keys, the extracts it writes and the SQLite state. Never the hub's config or values
# Secret (proxy token, traitlets): the Job does not need them.
PROVISION_VOLUMES = ("home", "tmp", "keys", "extracts", "state")
REQUIRED_VOLUMES = ("keys", "extracts")
# Environment taken from the hub container; SPE_DB_URL may come from a Secret (valueFrom).
PROVISION_ENV = ("SPE_HOME", "SPE_DB_URL", "HOME")
PERMIT_VOLUME = "permit"
PERMIT_DIR = "/etc/spe-permit"
PERMIT_KEY = "permit.yaml"
PERMIT_LABEL = "spe.io/permit"
COMPONENT = "provision"
# The seccomp annotation the chart sets on clusters older than 1.19 (before the field).
SECCOMP_ANNOTATIONS = ("seccomp.security.alpha.kubernetes.io/pod",)
MAX_PERMIT_FILE_BYTES = 256 * 1024  # a ConfigMap holds at most 1 MiB; a permit is a few KiB
DUCKDB_MEMORY_SHARE = 0.75  # of the container memory limit: DuckDB plus Python must fit under it
DEFAULT_DEADLINE_SECONDS = 1800

_PERMIT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,62}$")  # = the permit schema's id pattern
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$")  # helm release names: ≤ 53
_SUFFIX = re.compile(r"^[a-z0-9]{1,8}$")
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$")
_UNITS = {None: 1, "m": 0.001, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}

# A pod waiting for one of these will not get better by waiting: fail at once, not at the deadline.
FATAL_WAITING_REASONS = frozenset({"ErrImageNeverPull", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
                                   "CreateContainerConfigError", "CreateContainerError"})
EXIT_REFUSED = 2  # `spe` exits 2 for a refusal (hub.exceptions.Refused): the permit, not the system


def check_permit_id(permit_id: str) -> str:
    if not isinstance(permit_id, str) or not _PERMIT_ID.match(permit_id):
        raise InvalidInput(f"{permit_id!r} is not a permit id (letters, digits, '.', '_', '-'; 2-63 characters)",
                           field="permit_id")
    return permit_id


def check_release(release: str) -> str:
    if not _DNS_LABEL.match(release or ""):
        raise InvalidInput(f"{release!r} is not a Helm release name (lower-case DNS label, at most 53 characters)",
                           field="release")
    return release


def hub_deployment_name(release: str) -> str:
    return f"{check_release(release)}-hub"


def job_name(release: str, permit_id: str, suffix: str) -> str:
    """`<release>-provision-<permit slug>-<suffix>`, ≤ 63 characters (the pod's `job-name` label)."""
    if not _SUFFIX.match(suffix):
        raise ValueError(f"job name suffix must be 1-8 of [a-z0-9], got {suffix!r}")
    stem = safe_slug(check_permit_id(permit_id), prefix=f"{check_release(release)}-provision",
                     max_length=63 - len(suffix) - 1)
    return f"{stem}-{suffix}"


def permit_label_value(permit_id: str) -> str:
    """The permit id itself where it is a valid label value (it nearly always is), else its slug."""
    return permit_id if _LABEL_VALUE.match(permit_id) else safe_slug(permit_id, prefix="p")


def parse_quantity_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (`1Gi`, `512M`, `1e9` not supported) in bytes."""
    m = _QUANTITY.match(str(quantity).strip())
    if not m:
        raise InvalidInput(f"{quantity!r} is not a Kubernetes quantity like 512Mi or 2Gi", field="memory")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def duckdb_memory_limit(container_resources: dict) -> str | None:
    """DuckDB's `memory_limit` for the container's memory limit, or None (provisioning's default)."""
    limit = (container_resources or {}).get("limits", {}).get("memory")
    if not limit:
        return None
    return f"{max(64, int(parse_quantity_bytes(limit) * DUCKDB_MEMORY_SHARE) // 10**6)}MB"


def labels_for(release: str, permit_id: str) -> dict:
    return {"app.kubernetes.io/name": "spe", "app.kubernetes.io/instance": release,
            "app.kubernetes.io/component": COMPONENT, PERMIT_LABEL: permit_label_value(permit_id)}


def _hub_container(pod_template: dict) -> dict:
    containers = pod_template.get("spec", {}).get("containers") or []
    for c in containers:
        if c.get("name") == HUB_CONTAINER:
            return c
    raise InvalidInput(f"the hub Deployment's pod has no container named {HUB_CONTAINER!r} "
                       f"(found {[c.get('name') for c in containers]}); is this an SPE chart?", field="deployment")


def make_provision_command(permit_id: str, *, with_permit_file: bool, memory_limit: str | None) -> list[str]:
    """`spe permit apply` (if a file is given) then `spe permit provision`, values passed as
    positional shell parameters so no input is ever parsed as shell code."""
    check_permit_id(permit_id)
    provision = 'spe permit provision "$1"' + (' --memory-limit "$2"' if memory_limit else "")
    script = (f'spe permit apply {PERMIT_DIR}/{PERMIT_KEY} && ' if with_permit_file else "") + "exec " + provision
    return ["sh", "-ec", script, "spe-provision", permit_id, *([memory_limit] if memory_limit else [])]


def make_provision_job(hub_pod_template: dict, permit_id: str, *, release: str, namespace: str, suffix: str,
                       actor: str, configmap_name: str | None = None,
                       deadline_seconds: int = DEFAULT_DEADLINE_SECONDS,
                       ttl_seconds_after_finished: int | None = None, colocate_with_hub: bool = True) -> dict:
    """The batch/v1 Job that provisions `permit_id`, derived from the hub pod template.

    `configmap_name`: a ConfigMap (see make_permit_configmap) whose permit.yaml is applied
    first. `ttl_seconds_after_finished`: None on clusters where the field is not served (1.20
    has it only behind an alpha gate; the API server would drop it silently). `colocate_with_hub`
    adds a pod affinity to the hub pod, needed while the extracts or state volume is
    ReadWriteOnce (a second node could not mount it).
    """
    check_permit_id(permit_id)
    if not isinstance(deadline_seconds, int) or deadline_seconds < 1:
        raise InvalidInput(f"must be a positive number of seconds, got {deadline_seconds!r}", field="timeout_seconds")
    hub_spec = hub_pod_template.get("spec", {})
    hub = _hub_container(hub_pod_template)

    volumes = {v["name"]: v for v in hub_spec.get("volumes") or []}
    missing = [n for n in REQUIRED_VOLUMES if n not in volumes]
    if missing:
        raise InvalidInput(f"the hub Deployment has no {', '.join(missing)} volume; is this an SPE chart?",
                           field="deployment")
    mounts = [copy.deepcopy(m) for m in hub.get("volumeMounts") or [] if m.get("name") in PROVISION_VOLUMES]
    used = {m["name"] for m in mounts}
    pod_volumes = [copy.deepcopy(volumes[n]) for n in volumes if n in used]

    env = [copy.deepcopy(e) for e in hub.get("env") or [] if e.get("name") in PROVISION_ENV]
    if "SPE_DB_URL" not in {e["name"] for e in env}:
        raise InvalidInput("the hub container has no SPE_DB_URL; is this an SPE chart?", field="deployment")
    env.append({"name": "SPE_ACTOR", "value": actor})  # the audit events inside the Job name the operator

    if configmap_name:
        pod_volumes.append({"name": PERMIT_VOLUME, "configMap": {"name": configmap_name,
                                                                 "items": [{"key": PERMIT_KEY, "path": PERMIT_KEY}]}})
        mounts.append({"name": PERMIT_VOLUME, "mountPath": PERMIT_DIR, "readOnly": True})

    resources = copy.deepcopy(hub.get("resources") or {})
    container = {
        "name": COMPONENT,
        "image": hub["image"],
        "command": make_provision_command(permit_id, with_permit_file=bool(configmap_name),
                                          memory_limit=duckdb_memory_limit(resources)),
        "env": env,
        "resources": resources,
        "securityContext": copy.deepcopy(hub.get("securityContext") or {}),
        "volumeMounts": mounts,
    }
    for key in ("imagePullPolicy", "workingDir"):
        if key in hub:
            container[key] = hub[key]
    # no ports, no probes: a batch pod that nothing connects to

    labels = labels_for(release, permit_id)
    annotations = {k: v for k, v in (hub_pod_template.get("metadata", {}).get("annotations") or {}).items()
                   if k in SECCOMP_ANNOTATIONS}
    pod_spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,  # provisioning needs the registry, not the Kubernetes API
        "enableServiceLinks": False,
        "securityContext": copy.deepcopy(hub_spec.get("securityContext") or {}),
        "containers": [container],
        "volumes": pod_volumes,
    }
    for key in ("imagePullSecrets", "nodeSelector", "tolerations", "priorityClassName"):
        if hub_spec.get(key):
            pod_spec[key] = copy.deepcopy(hub_spec[key])
    hub_labels = hub_pod_template.get("metadata", {}).get("labels") or {}
    if colocate_with_hub:
        selector = {k: hub_labels[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                                               "app.kubernetes.io/component") if k in hub_labels}
        if selector:
            pod_spec["affinity"] = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": selector}, "topologyKey": "kubernetes.io/hostname"}]}}

    job_spec = {
        "backoffLimit": 0,  # a failed provisioning is looked at, not retried blindly
        "completions": 1,
        "parallelism": 1,
        "activeDeadlineSeconds": deadline_seconds,
        "template": {"metadata": {"labels": dict(labels), **({"annotations": annotations} if annotations else {})},
                     "spec": pod_spec},
    }
    if ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = ttl_seconds_after_finished
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": job_name(release, permit_id, suffix), "namespace": namespace, "labels": labels},
            "spec": job_spec}


def make_permit_configmap(job_name_: str, permit_id: str, permit_text: str, *, release: str, namespace: str) -> dict:
    """The ConfigMap carrying the permit YAML into the Job (owned by the Job once it exists)."""
    if len(permit_text.encode("utf-8")) > MAX_PERMIT_FILE_BYTES:
        raise InvalidInput(f"permit file is larger than {MAX_PERMIT_FILE_BYTES} bytes", field="permit_file")
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": job_name_, "namespace": namespace, "labels": labels_for(release, permit_id)},
            "data": {PERMIT_KEY: permit_text}}


def make_owner_reference(job: dict) -> dict:
    """An ownerReference to a created Job: deleting the Job (or its TTL) deletes the ConfigMap."""
    return {"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"], "uid": job["metadata"]["uid"],
            "blockOwnerDeletion": False, "controller": False}


def make_extracts_pvc(claim_name: str, *, release: str, namespace: str, storage: str,
                      storage_class: str | None = None, access_modes: tuple[str, ...] = ("ReadWriteOnce",)) -> dict:
    """The extracts PVC as the chart would create it, with Helm's ownership metadata so that the
    next `helm upgrade` adopts it instead of failing; kept on uninstall like the chart's."""
    parse_quantity_bytes(storage)
    spec = {"accessModes": list(access_modes), "resources": {"requests": {"storage": storage}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim_name, "namespace": namespace,
                         "labels": {"app.kubernetes.io/name": "spe", "app.kubernetes.io/instance": release,
                                    "app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/component": "extracts"},
                         "annotations": {"helm.sh/resource-policy": "keep", "meta.helm.sh/release-name": release,
                                         "meta.helm.sh/release-namespace": namespace}},
            "spec": spec}


def claim_name_of(pod_template: dict, volume: str) -> str | None:
    for v in pod_template.get("spec", {}).get("volumes") or []:
        if v.get("name") == volume:
            return (v.get("persistentVolumeClaim") or {}).get("claimName")
    return None


def needs_colocation(pvcs: list[dict]) -> bool:
    """True if any of the hub's claims the Job shares can be mounted on one node only."""
    return any("ReadWriteMany" not in (p.get("spec", {}).get("accessModes") or []) for p in pvcs)


def ttl_supported(major: str, minor: str) -> bool:
    """ttlSecondsAfterFinished is served by default from Kubernetes 1.21 (beta; alpha gate before)."""
    try:
        return (int(major), int(re.sub(r"\D.*$", "", minor) or 0)) >= (1, 21)
    except ValueError:
        return False


@dataclass(frozen=True)
class Progress:
    """Where a provisioning Job stands: `phase` is one short line; `failed` with a `reason`."""

    phase: str
    done: bool = False
    failed: bool = False
    reason: str = ""
    exit_code: int | None = None
    pod: str | None = None


def _condition(obj: dict, kind: str) -> dict | None:
    for c in obj.get("status", {}).get("conditions") or []:
        if c.get("type") == kind and c.get("status") == "True":
            return c
    return None


def _terminated(pod: dict) -> dict | None:
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        t = (cs.get("state") or {}).get("terminated")
        if t:
            return t
    return None


def job_progress(job: dict, pods: list[dict]) -> Progress:
    """Read the Job and its pods (API JSON) into one Progress; a pure function of the two."""
    pods = sorted(pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp") or "")
    pod = pods[-1] if pods else None
    name = pod["metadata"]["name"] if pod else None
    term = _terminated(pod) if pod else None
    exit_code = term.get("exitCode") if term else None
    if (job.get("status", {}).get("succeeded") or 0) >= 1 or _condition(job, "Complete"):
        return Progress("succeeded", done=True, exit_code=exit_code, pod=name)
    failed = _condition(job, "Failed")
    if failed or (job.get("status", {}).get("failed") or 0) >= 1:
        if term:
            why = term.get("reason") or "Error"
            reason = f"the provisioning container ended with exit code {exit_code} ({why})"
        else:
            reason = ((failed or {}).get("reason") or "Failed") + (f": {failed['message']}" if (failed or {}).get("message") else "")
        if failed and failed.get("reason") == "DeadlineExceeded":
            reason = f"the Job exceeded its deadline of {job['spec'].get('activeDeadlineSeconds')} s (DeadlineExceeded)"
        return Progress("failed", done=True, failed=True, reason=reason, exit_code=exit_code, pod=name)
    if pod is None:
        return Progress("waiting for a pod")
    phase = pod.get("status", {}).get("phase") or "Pending"
    if phase == "Pending":
        for cs in pod.get("status", {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            why = waiting.get("reason")
            if why in FATAL_WAITING_REASONS:
                msg = waiting.get("message") or ""
                return Progress(f"pending: {why}", done=True, failed=True, pod=name,
                                reason=f"the provisioning pod cannot start: {why}" + (f" ({msg})" if msg else ""))
            if why:
                return Progress(f"pending: {why}", pod=name)
        sched = next((c for c in pod.get("status", {}).get("conditions") or [] if c.get("type") == "PodScheduled"), None)
        if sched and sched.get("status") == "False":
            return Progress(f"pending: {sched.get('reason') or 'unscheduled'}: {sched.get('message') or ''}".rstrip(": "),
                            pod=name)
        return Progress("pending", pod=name)
    return Progress(phase.lower(), pod=name)


def permit_selector(release: str, permit_id: str) -> str:
    """Label selector of the provisioning Jobs of one permit in one release."""
    labels = labels_for(release, permit_id)
    return ",".join(f"{k}={labels[k]}" for k in ("app.kubernetes.io/instance", "app.kubernetes.io/component",
                                                 PERMIT_LABEL))


def active_jobs(jobs: list[dict]) -> list[str]:
    """Names of the Jobs (API JSON) that have not finished: one provisioning per permit at a time."""
    def finished(job: dict) -> bool:
        return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                   for c in job.get("status", {}).get("conditions") or [])

    return sorted(j["metadata"]["name"] for j in jobs if not finished(j))


def last_error_line(log_text: str) -> str | None:
    """The `spe: error: …` / `spe: failed: …` line the CLI inside the Job printed, if any."""
    for line in reversed((log_text or "").splitlines()):
        if line.startswith(("spe: error:", "spe: failed:")):
            return line.split(":", 2)[2].strip()
    return None
