"""Pure builder of a permit workspace spec, shared by the Docker and Kubernetes spawners.

`make_workspace_spec(permit, username, extract, settings)` only builds a value; it checks
that the user may open this permit (`hub.permits.access.check_can_open`: member, active,
within dates) and that the extract belongs to the permit. No I/O: the spawner gathers
inputs and applies the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import PurePosixPath

from hub.exceptions import Forbidden, InvalidInput, Refused
from hub.naming import safe_slug
from hub.permits.access import check_can_open
from hub.permits.model import Permit

WORK_DIR = "/home/jovyan/work"
DATA_DIR = "/data"
UID = 1000

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_bytes(spec: str | int) -> int:
    if isinstance(spec, int):
        return spec
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([KMGT]?)", str(spec).strip().upper())
    if not m:
        raise InvalidInput(f"not a byte size: {spec!r} (use e.g. 512M, 2G)", field="mem_limit")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


@dataclass(frozen=True)
class SpawnSettings:
    image: str = "spe/workspace:latest"
    egress_url: str = ""
    default_mem_limit: str = "2G"
    default_cpu_limit: float = 1.0
    default_pids_limit: int = 512
    tmp_size: str = "512M"
    max_mem_limit: str = "16G"
    max_cpu_limit: float = 8.0


@dataclass(frozen=True)
class WorkspaceSpec:
    name: str  # container / pod name
    permit_id: str
    permit_version: int
    username: str
    image: str
    env: dict
    mem_limit_bytes: int
    cpu_limit: float
    pids_limit: int
    extract_relpath: str  # "<permit>/<version>" under the extracts root (host dir or PVC subPath)
    work_volume: str
    labels: dict
    uid: int = UID
    data_target: str = DATA_DIR
    work_target: str = WORK_DIR
    tmpfs: dict = field(default_factory=dict)
    read_only_root: bool = True
    cap_drop: tuple = ("ALL",)
    no_new_privileges: bool = True


def check_extract_relpath(permit: Permit, relpath: str) -> str:
    """An extract path must be `<permit id>/<version>` exactly: no `..`, no other permit."""
    p = PurePosixPath(relpath)
    if p.is_absolute() or len(p.parts) != 2 or p.parts[0] != permit.id or not p.parts[1].isdigit():
        raise Forbidden(f"extract path {relpath!r} does not belong to permit {permit.id}")
    return str(p)


def make_workspace_spec(permit: Permit, username: str, extract_relpath: str, settings: SpawnSettings,
                        today: date | None = None) -> WorkspaceSpec:
    check_can_open(permit, username, today)
    relpath = check_extract_relpath(permit, extract_relpath)
    res = permit.resources
    mem = parse_bytes(res.mem_limit or settings.default_mem_limit)
    cpu = res.cpu_limit or settings.default_cpu_limit
    if mem > parse_bytes(settings.max_mem_limit):
        raise Refused(f"permit {permit.id} asks for {res.mem_limit} memory; the site maximum is {settings.max_mem_limit}")
    if cpu > settings.max_cpu_limit:
        raise Refused(f"permit {permit.id} asks for {cpu} CPUs; the site maximum is {settings.max_cpu_limit}")
    labels = {
        "app.kubernetes.io/part-of": "spe",
        "app.kubernetes.io/component": "workspace",
        "spe.permit": safe_slug(permit.id, prefix="p"),
        "spe.user": safe_slug(username, prefix="u"),
    }
    env = {
        "SPE_PERMIT_ID": permit.id,
        "SPE_PERMIT_VERSION": str(permit.version),
        "SPE_DATA_DIR": DATA_DIR,
        "SPE_EGRESS_URL": settings.egress_url,
    }
    return WorkspaceSpec(
        name=safe_slug(username, permit.id),
        permit_id=permit.id,
        permit_version=permit.version,
        username=username,
        image=settings.image,
        env=env,
        mem_limit_bytes=mem,
        cpu_limit=float(cpu),
        pids_limit=res.pids_limit or settings.default_pids_limit,
        extract_relpath=relpath,
        work_volume=safe_slug("work", permit.id, username),
        labels=labels,
        tmpfs={"/tmp": f"rw,nosuid,nodev,noexec,size={settings.tmp_size}"},
    )
