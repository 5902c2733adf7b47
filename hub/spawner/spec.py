"""Pure builder of a permit workspace spec, shared by the Docker and Kubernetes spawners.

`make_workspace_spec(permit, username, extract, settings)` only builds a value; it checks
that the user may open this permit (`hub.permits.access.check_can_open`: member, active,
within dates) and that the extract belongs to the permit. No I/O: the spawner gathers
inputs and applies the result.

What comes in (the inflow airlock) is part of the spec too: the permit's approved imports at
/imports (read-only; `<imports root>/<permit id>` on the host or the inflow volume) and pip
pointed at the permit's own index of the package mirror (`PIP_INDEX_URL` with the index token
the spawner looked up) or, without a mirror, at no index at all. `pip install` puts packages
under the work volume (`PIP_PREFIX`), which the image's Python kernel has on its path; the
Jupyter server itself never imports from there (a researcher-writable path on the server's
`sys.path` would let a planted module undo the server's hardening at its next start).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from hub.exceptions import Forbidden, InvalidInput, Refused
from hub.naming import safe_slug
from hub.permits.access import check_can_open
from hub.permits.model import Permit

WORK_DIR = "/home/jovyan/work"
DATA_DIR = "/data"
IMPORTS_DIR = "/imports"
# where `pip install` puts packages in a workspace (persistent); images/workspace adds its
# site-packages to the kernel's path (the Python kernel spec's env), never to the server's
USER_PACKAGES_PREFIX = WORK_DIR + "/.local"
UID = 1000
_TOKEN = re.compile(r"[0-9a-f]{32}")

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
    mirror_url: str = ""  # base URL of the package mirror as a workspace reaches it; "" = none


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
    imports_relpath: str  # "<permit>" under the imports root (host dir or the inflow volume's imports/)
    work_volume: str
    labels: dict
    uid: int = UID
    data_target: str = DATA_DIR
    work_target: str = WORK_DIR
    imports_target: str = IMPORTS_DIR
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


def check_imports_relpath(permit: Permit) -> str:
    """The permit's directory of imports: its id as one plain path part (the schema allows no '/'
    and no leading '.'; checked again here because it decides which directory a workspace sees)."""
    if permit.id in (".", "..") or permit.id.startswith(".") or PurePosixPath(permit.id).parts != (permit.id,) \
            or "\\" in permit.id:
        raise Forbidden(f"permit id {permit.id!r} cannot name a directory of imports")
    return permit.id


def make_pip_env(mirror_url: str, mirror_token: str | None) -> dict:
    """pip's settings in a workspace: the permit's index of the mirror, or no index at all (a
    workspace has no network: without a mirror pip fails at once instead of timing out)."""
    env = {"PIP_PREFIX": USER_PACKAGES_PREFIX, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    if not mirror_url:
        return {**env, "PIP_NO_INDEX": "1"}
    url = urlsplit(mirror_url)
    if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
        raise InvalidInput(f"not a mirror URL: {mirror_url!r} (e.g. http://172.18.0.1:8110/)", field="mirror_url")
    if not isinstance(mirror_token, str) or not _TOKEN.fullmatch(mirror_token):
        raise InvalidInput("the permit's mirror index token is malformed", field="mirror_token")
    env["PIP_INDEX_URL"] = f"{mirror_url.rstrip('/')}/{mirror_token}/simple/"
    if url.scheme == "http":  # the internal network or a cluster Service: pip accepts http only from trusted hosts
        env["PIP_TRUSTED_HOST"] = url.netloc
    return env


def make_workspace_spec(permit: Permit, username: str, extract_relpath: str, settings: SpawnSettings,
                        today: date | None = None, mirror_token: str | None = None) -> WorkspaceSpec:
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
        "SPE_IMPORTS_DIR": IMPORTS_DIR,
        **make_pip_env(settings.mirror_url, mirror_token),
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
        imports_relpath=check_imports_relpath(permit),
        work_volume=safe_slug("work", permit.id, username),
        labels=labels,
        tmpfs={"/tmp": f"rw,nosuid,nodev,noexec,size={settings.tmp_size}"},
    )
