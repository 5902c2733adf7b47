"""Audit store: append events to the chain and verify it (the only code that writes audit rows).

Writers serialise on the single `audit_head` row, so the hub, the egress service and the CLI,
in different processes, extend one chain and never fork it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

import sqlalchemy as sa

from hub.audit.chain import GENESIS, SCHEMA_VERSION, Damage, canonical_detail, event_hash, find_damage
from hub.audit.tables import audit_events, audit_head

OUTCOMES = ("ok", "refused", "failed")


def ensure_head(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        if conn.execute(sa.select(audit_head.c.id)).first() is None:
            conn.execute(audit_head.insert().values(id=1, seq=0, hash=GENESIS))


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record(conn: sa.Connection, *, actor: str, action: str, role: str | None = None,
           permit_id: str | None = None, object_id: str | None = None, outcome: str = "ok",
           detail: dict | None = None, ts: str | None = None) -> int:
    """Append one event in the caller's transaction; returns its sequence number."""
    if outcome not in OUTCOMES:
        raise ValueError(f"audit outcome must be one of {OUTCOMES}, not {outcome!r}")
    head_q = sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
    if conn.dialect.name != "sqlite":
        head_q = head_q.with_for_update()
    head = conn.execute(head_q).one()
    event = {
        "schema_version": SCHEMA_VERSION,
        "ts": ts or utc_now_iso(),
        "actor": actor,
        "role": role,
        "action": action,
        "permit_id": permit_id,
        "object_id": object_id,
        "outcome": outcome,
        "detail": canonical_detail(detail),
    }
    seq = head.seq + 1
    digest = event_hash(head.hash, event)
    conn.execute(audit_events.insert().values(seq=seq, prev_hash=head.hash, hash=digest, **event))
    updated = conn.execute(
        audit_head.update().where(audit_head.c.id == 1, audit_head.c.seq == head.seq).values(seq=seq, hash=digest)
    )
    if updated.rowcount != 1:  # pragma: no cover - only without the head lock
        raise RuntimeError("audit chain head moved during append")
    return seq


def iter_events(conn: sa.Connection, *, where=None, batch: int = 5000) -> Iterator[dict]:
    """Events in seq order, fetched in batches (an export or verify never loads all)."""
    last = -1
    while True:
        q = sa.select(audit_events).where(audit_events.c.seq > last)
        if where is not None:
            q = q.where(where)
        rows = conn.execute(q.order_by(audit_events.c.seq).limit(batch)).mappings().all()
        if not rows:
            return
        for row in rows:
            yield dict(row)
        last = rows[-1]["seq"]


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events: int
    damage: Damage | None = None

    def describe(self) -> str:
        if self.ok:
            return f"audit trail verified: {self.events} events, chain intact"
        return f"audit trail DAMAGED at event {self.damage.seq} ({self.damage.kind}): {self.damage.message}"


def verify(engine: sa.Engine) -> VerifyResult:
    with engine.connect() as conn:
        head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).one()
        count = 0

        def counted():
            nonlocal count
            for row in iter_events(conn):
                count += 1
                yield row

        damage = find_damage(counted(), head=(head.seq, head.hash))
    return VerifyResult(ok=damage is None, events=count, damage=damage)
