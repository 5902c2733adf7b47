"""A backup's manifest and its checks (pure).

A backup directory holds `manifest.json` and the files it lists, each by a relative path
(`data/…`: the SPE home's layout; `sealed-keys/…`: the key store, to be kept apart) with its
size and SHA-256. `check_entries` compares the manifest with what is on disk and names the
first entry that is missing, altered, truncated or not listed, so that a restore refuses
before it writes anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePosixPath

FORMAT = "spe-backup/1"
DATA, KEYS = "data", "sealed-keys"
MANIFEST = "manifest.json"
REGISTRY_SQLITE = "data/registry.db"
REGISTRY_PGDUMP = "data/registry.pgdump"


@dataclass(frozen=True)
class Entry:
    path: str  # relative, POSIX, under data/ or sealed-keys/
    size_bytes: int
    sha256: str


def check_relpath(path: str) -> str:
    """A manifest path must stay inside the backup: relative, no `..`, under data/ or sealed-keys/."""
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts or not p.parts or p.parts[0] not in (DATA, KEYS) or len(p.parts) < 2:
        raise ValueError(f"manifest entry {path!r} is outside data/ and sealed-keys/")
    return str(p)


def make_manifest(entries: list[Entry], *, created_at: str, registry: str, spe_version: str) -> dict:
    return {"format": FORMAT, "created_at": created_at, "registry": registry, "spe_version": spe_version,
            "files": [{"path": e.path, "bytes": e.size_bytes, "sha256": e.sha256}
                      for e in sorted(entries, key=lambda e: e.path)]}


def parse_manifest(text: str) -> tuple[dict, list[Entry]]:
    """The manifest and its entries; ValueError naming what is wrong."""
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise ValueError(f"manifest.json is not JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"manifest.json is not an SPE backup ({FORMAT})")
    if doc.get("registry") not in ("sqlite", "postgres"):
        raise ValueError("manifest.json: registry must be sqlite or postgres")
    entries = []
    for item in doc.get("files") or []:
        try:
            entries.append(Entry(check_relpath(item["path"]), int(item["bytes"]), str(item["sha256"])))
        except (KeyError, TypeError) as err:
            raise ValueError(f"manifest.json: malformed entry {item!r:.80} ({err})") from None
    if len({e.path for e in entries}) != len(entries):
        raise ValueError("manifest.json lists a file twice")
    registry = REGISTRY_SQLITE if doc["registry"] == "sqlite" else REGISTRY_PGDUMP
    if registry not in {e.path for e in entries}:
        raise ValueError(f"manifest.json does not list the registry ({registry})")
    return doc, entries


def check_entries(entries: list[Entry], found: dict[str, tuple[int, str]]) -> str | None:
    """The first problem, as one line naming the entry, or None. `found`: path -> (size, sha256)
    of every file in the backup except the manifest."""
    for e in sorted(entries, key=lambda e: e.path):
        if e.path not in found:
            return f"{e.path}: missing"
        size, digest = found[e.path]
        if size != e.size_bytes:
            return f"{e.path}: {size} bytes, the manifest says {e.size_bytes} (truncated or altered)"
        if digest != e.sha256:
            return f"{e.path}: SHA-256 differs from the manifest (altered)"
    extra = sorted(set(found) - {e.path for e in entries})
    if extra:
        return f"{extra[0]}: not in the manifest"
    return None
