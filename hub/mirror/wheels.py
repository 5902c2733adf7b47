"""Pure rules of the package mirror: what a requirement and a wheel file name must be, what a
wheel's metadata says, which platform tags a workspace's Python installs.

A requirement is exactly `NAME==VERSION` (PEP 508 name, PEP 440 version): a range would let the
index decide what is reviewed. A wheel file name must parse (PEP 427) and name that project and
version; a wheel's METADATA must agree with its name. Everything is bounded (hostile input:
names from researchers, archives from an index). Bytes in, values out; no I/O.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from hub.exceptions import InvalidInput

_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.I)
MAX_NAME_CHARS = 100
MAX_VERSION_CHARS = 64
MAX_METADATA_BYTES = 1024 * 1024
MAX_LISTED_REQUIREMENTS = 200
# Debian 12 (the workspace image's base) has glibc 2.36: every manylinux wheel up to it installs.
WORKSPACE_GLIBC = (2, 36)
WORKSPACE_MACHINE = "x86_64"


@dataclass(frozen=True)
class Requirement:
    project: str  # canonical (PEP 503 normalised) name
    version: str  # normalised PEP 440 version

    def __str__(self) -> str:
        return f"{self.project}=={self.version}"


@dataclass(frozen=True)
class WheelInfo:
    filename: str
    project: str
    version: str
    summary: str = ""
    license: str = ""
    requires_python: str = ""
    requires_dist: tuple[str, ...] = ()
    home_page: str = ""


def check_project_name(name: object, field: str = "name") -> str:
    """A PEP 508 project name, canonicalised; InvalidInput naming the rule otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("a package name is required", field=field)
    name = name.strip()
    if len(name) > MAX_NAME_CHARS or not _NAME.match(name):
        raise InvalidInput(f"{name[:MAX_NAME_CHARS]!r} is not a package name (letters, digits, '.', '_', '-')",
                           field=field)
    return canonicalize_name(name)


def check_version(version: object, field: str = "version") -> str:
    """An exact PEP 440 version, normalised."""
    if not isinstance(version, str) or not version.strip():
        raise InvalidInput("an exact version is required (e.g. 1.16.0)", field=field)
    version = version.strip()
    if len(version) > MAX_VERSION_CHARS:
        raise InvalidInput("a version is at most 64 characters", field=field)
    try:
        return str(Version(version))
    except InvalidVersion:
        raise InvalidInput(f"{version!r} is not a version (PEP 440, e.g. 1.16.0)", field=field) from None


def parse_requirement(text: object, field: str = "requirement") -> Requirement:
    """`NAME==VERSION` exactly (one pinned release: a range would let the index pick what is installed)."""
    if not isinstance(text, str) or "==" not in text or text.count("==") != 1 or "===" in text:
        raise InvalidInput(f"{str(text)[:120]!r}: name one release as NAME==VERSION (e.g. six==1.16.0)", field=field)
    name, version = (part.strip() for part in text.split("=="))
    if any(c in name for c in "<>!~;[@ "):
        raise InvalidInput(f"{text[:120]!r}: name one release as NAME==VERSION, without extras or markers",
                           field=field)
    return Requirement(check_project_name(name, field), check_version(version, field))


def check_wheel_filename(filename: object, expected: Requirement | None = None) -> WheelInfo:
    """A wheel file name (PEP 427) that names `expected` when given; InvalidInput otherwise."""
    if not isinstance(filename, str) or "/" in filename or "\\" in filename or filename.startswith("."):
        raise InvalidInput(f"{str(filename)[:120]!r} is not a wheel file name", field="wheel")
    try:
        name, version, _build, _tags = parse_wheel_filename(filename)
    except (InvalidWheelFilename, InvalidVersion) as err:
        raise InvalidInput(f"{filename[:120]!r} is not a wheel file name: {err}", field="wheel") from None
    info = WheelInfo(filename=filename, project=canonicalize_name(name), version=str(version))
    if expected is not None and (info.project, info.version) != (expected.project, expected.version):
        raise InvalidInput(f"{filename} is {info.project} {info.version}, not {expected.project} {expected.version}",
                           field="wheel")
    return info


def read_wheel(filename: str, data: bytes, expected: Requirement | None = None) -> WheelInfo:
    """The wheel's name checked against `expected` and against its own METADATA, with the
    metadata a reviewer reads (summary, licence, Python and package requirements)."""
    info = check_wheel_filename(filename, expected)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            entries = [e for e in zf.infolist() if e.filename.count("/") == 1
                       and e.filename.endswith(".dist-info/METADATA")]
            if len(entries) != 1:
                raise InvalidInput(f"{filename} has {len(entries)} METADATA files; a wheel has one", field="wheel")
            if entries[0].file_size > MAX_METADATA_BYTES:
                raise InvalidInput(f"{filename}: METADATA is larger than {MAX_METADATA_BYTES} bytes", field="wheel")
            raw = zf.read(entries[0])
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise InvalidInput(f"{filename} is not a readable wheel: {str(err)[:200]}", field="wheel") from None
    meta = HeaderParser().parsestr(raw.decode("utf-8", "replace"))
    meta_name, meta_version = meta.get("Name", ""), meta.get("Version", "")
    try:
        same = (canonicalize_name(meta_name), str(Version(meta_version))) == (info.project, info.version)
    except InvalidVersion:
        same = False
    if not same:
        raise InvalidInput(f"{filename}: its METADATA names {meta_name!r} {meta_version!r}, not its file name",
                           field="wheel")
    requires = tuple(str(r)[:300] for r in (meta.get_all("Requires-Dist") or [])[:MAX_LISTED_REQUIREMENTS])
    return WheelInfo(filename=filename, project=info.project, version=info.version,
                     summary=(meta.get("Summary") or "")[:500], license=_license(meta)[:300],
                     requires_python=(meta.get("Requires-Python") or "")[:100], requires_dist=requires,
                     home_page=(meta.get("Home-page") or "")[:300])


def _license(meta) -> str:
    expression = meta.get("License-Expression") or ""
    if expression:
        return expression
    text = (meta.get("License") or "").strip()
    if text and "\n" not in text:
        return text
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    return ", ".join(classifiers) or (text.splitlines()[0] if text else "")


def workspace_platforms(machine: str = WORKSPACE_MACHINE, glibc: tuple[int, int] = WORKSPACE_GLIBC) -> tuple[str, ...]:
    """Platform tags a workspace installs, newest first: manylinux_2_X up to its glibc and the
    legacy aliases (PEP 600). `linux_*` wheels are not portable and never chosen."""
    major, minor = glibc
    tags = [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags += [f"{alias}_{machine}" for m, alias in legacy.items() if m <= minor]
    return tuple(tags)
