"""Permits that end soon: `permits_ending(...)` (pure) picks them, `emit_ending_notices` records one
`permit.ending_soon` audit event per permit and end date, which the notifier mails to the
permit's members and the operators (hub.notify.rules). A permit whose end date is moved gets a
new notice for the new date. Must not import `egress`.
"""

from __future__ import annotations

import json
from datetime import date

import sqlalchemy as sa

from hub import audit
from hub.audit.tables import audit_events
from hub.registry_tables import permits as permits_table

OPEN = ("draft", "active", "suspended")


def permits_ending(permits: list[tuple[str, str, date]], today: date, days: int,
                   already: set[tuple[str, str]]) -> list[tuple[str, date, int]]:
    """(permit id, end date, days left) of open permits ending within `days` days, not yet told (pure)."""
    out = []
    for pid, status, valid_until in permits:
        left = (valid_until - today).days
        if status in OPEN and 0 <= left <= days and (pid, valid_until.isoformat()) not in already:
            out.append((pid, valid_until, left))
    return sorted(out)


def emit_ending_notices(engine: sa.Engine, today: date, days: int) -> int:
    """Record the due `permit.ending_soon` events; returns how many."""
    with engine.begin() as conn:
        rows = conn.execute(sa.select(permits_table.c.id, permits_table.c.status, permits_table.c.document_json)).all()
        permits = [(pid, status, date.fromisoformat(str(json.loads(doc)["valid_until"])))
                   for pid, status, doc in rows if status in OPEN]
        told = conn.execute(sa.select(audit_events.c.permit_id, audit_events.c.detail)
                            .where(audit_events.c.action == "permit.ending_soon")).all()
        already = {(pid, json.loads(detail or "{}").get("valid_until")) for pid, detail in told}
        due = permits_ending(permits, today, days, already)
        for pid, valid_until, left in due:
            audit.record(conn, actor="system", role="system", action="permit.ending_soon", permit_id=pid,
                         detail={"valid_until": valid_until.isoformat(), "days_left": left})
    return len(due)
