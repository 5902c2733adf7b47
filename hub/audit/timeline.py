"""Auditor timeline: one permit's (or one user's) events in order, as readable steps.

Pure query over `audit_events` plus a pure formatter; streams (keyset batches), read-only.
"""

from __future__ import annotations

import json
from typing import Iterator

import sqlalchemy as sa

from hub.audit.store import iter_events
from hub.audit.tables import audit_events


def _detail(row: dict) -> dict:
    try:
        return json.loads(row["detail"]) if row.get("detail") else {}
    except ValueError:
        return {}


def describe_event(row: dict) -> str:
    """One line for a timeline; session events show the code or command (truncated)."""
    d = _detail(row)
    a = row["action"]
    if a == "session.cell":
        code = d.get("code", "").replace("\n", "⏎ ")
        return f"ran cell in kernel {d.get('kernel_id', '?')[:8]}: {code[:120]}"
    if a == "session.terminal":
        return f"terminal {d.get('terminal', '?')}: {d.get('command', '')[:120]}"
    if a == "session.file_save":
        return f"saved {d.get('path')} ({d.get('size_bytes')} bytes)"
    if a == "session.cell_output":
        return f"kernel {d.get('kernel_id', '?')[:8]} output {d.get('output_bytes')} bytes"
    keys = ", ".join(f"{k}={v}" for k, v in sorted(d.items()) if k not in ("code",))[:160]
    return f"{a}" + (f" ({keys})" if keys else "")


def timeline(conn: sa.Connection, *, permit_id: str | None = None, user: str | None = None,
             actions: tuple[str, ...] | None = None, ts_from: str | None = None,
             ts_to: str | None = None) -> Iterator[dict]:
    """Matching events in chain order, each with a `summary` line."""
    conds = []
    if permit_id:
        conds.append(audit_events.c.permit_id == permit_id)
    if user:
        conds.append(audit_events.c.actor == user)
    if actions:
        prefixes = [a for a in actions if a.endswith(".")]
        exact = [a for a in actions if not a.endswith(".")]
        ors = [audit_events.c.action.in_(exact)] if exact else []
        ors += [audit_events.c.action.startswith(p) for p in prefixes]
        conds.append(sa.or_(*ors))
    if ts_from:
        conds.append(audit_events.c.ts >= ts_from)
    if ts_to:
        conds.append(audit_events.c.ts < ts_to)
    where = sa.and_(*conds) if conds else None
    for row in iter_events(conn, where=where, batch=2000):
        row["summary"] = describe_event(row)
        yield row
