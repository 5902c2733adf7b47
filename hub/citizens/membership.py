"""Who each extract version holds, as keyed hashes of national identifiers (the opt-out register's
HMAC), kept off-enclave in the registry, also after the extract itself is deleted: the proof per
person (`check_person`) and the source of "who used my data" (`hub.citizens.usage`).

Must not import `egress`.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from hub.citizens.tables import extract_persons
from hub.registry_tables import extracts, optouts

CHUNK = 5000


def persons_digest(hashes) -> str:
    """SHA-256 over the sorted hashes (one a line): the manifest's fingerprint of who it holds."""
    return hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()


def record_extract_persons(conn: sa.Connection, permit_id: str, version: int, hashes: list[str]) -> None:
    rows = [{"permit_id": permit_id, "extract_version": version, "id_hash": h} for h in sorted(set(hashes))]
    for i in range(0, len(rows), CHUNK):
        conn.execute(extract_persons.insert(), rows[i:i + CHUNK])


def versions_holding(conn: sa.Connection, id_hash: str) -> list[tuple[str, int, str]]:
    """(permit, extract version, extract state) of every extract version that held this person."""
    rows = conn.execute(
        sa.select(extract_persons.c.permit_id, extract_persons.c.extract_version, extracts.c.state)
        .join(extracts, sa.and_(extracts.c.permit_id == extract_persons.c.permit_id,
                                extracts.c.extract_version == extract_persons.c.extract_version))
        .where(extract_persons.c.id_hash == id_hash)
        .order_by(extract_persons.c.permit_id, extract_persons.c.extract_version)).all()
    return [(r.permit_id, r.extract_version, r.state) for r in rows]


def check_person(engine: sa.Engine, id_hash: str) -> list[dict]:
    """For every permit with a current extract: whether this person is in it, and whether any
    version still on disk (not deleted) holds them. The check an operator, an auditor or the
    citizen runs after an opt-out."""
    with engine.connect() as conn:
        current = conn.execute(sa.select(extracts.c.permit_id, extracts.c.extract_version)
                               .where(extracts.c.state == "current").order_by(extracts.c.permit_id)).all()
        held = versions_holding(conn, id_hash)
    out = []
    for r in current:
        on_disk = [v for p, v, state in held if p == r.permit_id and state != "deleted"]
        out.append({"permit_id": r.permit_id, "current_version": r.extract_version,
                    "in_current": r.extract_version in on_disk, "versions_on_disk_holding": on_disk})
    return out


def current_permits_holding_any(conn: sa.Connection) -> dict[str, int]:
    """permit -> current extract version, for current extracts holding at least one opted-out person."""
    rows = conn.execute(
        sa.select(extracts.c.permit_id, extracts.c.extract_version).distinct()
        .join(extract_persons, sa.and_(extracts.c.permit_id == extract_persons.c.permit_id,
                                       extracts.c.extract_version == extract_persons.c.extract_version))
        .join(optouts, optouts.c.id_hash == extract_persons.c.id_hash)
        .where(extracts.c.state == "current")).all()
    return {r.permit_id: r.extract_version for r in rows}


def stale_versions(conn: sa.Connection, permit_id: str) -> list[int]:
    """Versions of a permit, not current and not deleted, that hold an opted-out person."""
    rows = conn.execute(
        sa.select(extracts.c.extract_version).distinct()
        .join(extract_persons, sa.and_(extracts.c.permit_id == extract_persons.c.permit_id,
                                       extracts.c.extract_version == extract_persons.c.extract_version))
        .join(optouts, optouts.c.id_hash == extract_persons.c.id_hash)
        .where(extracts.c.permit_id == permit_id, extracts.c.state == "superseded")).all()
    return sorted(r.extract_version for r in rows)
