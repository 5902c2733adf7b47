"""Where extracts live and which one is current (registry is the source of truth).

Layout: `<extracts_dir>/<permit>/<extract version>/<table>.parquet` + `manifest.json`.
A version directory appears only complete (built elsewhere, then renamed into place).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import sqlalchemy as sa

from hub import audit
from hub.audit.store import utc_now_iso
from hub.registry_tables import extracts
from hub.settings import Settings


def permit_dir(settings: Settings, permit_id: str) -> Path:
    return settings.extracts_dir / permit_id


def current_extract(engine: sa.Engine, permit_id: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(extracts).where(extracts.c.permit_id == permit_id, extracts.c.state == "current")
                           ).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out["manifest"] = json.loads(row["manifest_json"])
    return out


def current_extract_dir(settings: Settings, permit_id: str, engine: sa.Engine | None = None) -> Path | None:
    from hub.db import make_engine

    row = current_extract(engine or make_engine(settings.db_url), permit_id)
    return Path(row["path"]) if row else None


def current_extract_relpath(engine: sa.Engine, permit_id: str) -> str | None:
    """`<permit>/<version>` relative to the extracts root (a bind source or a PVC subPath)."""
    row = current_extract(engine, permit_id)
    return f"{permit_id}/{row['extract_version']}" if row else None


def delete_extracts(engine: sa.Engine, settings: Settings, permit_id: str, actor: str, reason: str) -> int:
    """Delete every extract version of a permit from disk; audited. Returns versions deleted."""
    with engine.begin() as conn:
        rows = conn.execute(sa.select(extracts.c.extract_version, extracts.c.path)
                            .where(extracts.c.permit_id == permit_id, extracts.c.state != "deleted")).all()
        for r in rows:
            _remove_tree(Path(r.path))
        conn.execute(extracts.update().where(extracts.c.permit_id == permit_id, extracts.c.state != "deleted")
                     .values(state="deleted", deleted_at=utc_now_iso()))
        audit.record(conn, actor=actor, role="operator", action="extract.delete", permit_id=permit_id,
                     detail={"versions": [r.extract_version for r in rows], "reason": reason})
    _remove_tree(permit_dir(settings, permit_id))
    return len(rows)


def _remove_tree(path: Path) -> None:
    """Extract directories are made read-only after provisioning; make writable, then remove."""
    if not path.exists():
        return
    for p in [path, *path.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)
    shutil.rmtree(path)


def delete_extract_versions(conn: sa.Connection, permit_id: str, versions: list[int]) -> list[int]:
    """Delete these (non-current) versions of a permit from disk in the caller's transaction;
    the caller audits. Returns the versions deleted."""
    rows = conn.execute(sa.select(extracts.c.extract_version, extracts.c.path)
                        .where(extracts.c.permit_id == permit_id, extracts.c.extract_version.in_(versions),
                               extracts.c.state == "superseded")).all()
    for r in rows:
        _remove_tree(Path(r.path))
    done = sorted(r.extract_version for r in rows)
    if done:
        conn.execute(extracts.update().where(extracts.c.permit_id == permit_id,
                                             extracts.c.extract_version.in_(done))
                     .values(state="deleted", deleted_at=utc_now_iso()))
    return done
