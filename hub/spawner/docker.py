"""PermitSpawner: one isolated Docker container per (user, permit), as a JupyterHub named server.

The server name is the permit's (`/user/<name>/<server>`, `hub.naming.server_name_for`).
Every start re-reads the permit from the registry and refuses (403, with an audit event)
unless the user may open it (`hub.permits.access`: a member of an active permit within its
dates) and the permit has a provisioned extract. The container
is built from `hub.spawner.spec.make_workspace_spec` (pure): the permit's current extract
read-only at /data, its approved imports read-only at /imports (`<spe_home>/imports/<permit>`),
pip pointed at the permit's index of the package mirror, a per-(permit, user) volume for work,
no capabilities, no new privileges, read-only root with a tmpfs /tmp, pids/memory/CPU limits, uid 1000, on the
internal network (see `hub.netfw`). Every Docker call goes through DockerSpawner's `docker()`.

Readiness: `start()` returns only when the server answers (hub.spawner.readiness), so the
hub's first probe succeeds at once instead of after its exponential backoff.

Must not import `egress`.
"""

from __future__ import annotations

import dataclasses
import re
import html
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dockerspawner import DockerSpawner
from jupyterhub.spawner import SpawnException
from traitlets import Float, Integer, Unicode, default, validate, TraitError

from hub.db import make_engine
from hub.exceptions import NotFound, Refused
from hub.mirror.store import PackageMirror
from hub.permits.store import PermitStore
from hub.provision.extracts import current_extract_relpath
from hub.settings import Settings
from hub.naming import safe_slug, server_name_for
from hub.permits.access import check_can_open, is_workspace_of, permit_for_server
from hub.permits.model import Permit
from hub.sessionlog.spawner import SessionRecordingMixin
from hub.spawner.auditing import SpawnAuditMixin
from hub.spawner.readiness import ReadinessMixin
from hub.spawner.spec import SpawnSettings, WorkspaceSpec, make_workspace_spec, parse_bytes
from hub.staging import ensure_dir

MAX_OPTION_CHARS = 128
ALLOWED_OPTIONS = frozenset({"permit"})

# Jupyter and IPython write state under $HOME, which is on the read-only root: point them
# at tmpfs (runtime, caches) or at the persistent work volume (JupyterLab settings).
_WRITABLE_ENV = {
    "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime",
    "JUPYTER_DATA_DIR": "/tmp/jupyter-data",  # notebook trust database (nbsignatures.db)
    "IPYTHONDIR": "/tmp/ipython",
    "XDG_CACHE_HOME": "/tmp/cache",
    "MPLCONFIGDIR": "/tmp/matplotlib",
    "JUPYTERLAB_SETTINGS_DIR": "/home/jovyan/work/.jupyter/lab/user-settings",
    "JUPYTERLAB_WORKSPACES_DIR": "/home/jovyan/work/.jupyter/lab/workspaces",
    "HOME": "/home/jovyan",
}


