"""The package mirror's indexes: the registry's record of every wheel and the files pypiserver
serves, kept in step (`hub.staging`: record, then place; unpublish, then record).

    <root>/shared/<wheel>           SHARED_INDEX: in every permit's index
    <root>/<token>/<wheel>          one permit's own wheels (token: `mirror_indexes`)
    <root>/.staging/                written here first, renamed into place after the commit

`PackageMirror` is the only writer. `add` (the operator's `spe mirror add`) and `remove` run
their own transaction; the egress import workflow adds a wheel inside its approval's transaction
with `stage` / `record_add` / `Staged.place`. Every change is an audit event (`mirror.add`,
`mirror.remove`) with the index, release and SHA-256. Must not import `egress`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from hub import audit
from hub.audit.store import utc_now_iso
from hub.db import transaction
from hub.exceptions import Conflict, NotFound
from hub.mirror.tables import SHARED_INDEX, mirror_indexes, mirror_wheels
from hub.mirror.wheels import Requirement, WheelInfo, read_wheel
from hub.permits.store import PermitStore
from hub.staging import Staged, ensure_dir, unpublish

SHARED_DIR = "shared"
STAGING_DIR = ".staging"
TOKEN_BYTES = 16  # 32 hex characters: the URL of a permit's index cannot be guessed


@dataclass(frozen=True)
class PendingWheel:
    """A checked wheel staged for one index, to be recorded and then placed."""

    index: str
    info: WheelInfo
    staged: Staged
    source: str
    target: Path  # where it will be served


class PackageMirror:
    def __init__(self, engine: sa.Engine, root: Path):
        self.engine = engine
        self.root = Path(root)
        self.permits = PermitStore(engine)

    # --- indexes ------------------------------------------------------------------------------
    def index_name(self, permit_id: str | None) -> str:
        """SHARED_INDEX for None, else the id of an existing permit (NotFound names it)."""
        return SHARED_INDEX if permit_id is None else self.permits.get(permit_id).id

    def token(self, permit_id: str) -> str:
        """The token of a permit's index, created on first use (the URL its workspaces get)."""
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(mirror_indexes.c.token)
                                 .where(mirror_indexes.c.permit_id == permit_id)).scalar()
        if found:
            return found
        try:
            with transaction(self.engine) as conn:
                conn.execute(mirror_indexes.insert().values(permit_id=permit_id, token=secrets.token_hex(TOKEN_BYTES),
                                                            created_at=utc_now_iso()))
        except IntegrityError:
            pass  # created at the same moment by another process: use theirs
        with self.engine.connect() as conn:
            return conn.execute(sa.select(mirror_indexes.c.token)
                                .where(mirror_indexes.c.permit_id == permit_id)).scalar_one()

    def index_dir(self, index: str) -> Path:
        return self.root / (SHARED_DIR if index == SHARED_INDEX else self.token(index))

    # --- adding -------------------------------------------------------------------------------
    def stage(self, index: str, filename: str, data: bytes, source: str,
              expected: Requirement | None = None) -> PendingWheel:
        """Check the wheel (name, METADATA, `expected` release) and stage its bytes; nothing is
        served or recorded yet. Call it before the caller's transaction (it reads the registry),
        and use `pending.staged` as a context manager to discard the copy if that transaction fails."""
        info = read_wheel(filename, data, expected)
        target = ensure_dir(self.index_dir(index)) / info.filename
        if target.exists():
            raise Conflict(f"{info.filename} is already in {_index_label(index)}")
        return PendingWheel(index=index, info=info, staged=Staged(self.root / STAGING_DIR, data), source=source,
                            target=target)

    def record_add(self, conn, pending: PendingWheel, *, actor: str, role: str, origin: str) -> dict:
        """The wheel's row and its `mirror.add` event, on the caller's transaction."""
        info, index = pending.info, pending.index
        row = dict(index_name=index, filename=info.filename, project=info.project, version=info.version,
                   sha256=pending.staged.sha256, size_bytes=pending.staged.size_bytes, added_by=actor,
                   added_at=utc_now_iso(), origin=origin[:100], source=pending.source)
        existing = conn.execute(sa.select(mirror_wheels.c.sha256).where(
            mirror_wheels.c.index_name == index, mirror_wheels.c.filename == info.filename)).scalar()
        if existing is not None:
            raise Conflict(f"{info.filename} is already in {_index_label(index)}")
        conn.execute(mirror_wheels.insert().values(**row))
        audit.record(conn, actor=actor, role=role, action="mirror.add",
                     permit_id=None if index == SHARED_INDEX else index, object_id=info.filename,
                     detail={"index": index_label(index), "project": info.project, "version": info.version,
                             "filename": info.filename, "sha256": row["sha256"], "size_bytes": row["size_bytes"],
                             "origin": row["origin"], "source": pending.source})
        return row

    def place(self, pending: PendingWheel) -> Path:
        """After the commit: the wheel appears in its index."""
        return pending.staged.place(pending.target)

    def add(self, index: str, filename: str, data: bytes, *, actor: str, source: str, origin: str = "cli",
            expected: Requirement | None = None, role: str = "operator") -> dict:
        """Check, record (+ audit) and publish one wheel in `index` (its own transaction)."""
        pending = self.stage(index, filename, data, source, expected)
        with pending.staged:
            with transaction(self.engine) as conn:
                row = self.record_add(conn, pending, actor=actor, role=role, origin=origin)
            self.place(pending)
        return row

    # --- removing -----------------------------------------------------------------------------
    def remove(self, index: str, requirement: Requirement, *, actor: str, role: str = "operator",
               reason: str = "") -> list[str]:
        """Remove every wheel of one release from `index`: the files first (no longer served),
        then the rows and the `mirror.remove` event. NotFound if the index does not hold it."""
        rows = self.unpublish(index, requirement)
        if not rows:
            raise NotFound(f"{requirement} is not in {_index_label(index)}")
        with transaction(self.engine) as conn:
            self.record_remove(conn, index, requirement, rows, actor=actor, role=role, reason=reason)
        return [r["filename"] for r in rows]

    def unpublish(self, index: str, requirement: Requirement) -> list[dict]:
        """Stop serving every wheel of one release from `index` (before the removal is recorded);
        returns their rows ([] if the index does not hold it)."""
        rows = self.list(index, requirement)
        directory = self.index_dir(index) if rows else None
        for row in rows:
            unpublish(directory / row["filename"])
        return rows

    def record_remove(self, conn, index: str, requirement: Requirement, rows: list[dict], *, actor: str,
                      role: str, reason: str = "") -> None:
        """The rows removed and the `mirror.remove` event, on the caller's transaction."""
        conn.execute(mirror_wheels.delete().where(
            mirror_wheels.c.index_name == index, mirror_wheels.c.project == requirement.project,
            mirror_wheels.c.version == requirement.version))
        audit.record(conn, actor=actor, role=role, action="mirror.remove",
                     permit_id=None if index == SHARED_INDEX else index, object_id=str(requirement),
                     detail={"index": index_label(index), "project": requirement.project,
                             "version": requirement.version, "files": {r["filename"]: r["sha256"] for r in rows},
                             "reason": reason[:500]})

    # --- reading ------------------------------------------------------------------------------
    def list(self, index: str | None = None, requirement: Requirement | None = None) -> list[dict]:
        """Wheels of one index (or of all), with `present`: is the file served (False after a crash
        between a commit and its placement, or a file removed by hand)."""
        q = sa.select(mirror_wheels).order_by(mirror_wheels.c.index_name, mirror_wheels.c.project,
                                              mirror_wheels.c.version, mirror_wheels.c.filename)
        if index is not None:
            q = q.where(mirror_wheels.c.index_name == index)
        if requirement is not None:
            q = q.where(mirror_wheels.c.project == requirement.project, mirror_wheels.c.version == requirement.version)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(q).mappings()]
            tokens = dict(conn.execute(sa.select(mirror_indexes.c.permit_id, mirror_indexes.c.token)).all())
        for r in rows:
            directory = SHARED_DIR if r["index_name"] == SHARED_INDEX else tokens.get(r["index_name"], "")
            r["index"] = index_label(r["index_name"])
            r["present"] = bool(directory) and (self.root / directory / r["filename"]).is_file()
        return rows


def index_label(index: str) -> str:
    """How lists and audit events name an index: `shared` or the permit id."""
    return "shared" if index == SHARED_INDEX else index


def _index_label(index: str) -> str:
    return "the shared index" if index == SHARED_INDEX else f"the index of permit {index}"
