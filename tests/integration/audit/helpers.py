"""Helpers for audit tests: append events through the real `record`, read and rewrite rows."""

from __future__ import annotations

import sqlalchemy as sa

from hub.audit import record
from hub.audit.chain import GENESIS, event_hash
from hub.audit.tables import audit_events, audit_head


def append(engine, n: int, *, permit_id: str = "P-1", actor: str = "alice", ts: str | None = None,
           start: int = 0) -> list[int]:
    seqs = []
    for i in range(start, start + n):
        with engine.begin() as conn:
            seqs.append(record(conn, actor=actor, role="researcher", action="session.cell", permit_id=permit_id,
                               object_id=f"k{i}", detail={"kernel_id": f"k{i}", "code": f"x = {i}", "code_bytes": 5},
                               ts=ts))
    return seqs


def rows(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(audit_events).order_by(audit_events.c.seq)).mappings()]


def tamper(engine, sql: str, **params) -> None:
    """Direct SQL on the table, as an attacker with database access would do."""
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def rewrite_chain(engine, change) -> None:
    """Recompute the whole chain after `change(row)` edits rows: a consistent forgery."""
    all_rows = rows(engine)
    prev = all_rows[0]["prev_hash"] if all_rows else GENESIS
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_events SET prev_hash = 'x' || substr(prev_hash, 2), hash = 'y' || substr(hash, 2)"))
        for r in all_rows:
            change(r)
            r["prev_hash"] = prev
            r["hash"] = event_hash(prev, r)
            prev = r["hash"]
            conn.execute(audit_events.update().where(audit_events.c.seq == r["seq"])
                         .values(**{k: v for k, v in r.items() if k != "seq"}))
        conn.execute(audit_head.update().values(seq=all_rows[-1]["seq"], hash=prev))
