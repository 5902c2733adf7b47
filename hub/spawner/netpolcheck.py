"""Does this cluster enforce NetworkPolicy? The hub's start-up self-check on Kubernetes.

A network plugin that ignores NetworkPolicy (flannel alone, the CNI bridge, some managed
defaults) accepts the chart's workspace policy and then allows everything: the trap z2jh
deployments fall into. SPE's workspaces do not depend on it (the netlock init container locks
each pod's own network namespace), but an operator must know which of the two layers holds.

The check starts one short-lived probe pod that carries the workspace labels, so the
workspace NetworkPolicy selects it, but has NO netlock init container. From inside it connects
to two endpoints:

* the hub API, which the policy allows: the control (if it fails, the probe learns nothing);
* the Kubernetes API service, which the policy denies: reachable means "not enforced".

The probe reports through its exit code and termination message (no `pods/log` right needed).

`make_probe_pod()`, `verdict_of()` and `check_args()` are pure; `run_check()` does the
Kubernetes I/O through kubernetes_asyncio (the client KubeSpawner already uses);
`record_verdict()` writes the audit event that the metrics fold into
`spe_networkpolicy_enforced`. The hub runs the check at start-up; `spe kube netpol-check`
re-runs it. Must not import egress.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from hub.spawner.kube import restricted_container_context, seccomp_annotations, seccomp_profile

# A child of JupyterHub's own logger, so the verdict appears in the hub log with its format.
log = logging.getLogger("JupyterHub.spe")

ENFORCED, NOT_ENFORCED, UNKNOWN = "enforced", "not-enforced", "unknown"
EXIT_CODES = {0: ENFORCED, 2: NOT_ENFORCED, 3: UNKNOWN}
PROBE_LABEL = "spe.io/probe"
CONNECT_TIMEOUT_SECONDS = 5
CONTROL_RETRY_SECONDS = 60  # the hub may still be starting when the probe runs

TERMINATION_LOG = "/dev/termination-log"  # Kubernetes puts the file's content in the pod status
# Runs inside the probe with python3 from the workspace image;
# argv: allowed host, port, denied host, port, file for the result.
PROBE_SCRIPT = f"""
import json, socket, sys, time
def try_connect(host, port):
    try:
        socket.create_connection((host, int(port)), timeout={CONNECT_TIMEOUT_SECONDS}).close()
        return "open"
    except OSError as e:
        return type(e).__name__
deadline = time.monotonic() + {CONTROL_RETRY_SECONDS}
while True:
    control = try_connect(sys.argv[1], sys.argv[2])
    if control == "open" or time.monotonic() > deadline:
        break
    time.sleep(2)
denied = try_connect(sys.argv[3], sys.argv[4]) if control == "open" else "not tried"
with open(sys.argv[5], "w") as f:
    json.dump({{"allowed": control, "denied": denied}}, f)
sys.exit(3 if control != "open" else (2 if denied == "open" else 0))
"""

MESSAGES = {
    ENFORCED: "NetworkPolicy is enforced: the workspace policy blocked the probe (the netlock init container adds a second layer)",
    NOT_ENFORCED: "NetworkPolicy is NOT enforced by this cluster's network plugin: the probe reached the Kubernetes API "
                  "despite the workspace policy; workspace isolation rests on the netlock init container alone",
    UNKNOWN: "NetworkPolicy enforcement could not be determined",
}


@dataclass(frozen=True)
class Verdict:
    result: str  # ENFORCED | NOT_ENFORCED | UNKNOWN
    reason: str

    @property
    def message(self) -> str:
        return MESSAGES[self.result] + (f" ({self.reason})" if self.result == UNKNOWN else "")


def make_probe_pod(*, name: str, namespace: str, image: str, pull_policy: str, workspace_labels: dict,
                   allowed: tuple[str, int], denied: tuple[str, int], uid: int = 1000,
                   deadline_seconds: int = 180, seccomp: bool = True) -> dict:
    """The probe pod (pure): workspace labels, no netlock, nothing mounted, no token. `seccomp`
    False (Kubernetes before 1.19): RuntimeDefault by annotation, as for workspace pods."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {**workspace_labels, PROBE_LABEL: "networkpolicy"},
                     **({"annotations": seccomp_annotations(seccomp)} if not seccomp else {})},
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": deadline_seconds,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid,
                                **seccomp_profile(seccomp)},
            "containers": [{
                "name": "probe",
                "image": image,
                "imagePullPolicy": pull_policy,
                "command": ["python3", "-c", PROBE_SCRIPT, allowed[0], str(allowed[1]), denied[0], str(denied[1]),
                            TERMINATION_LOG],
                "securityContext": restricted_container_context(uid, seccomp),
                "resources": {"limits": {"cpu": "100m", "memory": "64Mi"},
                              "requests": {"cpu": "10m", "memory": "32Mi"}},
                "terminationMessagePolicy": "File",
            }],
        },
    }


def verdict_of(pod_status: dict | None) -> Verdict | None:
    """The verdict from a probe pod's status (a dict as the API returns it); None while it runs."""
    if not pod_status:
        return None
    phase = pod_status.get("phase")
    for cs in pod_status.get("containerStatuses") or pod_status.get("container_statuses") or []:
        state = cs.get("state") or {}
        done = state.get("terminated")
        if done:
            code = done.get("exitCode", done.get("exit_code"))
            detail = (done.get("message") or "").strip()
            result = EXIT_CODES.get(code)
            if result is None:
                return Verdict(UNKNOWN, f"probe exited with {code} ({done.get('reason') or 'no reason'})")
            if result == UNKNOWN:
                return Verdict(UNKNOWN, f"the probe could not reach the hub either: {_short(detail)}")
            return Verdict(result, _short(detail))
        waiting = (state.get("waiting") or {}).get("reason", "")
        if waiting in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError"):
            return Verdict(UNKNOWN, f"probe pod cannot start: {waiting}")
    if phase == "Failed":
        return Verdict(UNKNOWN, f"probe pod failed: {pod_status.get('reason') or 'no reason'}")
    return None


