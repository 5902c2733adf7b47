"""PermitKubeSpawner: a KubeSpawner whose pod is built from a permit, for SPE on Kubernetes.

One pod per (permit, user) named server, named for the permit (hub.naming). The pod gets only
that permit's extract (a read-only subPath `<permit>/<version>` of the extracts PVC) at /data,
only that permit's approved imports (a read-only subPath `imports/<permit>` of the inflow PVC,
which the egress service writes) at /imports, pip pointed at the permit's index of the package
mirror Service, a per-(permit, user) work PVC, the permit's resource limits, the labels the chart's workspace
NetworkPolicy selects, no service-account token, and an init container that locks the pod's
network namespace with iptables (hub.spawner.netlock) so isolation holds even where the
network plugin ignores NetworkPolicy. Like the Docker spawner, `start()` returns only when the
server answers (hub.spawner.readiness), and spawns, refusals and stops are audited.

`make_kube_overrides()` is pure (spec in, KubeSpawner trait values out); the spawner class only
gathers inputs (registry, extracts directory, DNS) through its three `load_*`/`resolve_*` doors.
Must not import egress or docker.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from pathlib import Path, PurePosixPath

from kubespawner import KubeSpawner
from tornado.httpclient import AsyncHTTPClient
from traitlets import Bool, Dict, Float, Unicode

from hub.exceptions import Forbidden, InvalidInput, NotFound, Refused
from hub.hubapp.config import EGRESS_PREFIX
from hub.spawner import netlock
from hub.spawner.auditing import SpawnAuditMixin
from hub.spawner.readiness import ReadinessMixin
from hub.permits.access import check_can_open, permit_for_server
from hub.sessionlog.spawner import SessionRecordingMixin
from hub.spawner.spec import DATA_DIR, WORK_DIR, SpawnSettings, WorkspaceSpec, make_workspace_spec

DATA_VOLUME = "data"
IMPORTS_VOLUME = "imports"
INFLOW_IMPORTS_DIR = "imports"  # on the inflow PVC: imports/<permit>/ (and mirror/ for the mirror pod)
WORK_VOLUME = "work"
TMP_VOLUME = "tmp"
NETLOCK_RUN_VOLUME = "netlock-run"
READ_ONLY_ROOT_ENV = {
    "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime",
    "IPYTHONDIR": "/tmp/ipython",
    "XDG_CACHE_HOME": "/tmp/cache",
    "MPLCONFIGDIR": "/tmp/matplotlib",
}
NOTEBOOK_PORT = 8888


SECCOMP_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"  # seccomp before Kubernetes 1.19


def seccomp_profile(seccomp: bool) -> dict:
    """`seccompProfile: RuntimeDefault` where the cluster has the field (1.19+); before that the
    API server drops it silently and the pod carries SECCOMP_ANNOTATION instead."""
    return {"seccompProfile": {"type": "RuntimeDefault"}} if seccomp else {}


def seccomp_annotations(seccomp: bool) -> dict:
    """The pod annotations that go with `seccomp_profile`: SECCOMP_ANNOTATION before 1.19."""
    return {} if seccomp else {SECCOMP_ANNOTATION: "runtime/default"}


def restricted_container_context(uid: int, seccomp: bool = True) -> dict:
    """securityContext of the notebook container: nothing to escalate, nothing to keep."""
    return {
        "runAsUser": uid,
        "runAsGroup": uid,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        **seccomp_profile(seccomp),
    }


def make_netlock_container(image: str, pull_policy: str, script: str, seccomp: bool = True) -> dict:
    """The init container that installs the egress lock.

    It is the only place in SPE that runs as root with capabilities: iptables needs uid 0 and
    NET_ADMIN in the pod's network namespace, and NET_RAW for the raw socket iptables-legacy
    talks to the kernel through (the nft backend uses netlink only). It holds no secrets,
    mounts only an empty /run for iptables' lock file, exits before the notebook starts, and
    the notebook container (which shares the namespace) has no capabilities, so it cannot
    flush the rules.
    """
    return {
        "name": "netlock",
        "image": image,
        "imagePullPolicy": pull_policy,
        "command": ["/bin/sh", "-c", script],
        # iptables takes its lock in /run; the root filesystem stays read-only.
        "volumeMounts": [{"name": NETLOCK_RUN_VOLUME, "mountPath": "/run"}],
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": False,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]},
            **seccomp_profile(seccomp),
        },
        "resources": {"limits": {"cpu": "100m", "memory": "64Mi"},
                      "requests": {"cpu": "10m", "memory": "16Mi"}},
    }


def check_subpath(relpath: str) -> str:
    """A PVC subPath must be relative, normalised and free of `..`: it is the only thing
    that keeps one permit's workspace out of the other permits' extracts."""
    p = PurePosixPath(relpath)
    if not relpath or p.is_absolute() or ".." in p.parts or str(p) != relpath or "\\" in relpath:
        raise Forbidden(f"extract subPath {relpath!r} escapes the permit's extract directory")
    return relpath


def make_kube_overrides(spec: WorkspaceSpec, *, extracts_claim: str, workspace_labels: dict,
                        lock_script: str | None, netlock_image: str = "",
                        netlock_pull_policy: str = "IfNotPresent", host_aliases: dict | None = None,
                        seccomp: bool = True, inflow_claim: str = "") -> dict:
    """KubeSpawner trait values for one permit workspace (pure).

    `inflow_claim` names the PVC of approved imports: the pod mounts its permit's
    `imports/<permit>` subPath read-only at /imports (no claim: no /imports).
    `lock_script` None means no init container (only for an operator who disabled it; the
    chart enables it by default). `host_aliases` ({hostname: ip}) go into the pod's /etc/hosts,
    so the hub and egress names resolve without DNS, which workspaces do not get by default.
    `seccomp` False (Kubernetes before 1.19): no seccompProfile fields (the pod manifest carries
    SECCOMP_ANNOTATION instead, see `PermitKubeSpawner.get_pod_manifest`).
    """
    subpath = check_subpath(spec.extract_relpath)
    imports_subpath = check_subpath(f"{INFLOW_IMPORTS_DIR}/{spec.imports_relpath}")
    labels = {**spec.labels, **workspace_labels}
    init = {}
    volumes = {
        DATA_VOLUME: {"name": DATA_VOLUME,
                      "persistentVolumeClaim": {"claimName": extracts_claim, "readOnly": True}},
        WORK_VOLUME: {"name": WORK_VOLUME, "persistentVolumeClaim": {"claimName": spec.work_volume}},
        TMP_VOLUME: {"name": TMP_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "512Mi"}},
    }
    mounts = {
        DATA_VOLUME: {"name": DATA_VOLUME, "mountPath": DATA_DIR, "subPath": subpath, "readOnly": True},
        WORK_VOLUME: {"name": WORK_VOLUME, "mountPath": WORK_DIR},
        TMP_VOLUME: {"name": TMP_VOLUME, "mountPath": "/tmp"},
    }
    if inflow_claim:
        volumes[IMPORTS_VOLUME] = {"name": IMPORTS_VOLUME,
                                   "persistentVolumeClaim": {"claimName": inflow_claim, "readOnly": True}}
        mounts[IMPORTS_VOLUME] = {"name": IMPORTS_VOLUME, "mountPath": spec.imports_target,
                                  "subPath": imports_subpath, "readOnly": True}
    if lock_script is not None:
        if not netlock_image:
            raise InvalidInput("the egress lock needs an image with iptables", field="netlock_image")
        init["netlock"] = make_netlock_container(netlock_image, netlock_pull_policy, lock_script, seccomp)
        volumes[NETLOCK_RUN_VOLUME] = {"name": NETLOCK_RUN_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}
    return {
        "pod_name": spec.name,
        "pvc_name": spec.work_volume,
        "image": spec.image,
        # The root filesystem is read-only: Jupyter's and Python's per-user state goes to /tmp
        # (images/workspace sets the same; this keeps any image working under the pod's policy).
        "environment": {**READ_ONLY_ROOT_ENV, **spec.env},
        "mem_limit": spec.mem_limit_bytes,
        # Memory is requested in full (an OOM kill loses a researcher's session); CPU is
        # requested at a tenth of the limit so idle workspaces do not reserve whole cores.
        "mem_guarantee": spec.mem_limit_bytes,
        "cpu_limit": spec.cpu_limit,
        "cpu_guarantee": round(spec.cpu_limit / 10, 3),
        "extra_labels": labels,
        # the work PVC carries the permit too: the lifecycle service deletes a permit's volumes by label
        "storage_extra_labels": labels,
        "uid": spec.uid,
        "gid": spec.uid,
        "fs_gid": spec.uid,
        "port": NOTEBOOK_PORT,
        "storage_pvc_ensure": True,
        "automount_service_account_token": False,
        "service_account": None,
        "allow_privilege_escalation": False,
        "privileged": False,
        "container_security_context": restricted_container_context(spec.uid, seccomp),
        # fsGroup ownership is fixed only when the volume's root does not match (a large work
        # volume is not walked at every start; beta and on by default from 1.20)
        "pod_security_context": {"runAsNonRoot": True, "runAsUser": spec.uid, "runAsGroup": spec.uid,
                                 "fsGroup": spec.uid, "fsGroupChangePolicy": "OnRootMismatch",
                                 **seccomp_profile(seccomp)},
        "volumes": volumes,
        "volume_mounts": mounts,
        "init_containers": init,
        # No Service env vars: a workspace learns no addresses beyond the two it is given.
        "extra_pod_config": {"enableServiceLinks": False, **_host_aliases(host_aliases or {})},
    }


def _host_aliases(aliases: dict) -> dict:
    if not aliases:
        return {}
    by_ip: dict[str, list[str]] = {}
    for host, ip in sorted(aliases.items()):
        by_ip.setdefault(ip, []).append(host)
    return {"hostAliases": [{"ip": ip, "hostnames": hosts} for ip, hosts in sorted(by_ip.items())]}


# Trait names a permit or user option may never set: they would move the pod out of its
# namespace, add volumes (another permit's extract, a hostPath) or widen its identity.
FORBIDDEN_OPTIONS = ("namespace", "volumes", "volume_mounts", "service_account", "image",
                     "extra_pod_config", "extra_container_config", "init_containers", "profile")


def check_user_options(options: dict) -> None:
    """Workspace shape comes from the permit alone: any user option is refused."""
    if not options:
        return
    names = sorted(str(k) for k in options)
    bad = [n for n in names if n in FORBIDDEN_OPTIONS]
    which = bad or names
    raise Refused(f"workspace options are fixed by the permit; refusing {', '.join(which)}")


SPAWN_ID_ANNOTATION = "spe.io/spawn-id"


def is_spawned_pod(pod: dict | None, spawn_id: str) -> bool:
    """Whether `pod` (as the pod reflector holds it) is the pod of the spawn `spawn_id`, alive
    and with its IP (pure). A pod of the same name left by an earlier spawn, or still being
    deleted, carries another id (or none) and is never probed."""
    if not pod or not spawn_id:
        return False
    meta = pod.get("metadata") or {}
    if (meta.get("annotations") or {}).get(SPAWN_ID_ANNOTATION) != spawn_id or meta.get("deletionTimestamp"):
        return False
    return bool((pod.get("status") or {}).get("podIP"))


class PermitKubeSpawner(SpawnAuditMixin, ReadinessMixin, KubeSpawner):
    """KubeSpawner that builds each workspace pod from the permit named by the server name."""

    spe_home = Unicode("/srv/spe", config=True,
                       help="SPE home inside the hub pod; its extracts/ is the extracts PVC mount.")
    spe_db_url = Unicode("", config=True,
                         help="Registry database URL (SQLAlchemy). Empty: sqlite under spe_home.")
    extracts_claim = Unicode("", config=True,
                             help="Name of the extracts PVC; each workspace mounts only its own "
                                  "`<permit>/<version>` subPath of it, read-only.")
    workspace_labels = Dict(config=True,
                            help="Labels added to every workspace pod; the chart's workspace "
                                 "NetworkPolicy selects them (spe.io/role, spe.io/release).")
    hub_service = Unicode("", config=True,
                          help="host:port of the hub API, the one endpoint the egress lock allows besides egress.")
    egress_service = Unicode("", config=True, help="host:port of the egress service.")
    mirror_service = Unicode("", config=True,
                             help="host:port of the package mirror Service (hub.mirror.serve); each workspace "
                                  "gets its permit's index as PIP_INDEX_URL. Empty: no mirror.")
    inflow_claim = Unicode("", config=True,
                           help="Name of the inflow PVC (approved imports, written by the egress service); each "
                                "workspace mounts only its `imports/<permit>` subPath, read-only, at /imports. "
                                "Empty: no /imports.")
    allow_dns = Bool(False, config=True,
                     help="Let workspaces query the cluster DNS (off: DNS is a covert channel).")
    dns_server = Unicode("", config=True,
                         help="Cluster DNS address allowed when allow_dns; empty: the hub's resolver.")
    netlock_enabled = Bool(True, config=True,
                           help="Add the iptables init container. Turning it off leaves isolation to "
                                "NetworkPolicy alone, which some network plugins silently ignore.")
    netlock_image = Unicode("", config=True, help="Image with /bin/sh and iptables for the init container.")
    netlock_image_pull_policy = Unicode("IfNotPresent", config=True, help="imagePullPolicy of the init container.")
    seccomp_field = Bool(True, config=True, help="seccomp RuntimeDefault as the securityContext field (Kubernetes "
                                                 "1.19+); False: as the pod annotation older clusters read "
                                                 "(the chart decides from the cluster's version).")
    max_mem_limit = Unicode("16G", config=True, help="Largest memory limit a permit may ask for.")
    max_cpu_limit = Float(8.0, config=True, help="Largest CPU limit a permit may ask for.")
    _spe_spawn_id = ""  # the id the current start's pod carries (SPAWN_ID_ANNOTATION)

    pod_poll_interval_seconds = Float(0.05, config=True,
                                      help="How often start() looks at the new pod and probes its server "
                                           "(KubeSpawner's own wait backs off to 5 s steps).")

    # --- the doors to the outside (a test subclass replaces these, nothing else) ----------
    def _engine(self):
        from hub.db import make_engine
        from hub.settings import Settings

        settings = Settings.from_env(home=self.spe_home, db_url=self.spe_db_url or None, env={})
        return make_engine(settings.db_url)

    def spawner_engine(self):
        return self._engine()

    def audit_object_name(self) -> str | None:
        return self.pod_name

    def load_permit(self, server_name: str):
        """The permit whose workspace (server) name this is: JupyterHub only accepts lower-case
        slugs, permit ids may not be (hub.permits.access maps them, refusing clashes)."""
        from hub.permits.store import PermitStore

        return permit_for_server(PermitStore(self._engine()).list(), server_name)

    def load_extract_relpath(self, permit) -> str:
        """`<permit>/<version>` of the current extract, from the registry (not the directory)."""
        from hub.provision.extracts import current_extract_relpath

        relpath = current_extract_relpath(self._engine(), permit.id)
        if relpath is None:
            raise Refused(f"permit {permit.id} has no provisioned extract yet; ask the operator to provision it")
        return relpath

    def load_mirror_token(self, permit) -> str:
        """The token of the permit's index of the package mirror, from the registry."""
        from hub.mirror.store import PackageMirror

        return PackageMirror(self._engine(), Path(self.spe_home) / "mirror").token(permit.id)

    def resolve_endpoint(self, hostport: str) -> tuple[str, int]:
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise InvalidInput(f"expected host:port, got {hostport!r}", field="hub_service/egress_service")
        return socket.gethostbyname(host), int(port)

    def resolve_dns_server(self) -> str:
        if self.dns_server:
            return self.dns_server
        for line in Path("/etc/resolv.conf").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                return parts[1]
        raise InvalidInput("no nameserver in /etc/resolv.conf; set PermitKubeSpawner.dns_server", field="dns_server")

    # --- building ------------------------------------------------------------------------
    def resolve_services(self) -> dict[str, tuple[str, int]]:
        """{host: (ip, port)} of the hub, egress and mirror services, resolved once per spawn."""
        out = {}
        for hostport in (self.hub_service, self.egress_service, self.mirror_service):
            if hostport:
                out[hostport.rpartition(":")[0]] = self.resolve_endpoint(hostport)
        if not out:
            raise InvalidInput("the egress lock needs hub_service and egress_service", field="hub_service")
        return out

    def make_lock_script(self, services: dict[str, tuple[str, int]]) -> str:
        dns = [self.resolve_dns_server()] if self.allow_dns else []
        return netlock.make_lock_script(netlock.make_lock_rules(list(services.values()), self.allow_dns, dns))

    async def load_user_options(self):
        """Apply the permit instead of profiles: the only source of the pod's shape. A refusal
        is audited (`workspace.spawn`, outcome refused) before it reaches the user."""
        try:
            self._spe_spec = await self._apply_permit()
        except Refused as err:
            permit_id = getattr(self, "_spe_permit_id", None)
            self._audit("workspace.spawn", outcome="refused", permit_id=permit_id,
                        detail={"server": (self.name or "")[:128], "reason": str(err)})
            raise

    async def _start(self):
        started = time.monotonic()
        url = await self._start_pod_watched_closely()
        await self.wait_until_ready(url)  # at once, unless KubeSpawner's own wait ended first
        spec = self._spe_spec
        self._audit("workspace.spawn", permit_id=spec.permit_id,
                    detail={"server": self.name, "permit_version": spec.permit_version,
                            "extract": spec.extract_relpath, "image": spec.image, "pod": self.pod_name,
                            "work_volume": self.pvc_name, "cpu_limit": spec.cpu_limit,
                            "ready_seconds": round(time.monotonic() - started, 3)})
        return url

    async def get_pod_manifest(self):
        """KubeSpawner's manifest, tagged with a fresh spawn id (see `is_spawned_pod`) and, on
        clusters before 1.19, the seccomp annotation. Built once per start, after the permit
        gave the pod its name."""
        pod = await super().get_pod_manifest()
        self._spe_spawn_id = uuid.uuid4().hex
        pod.metadata.annotations = {**(pod.metadata.annotations or {}), SPAWN_ID_ANNOTATION: self._spe_spawn_id,
                                    **seccomp_annotations(self.seccomp_field)}
        return pod

    async def _start_pod_watched_closely(self) -> str:
        """KubeSpawner's start, returning as soon as the new pod's server answers.

        KubeSpawner waits until the API reports the pod Running, and with a jittered
        exponential backoff (0.2 s doubling to 5 s); the kubelet reports a container start
        only at its next relist (up to 1 s), which the init container that locks the network
        makes happen twice. The pod has its IP from the first relist, and the pod reflector is
        updated by a watch, so looking at both costs nothing: once this spawn's pod (tagged
        with a fresh id, so never an older pod of the same name) answers HTTP at its IP,
        KubeSpawner's wait is cancelled and its last two steps (pod id, URL) are done here."""
        self._spe_spawn_id = ""  # set with the manifest
        inner = asyncio.ensure_future(super()._start())
        client = AsyncHTTPClient(force_instance=True)
        try:
            while not inner.done():
                await asyncio.wait({inner}, timeout=self.pod_poll_interval_seconds)
                if inner.done() or self.pod_reflector is None or not self._spe_spawn_id:
                    continue
                pod = self.pod_reflector.pods.get(f"{self.namespace}/{self.pod_name}")
                if not is_spawned_pod(pod, self._spe_spawn_id):
                    continue
                url = self.pod_address(pod)
                if not await self.answers(url, client):
                    continue
                inner.cancel()
                await asyncio.wait({inner})  # returns whether it was cancelled or had just finished
                if inner.cancelled():
                    self.log.info("workspace %s answered at %s before the kubelet reported it running",
                                  self.pod_name, url)
                    self.pod_id = pod["metadata"]["uid"]
                    return url
        except asyncio.CancelledError:  # the hub gave up on this start: so does KubeSpawner's part
            inner.cancel()
            raise
        finally:
            client.close()
        inner.result()  # KubeSpawner's own wait ended first (or failed: raises)
        return self.pod_address(self.pod_reflector.pods[f"{self.namespace}/{self.pod_name}"])

    def pod_address(self, pod: dict) -> str:
        """http://<pod IP>:<port>, where the pod's server itself answers (KubeSpawner's URL)."""
        return KubeSpawner._get_pod_url(self, pod)

    async def stop(self, now=False):
        pod = self.pod_name
        await super().stop(now=now)
        spec = getattr(self, "_spe_spec", None)
        self._audit("workspace.stop", permit_id=spec.permit_id if spec else self._permit_id_or_none(),
                    detail={"server": self.name, "pod": pod})

    def _permit_id_or_none(self) -> str | None:
        try:
            return self.load_permit(self.name).id
        except Refused:
            return None

    async def _apply_permit(self) -> WorkspaceSpec:
        check_user_options(self.user_options or {})
        server_name = self.name
        if not server_name:
            raise Refused("open a workspace from a permit: the server name must name the permit")
        if self.enable_user_namespaces:
            raise Forbidden("workspaces run in the hub's namespace only (enable_user_namespaces is on)")
        try:
            permit = self.load_permit(server_name)
        except NotFound:
            raise Forbidden(f"no permit opens as workspace {server_name[:64]!r}") from None
        self._spe_permit_id = permit.id
        check_can_open(permit, self.user.name)  # before the extract: a stranger learns nothing of it
        relpath = self.load_extract_relpath(permit)
        egress_url = f"http://{self.egress_service}{EGRESS_PREFIX}" if self.egress_service else ""
        mirror_url = f"http://{self.mirror_service}/" if self.mirror_service else ""
        settings = SpawnSettings(image=self.image, egress_url=egress_url, mirror_url=mirror_url,
                                 max_mem_limit=self.max_mem_limit, max_cpu_limit=self.max_cpu_limit)
        token = self.load_mirror_token(permit) if mirror_url else None
        spec = make_workspace_spec(permit, self.user.name, relpath, settings, mirror_token=token)
        services = self.resolve_services()
        lock = self.make_lock_script(services) if self.netlock_enabled else None
        overrides = make_kube_overrides(spec, extracts_claim=self.extracts_claim,
                                        workspace_labels=self.workspace_labels, lock_script=lock,
                                        netlock_image=self.netlock_image or self.image,
                                        netlock_pull_policy=self.netlock_image_pull_policy,
                                        host_aliases={h: ip for h, (ip, _) in services.items()},
                                        seccomp=self.seccomp_field, inflow_claim=self.inflow_claim)
        if not self.extracts_claim:
            raise InvalidInput("extracts_claim is not set", field="PermitKubeSpawner.extracts_claim")
        for name, value in overrides.items():
            setattr(self, name, value)
        self.dns_name = self.dns_name_template.format(namespace=self.namespace, name=self.pod_name)
        return spec


class RecordedPermitKubeSpawner(SessionRecordingMixin, PermitKubeSpawner):
    """PermitKubeSpawner whose pods are reached through the session recorder (the chart's
    recorder Deployment and Service), also after a hub restart: JupyterHub then asks `get_url`
    where a running server is and would take the pod's own address, bypassing the recorder."""

    @property
    def engine(self):  # the registry, where the recorder's routing table lives (hub.sessionlog.routes)
        return self._engine()

    def _recorded_permit_id(self) -> str | None:
        spec = getattr(self, "_spe_spec", None)
        return spec.permit_id if spec else self._permit_id_or_none()

    def _get_pod_url(self, pod):
        """The recorder's address: KubeSpawner's `poll` compares the server's address with this
        and, on a difference, moves the server to it; the pod's own address would take the
        browser past the recorder at the proxy's next route check."""
        return self.session_recorder_url or super()._get_pod_url(pod)