class PermitSpawner(SpawnAuditMixin, ReadinessMixin, DockerSpawner):
    """DockerSpawner that runs a permit's workspace, or refuses with a reason."""

    spe_home = Unicode(
        help="""SPE state directory (holds `extracts/`). Set by the hub config from $SPE_HOME.
        The extract of a permit is bind-mounted read-only from `<spe_home>/extracts/<permit>/<version>`.""",
    ).tag(config=True)

    spe_db_url = Unicode(
        "",
        help="""Registry database URL (permits, audit trail). Default: SQLite `registry.db` in `spe_home`.""",
    ).tag(config=True)

    egress_url = Unicode(
        "",
        help="""URL of the egress service as a workspace reaches it (on the internal network's gateway),
        e.g. `http://172.18.0.1:8100/services/egress/`. Passed to the workspace as SPE_EGRESS_URL.""",
    ).tag(config=True)

    mirror_url = Unicode(
        "",
        help="""Base URL of the package mirror as a workspace reaches it (on the internal network's
        gateway), e.g. `http://172.18.0.1:8110/`. Each workspace gets its permit's own index under
        it as PIP_INDEX_URL. Empty: no mirror (pip in a workspace has no index).""",
    ).tag(config=True)

    default_mem_limit = Unicode(
        "2G",
        help="""Memory limit of a workspace whose permit does not set one (bytes with K/M/G suffix).""",
    ).tag(config=True)

    max_mem_limit = Unicode(
        "16G",
        help="""Largest memory limit a permit may ask for; a permit asking more is refused at spawn.""",
    ).tag(config=True)

    default_cpu_limit = Float(
        1.0,
        help="""CPU limit (cores) of a workspace whose permit does not set one.""",
    ).tag(config=True)

    max_cpu_limit = Float(
        8.0,
        help="""Largest CPU limit (cores) a permit may ask for; a permit asking more is refused at spawn.""",
    ).tag(config=True)

    default_pids_limit = Integer(
        512,
        help="""Maximum number of processes in a workspace (fork-bomb guard) unless the permit sets one.""",
    ).tag(config=True)

    tmp_size = Unicode(
        "512M",
        help="""Size of the tmpfs mounted at /tmp (the only writable path besides the work volume).
        Counts against the container's memory.""",
    ).tag(config=True)

    docker_threads = Integer(
        4,
        help="""Threads for Docker API calls. DockerSpawner uses one, which serialises every start and
        stop of every user (a 10 s `docker stop` then delays all spawns).""",
    ).tag(config=True)

    name_prefix = Unicode(
        "spe",
        help="""Prefix of container and work-volume names, also set as label `spe.deployment`. Give each
        deployment sharing one Docker engine its own prefix, or their workspaces would collide by name.""",
    ).tag(config=True)

    @validate("name_prefix")
    def _check_prefix(self, proposal):
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,19}", proposal.value):
            raise TraitError(f"name_prefix {proposal.value!r}: use 1-20 characters [a-z0-9-] starting with a letter")
        return proposal.value

    stop_timeout_seconds = Integer(
        5,
        help="""Seconds a stopping workspace gets between SIGTERM and SIGKILL.""",
    ).tag(config=True)

    @validate("default_mem_limit", "max_mem_limit", "tmp_size")
    def _check_bytes(self, proposal):
        try:
            parse_bytes(proposal.value)
        except Refused as err:
            raise TraitError(f"{proposal.trait.name}: {err}; use e.g. 512M or 2G") from None
        return proposal.value

    # --- DockerSpawner overrides ------------------------------------------------------------
    _executors: dict = {}

    @property
    def executor(self):
        cls = type(self)
        if self.docker_threads not in cls._executors:
            cls._executors[self.docker_threads] = ThreadPoolExecutor(self.docker_threads,
                                                                     thread_name_prefix="spe-docker")
        return cls._executors[self.docker_threads]

    @default("object_name")
    def _object_name_default(self):
        # one slug function names every container (hub.naming)
        return safe_slug(self.user.name, self.name or "default", prefix=self.name_prefix)

    @default("remove")
    def _default_remove(self):
        return True  # nothing of a workspace survives a stop except its work volume

    @default("use_internal_ip")
    def _default_use_internal_ip(self):
        return True

    @default("options_form")
    def _default_options_form(self):
        return self._permit_options_form

    @default("options_from_form")
    def _default_options_from_form(self):
        return self._permit_options_from_form

    # --- registry access --------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        home = Path(self.spe_home or ".spe").resolve()
        return Settings(home=home, db_url=self.spe_db_url or f"sqlite:///{home / 'registry.db'}",
                        actor="hub")

    @property
    def engine(self):
        return make_engine(self.settings.db_url)

    def spawn_settings(self) -> SpawnSettings:
        return SpawnSettings(image=self.image, egress_url=self.egress_url, mirror_url=self.mirror_url,
                             default_mem_limit=self.default_mem_limit, default_cpu_limit=self.default_cpu_limit,
                             default_pids_limit=self.default_pids_limit, tmp_size=self.tmp_size,
                             max_mem_limit=self.max_mem_limit, max_cpu_limit=self.max_cpu_limit)

    def spawner_engine(self):
        return self.engine

    def audit_object_name(self) -> str | None:
        return self.object_name

    # --- the spawn form ---------------------------------------------------------------------
    def _permit_options_form(self, spawner) -> str:
        permits = PermitStore(self.engine).active_for_user(self.user.name)
        if not permits:
            return ("<p>You are not a member of any active data permit, so there is no workspace "
                    "you can open. Ask your data permit's principal investigator.</p>")
        rows = []
        for p in permits:
            selected = " selected" if is_workspace_of(p.id, self.name) else ""
            rows.append(f'<option value="{html.escape(p.id)}"{selected}>{html.escape(p.id)} — '
                        f"{html.escape(p.title)} (valid until {p.valid_until})</option>")
        note = ""
        if self.name and not any(is_workspace_of(p.id, self.name) for p in permits):
            note = (f"<p class='text-danger'>{html.escape(self.name)} is not an active permit of yours; "
                    "choose one below and open it under its own name.</p>")
        return (note + '<label for="permit">Data permit</label>'
                '<select class="form-control" name="permit" id="permit">' + "".join(rows) + "</select>"
                "<p class='help-block'>The workspace shows only this permit's extract, read-only, at "
                "/data. Results leave only through output checking.</p>")

    @staticmethod
    def _permit_options_from_form(form_data) -> dict:
        values = form_data.get("permit") or []
        if len(values) != 1:
            return {"permit": ""}
        return {"permit": str(values[0])[:MAX_OPTION_CHARS]}

    def check_user_options(self) -> Permit:
        """The permit whose workspace this named server is; refuses unknown or mismatched options
        (hostile input). Whether the user may open it is `hub.permits.access`, checked by the caller."""
        options = self.user_options or {}
        if not isinstance(options, dict):
            raise SpawnException("spawn options must be an object", reason="options", status_code=400)
        unknown = set(options) - ALLOWED_OPTIONS
        if unknown:
            shown = ", ".join(sorted(str(k)[:40] for k in unknown))
            raise SpawnException(f"unknown spawn option(s): {shown}; only 'permit' is accepted",
                                 reason="options", status_code=400)
        if not self.name:
            raise SpawnException(
                f"open a workspace by its permit: /hub/spawn/{self.user.name}/<permit-id in lower case>",
                reason="default-server", status_code=400)
        requested = options.get("permit")
        if requested is not None:
            if not isinstance(requested, str) or not requested or len(requested) > MAX_OPTION_CHARS:
                raise SpawnException("option 'permit' must be a permit id", reason="options", status_code=400)
            if not is_workspace_of(requested, self.name):
                raise SpawnException(
                    f"this workspace is {self.name!r}; permit {requested!r} opens as "
                    f"/hub/spawn/{self.user.name}/{server_name_for(requested)}", reason="options", status_code=400)
        try:
            return permit_for_server(PermitStore(self.engine).list(), self.name)
        except Refused as err:
            raise SpawnException(str(err), reason="permit", status_code=err.http_status) from None

    # --- start / stop -----------------------------------------------------------------------
    def make_spec(self) -> WorkspaceSpec:
        """Check everything and build the container spec; raises SpawnException (audited) on refusal."""
        permit_id = ""
        try:
            permit = self.check_user_options()
            permit_id = permit.id
            check_can_open(permit, self.user.name)  # before the extract: a stranger learns nothing of it
            relpath = current_extract_relpath(self.engine, permit.id)
            if relpath is None:
                raise Refused(f"permit {permit.id} has no provisioned extract yet; ask an operator to run "
                              f"`spe permit provision {permit.id}`")
            token = PackageMirror(self.engine, self.settings.mirror_dir).token(permit.id) if self.mirror_url else None
            spec = make_workspace_spec(permit, self.user.name, relpath, self.spawn_settings(), mirror_token=token)
            return dataclasses.replace(
                spec, name=safe_slug(self.user.name, permit.id, prefix=self.name_prefix),
                work_volume=safe_slug("work", permit.id, self.user.name, prefix=self.name_prefix),
                labels={**spec.labels, "spe.deployment": self.name_prefix})
        except SpawnException as err:
            self._audit("workspace.spawn", outcome="refused", permit_id=permit_id or None,
                        detail={"server": self.name[:MAX_OPTION_CHARS], "reason": err.log_message})
            raise
        except Refused as err:
            status = 403 if not isinstance(err, NotFound) else 404
            self._audit("workspace.spawn", outcome="refused", permit_id=permit_id or None,
                        detail={"server": self.name[:MAX_OPTION_CHARS], "reason": str(err)})
            raise SpawnException(str(err), reason="permit", status_code=status) from None

    def apply_spec(self, spec: WorkspaceSpec) -> None:
        """Set DockerSpawner's traits from the spec (pure mapping; no Docker calls)."""
        self.object_name = spec.name
        self.image = spec.image
        self.mem_limit = spec.mem_limit_bytes
        self.cpu_limit = spec.cpu_limit
        extract_host = str(self.settings.extracts_dir.resolve() / spec.extract_relpath)
        self.volumes = {
            extract_host: {"bind": spec.data_target, "mode": "ro"},
            str(self.imports_host_dir(spec)): {"bind": spec.imports_target, "mode": "ro"},
            spec.work_volume: {"bind": spec.work_target, "mode": "rw"},
        }
        labels = dict(spec.labels)
        labels["spe.network"] = self.network_name
        self.extra_create_kwargs = {"user": f"{spec.uid}:{spec.uid}", "labels": labels,
                                    "working_dir": spec.work_target, "stop_signal": "SIGTERM"}
        self.extra_host_config = {
            "read_only": spec.read_only_root,
            "cap_drop": list(spec.cap_drop),
            "security_opt": ["no-new-privileges"] if spec.no_new_privileges else [],
            "tmpfs": dict(spec.tmpfs),
            "pids_limit": spec.pids_limit,
            "network_mode": self.network_name,
            "ipc_mode": "private",
            # outside names never resolve (no route to any resolver); fail in 1 s, not 10
            "dns_opt": ["timeout:1", "attempts:1"],
        }
        self._spe_spec = spec

    def get_env(self):
        env = super().get_env()
        env.update(_WRITABLE_ENV)
        spec = getattr(self, "_spe_spec", None)
        if spec is not None:
            env.update(spec.env)
        return env

    def imports_host_dir(self, spec: WorkspaceSpec) -> Path:
        return self.settings.imports_dir.resolve() / spec.imports_relpath

    async def ensure_work_volume(self, spec: WorkspaceSpec) -> None:
        labels = {**spec.labels, "spe.network": self.network_name, "app.kubernetes.io/component": "work"}
        await self.docker("create_volume", name=spec.work_volume, labels=labels)

    async def start(self):
        spec = self.make_spec()
        self.apply_spec(spec)
        # the permit's imports directory exists (0755, empty until an import is approved), or
        # Docker would create the bind source itself, owned by root and closed to the researcher
        ensure_dir(self.imports_host_dir(spec))
        await self.ensure_work_volume(spec)
        started = time.monotonic()
        ip, port = await super().start()
        url = self.workspace_url(ip, port)
        await self.wait_until_ready(url)
        self._audit("workspace.spawn", permit_id=spec.permit_id,
                    detail={"server": self.name, "permit_version": spec.permit_version, "extract": spec.extract_relpath,
                            "image": spec.image, "container": spec.name, "work_volume": spec.work_volume,
                            "cpu_limit": spec.cpu_limit,
                            "ready_seconds": round(time.monotonic() - started, 3)})
        return url

    def workspace_url(self, ip: str, port: int) -> str:
        """The one place that says where the hub and proxy reach a workspace (a recorder may sit here)."""
        return f"http://{ip}:{port}"

    def _permit_id_or_none(self) -> str | None:
        try:
            return permit_for_server(PermitStore(self.engine).list(), self.name).id
        except Refused:
            return None

    async def stop_object(self):
        if self.object_id:
            try:
                await self.docker("stop", self.object_id, timeout=self.stop_timeout_seconds)
            except Exception as err:  # already gone
                if getattr(getattr(err, "response", None), "status_code", None) != 404:
                    raise

    async def stop(self, now=False):
        if not self.object_id:
            self.clear_state()
            return
        container = self.object_name
        await super().stop(now=now)
        permit_id = getattr(getattr(self, "_spe_spec", None), "permit_id", None) or self._permit_id_or_none()
        self._audit("workspace.stop", permit_id=permit_id, detail={"server": self.name, "container": container})


class RecordedPermitSpawner(SessionRecordingMixin, PermitSpawner):
    """PermitSpawner whose workspaces are reached through the hub-side session recorder."""

    async def get_url(self):
        """Where the hub reaches a workspace it adopts after a restart (poll() says it runs): the
        recorder, whose route to the container is kept in the registry (hub.sessionlog.routes).
        The stored address could name an older recorder port; this one is the current one."""
        if not self.session_recorder_url:
            return await super().get_url()
        return self.session_recorder_url.rstrip("/") + self.server.base_url  # as JupyterHub stores it: with the prefix