def _short(text: str, limit: int = 200) -> str:
    try:
        return json.dumps(json.loads(text), sort_keys=True)[:limit]
    except ValueError:
        return text[:limit]


async def run_check(*, namespace: str, image: str, pull_policy: str, workspace_labels: dict,
                    allowed: tuple[str, int], denied: tuple[str, int], timeout_seconds: float = 240,
                    poll_seconds: float = 2.0, seccomp: bool = True) -> Verdict:
    """Start the probe, wait for its verdict, delete it. In-cluster credentials (the hub's
    service account: create/get/delete pods in its own namespace)."""
    from kubernetes_asyncio import client, config

    if not denied[0]:
        raise ValueError("no Kubernetes API address to probe (KUBERNETES_SERVICE_HOST is not set)")
    config.load_incluster_config()
    # the probe gets no DNS (workspaces do not): it is given addresses, resolved here
    loop = asyncio.get_running_loop()
    allowed = ((await loop.getaddrinfo(allowed[0], allowed[1], type=socket.SOCK_STREAM))[0][4][0], allowed[1])
    name = f"spe-netpol-probe-{secrets.token_hex(4)}"
    pod = make_probe_pod(name=name, namespace=namespace, image=image, pull_policy=pull_policy,
                         workspace_labels=workspace_labels, allowed=allowed, denied=denied, seccomp=seccomp)
    async with client.ApiClient() as api_client:
        api = client.CoreV1Api(api_client)
        await api.create_namespaced_pod(namespace, pod)
        try:
            deadline = loop.time() + timeout_seconds
            while loop.time() < deadline:
                current = await api.read_namespaced_pod(name, namespace)
                verdict = verdict_of(api_client.sanitize_for_serialization(current.status))
                if verdict is not None:
                    return verdict
                await asyncio.sleep(poll_seconds)
            return Verdict(UNKNOWN, f"the probe pod gave no answer within {timeout_seconds:.0f} s")
        finally:
            try:
                await api.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
            except Exception as err:  # already gone: nothing to clean
                log.debug("probe pod %s: delete: %s", name, err)


def check_args(values: dict, *, db_url: str, environ: Mapping[str, str]) -> dict:
    """`self_check` keyword arguments from the chart's rendered values (the hub's values file)
    (pure). The hub config and `spe kube netpol-check` both build the check here, so a re-run
    probes exactly what the start-up check probed. `environ`: the hub pod's environment, whose
    KUBERNETES_SERVICE_HOST/PORT name the Kubernetes API service, the endpoint the policy must
    deny (an empty host makes the check report "unknown")."""
    ws = values["workspace"]
    kube_api = (environ.get("KUBERNETES_SERVICE_HOST", ""), int(environ.get("KUBERNETES_SERVICE_PORT", "443")))
    return {"db_url": db_url, "namespace": values["namespace"], "image": ws["image"],
            "pull_policy": ws["pullPolicy"], "workspace_labels": ws["labels"],
            "allowed": (values["names"]["hub"], 8081), "denied": kube_api,
            "netlock_enabled": ws["netlock"]["enabled"], "seccomp": ws.get("seccompField", True)}


def record_verdict(db_url: str, verdict: Verdict, *, namespace: str, netlock_enabled: bool,
                   actor: str = "hub", role: str = "system") -> None:
    """One audit event per check (`kube.networkpolicy_check`); metrics read it from the trail."""
    from hub import audit
    from hub.db import make_engine

    with make_engine(db_url).begin() as conn:
        audit.record(conn, actor=actor, role=role, action="kube.networkpolicy_check",
                     outcome="ok", detail={"result": verdict.result, "reason": verdict.reason,
                                           "namespace": namespace, "netlock": netlock_enabled})


async def self_check(*, db_url: str, namespace: str, image: str, pull_policy: str, workspace_labels: dict,
                     allowed: tuple[str, int], denied: tuple[str, int], netlock_enabled: bool,
                     actor: str = "hub", role: str = "system", seccomp: bool = True) -> Verdict:
    """The check: probe, log one line for the operator, audit (as `actor`: the hub at start-up,
    the operator on a re-run). Never raises."""
    try:
        verdict = await run_check(namespace=namespace, image=image, pull_policy=pull_policy,
                                  workspace_labels=workspace_labels, allowed=allowed, denied=denied,
                                  seccomp=seccomp)
    except Exception as err:  # the check must never stop the hub
        verdict = Verdict(UNKNOWN, f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}")
    level = logging.INFO if verdict.result == ENFORCED else logging.WARNING
    suffix = ""
    if verdict.result != ENFORCED and not netlock_enabled:
        level, suffix = logging.ERROR, "; the netlock init container is DISABLED: workspaces may reach the network"
    log.log(level, "SPE self-check: %s%s", verdict.message, suffix)
    try:
        await asyncio.to_thread(record_verdict, db_url, verdict, namespace=namespace, netlock_enabled=netlock_enabled,
                                actor=actor, role=role)
    except Exception as err:
        log.error("SPE self-check: could not record the result in the audit trail: %s", err)
    return verdict


_RUNNING: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks


def start_self_check(loop: asyncio.AbstractEventLoop, **kwargs) -> asyncio.Task:
    """Schedule `self_check(**kwargs)` on the hub's loop without waiting for it."""
    task = loop.create_task(self_check(**kwargs))
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return task
