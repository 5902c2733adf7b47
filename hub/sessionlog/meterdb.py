"""The byte meter's table and its I/O: the recorder's `MeterBook`, the operator's raise and listing.

`session_meter` holds one row per (permit, user, day): bytes delivered to the browser, bytes
withheld, bytes an operator added to that day's budget, and whether the 80 % warning fired.
The recorder adds its counts (`used_bytes = used_bytes + n`, never overwriting) and reads
`raised_bytes` back on every write, so `spe meter raise` (another process) takes effect within
a second without a message between the two. Only the control plane writes this table: the
workspace has no access to the registry database.
"""

from __future__ import annotations

import json
import threading
import time

import sqlalchemy as sa

from hub.db import metadata
from hub.exceptions import InvalidInput, NotFound
from hub.registry_tables import permits
from hub.sessionlog.meter import Entry, Key
from hub.sessionlog.outflow import BrowserLimits, limits_from_document

session_meter = sa.Table(
    "session_meter",
    metadata,
    sa.Column("permit_id", sa.String(100), primary_key=True),  # "" for a workspace without a permit
    sa.Column("username", sa.String(200), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),  # UTC date
    sa.Column("used_bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("withheld_bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("raised_bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("warned", sa.Boolean, nullable=False, default=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)

MAX_RAISE_BYTES = 10 * 1024 * 1024 * 1024


def _where(key: Key):
    c = session_meter.c
    return sa.and_(c.permit_id == key.permit_id, c.username == key.user, c.day == key.day)


def _ensure_row(conn: sa.Connection, key: Key) -> dict:
    from hub.audit.store import utc_now_iso

    row = conn.execute(sa.select(session_meter).where(_where(key))).mappings().first()
    if row is None:
        conn.execute(session_meter.insert().values(permit_id=key.permit_id, username=key.user, day=key.day,
                                                   used_bytes=0, withheld_bytes=0, raised_bytes=0, warned=False,
                                                   updated_at=utc_now_iso()))
        row = conn.execute(sa.select(session_meter).where(_where(key))).mappings().first()
    return dict(row)


def permit_limits(conn: sa.Connection, permit_id: str) -> BrowserLimits:
    doc = conn.execute(sa.select(permits.c.document_json).where(permits.c.id == permit_id)).scalar()
    return limits_from_document(json.loads(doc) if doc else None)


def add_counts(conn: sa.Connection, key: Key, used: int, withheld: int, warned: bool) -> int:
    """Add the recorder's counts to the row; returns the row's raised_bytes."""
    from hub.audit.store import utc_now_iso

    _ensure_row(conn, key)
    c = session_meter.c
    values = {"used_bytes": c.used_bytes + used, "withheld_bytes": c.withheld_bytes + withheld,
              "updated_at": utc_now_iso()}
    if warned:
        values["warned"] = True
    conn.execute(session_meter.update().where(_where(key)).values(**values))
    return int(conn.execute(sa.select(c.raised_bytes).where(_where(key))).scalar() or 0)


def raise_budget(engine: sa.Engine, key: Key, add_bytes: int, actor: str, reason: str) -> dict:
    """Add `add_bytes` to one user's budget of one permit for one day (audited: session.meter_raise)."""
    from hub.audit.store import record, utc_now_iso

    if not 0 < add_bytes <= MAX_RAISE_BYTES:
        raise InvalidInput(f"a raise is between 1 byte and {MAX_RAISE_BYTES} bytes, not {add_bytes}", field="bytes")
    if not reason.strip():
        raise InvalidInput("say why the budget is raised (kept in the audit trail)", field="reason")
    with engine.begin() as conn:
        if key.permit_id and conn.execute(sa.select(permits.c.id).where(permits.c.id == key.permit_id)).first() is None:
            raise NotFound(f"no permit {key.permit_id!r}")
        row = _ensure_row(conn, key)
        raised = row["raised_bytes"] + add_bytes
        conn.execute(session_meter.update().where(_where(key)).values(raised_bytes=raised, updated_at=utc_now_iso()))
        budget = permit_limits(conn, key.permit_id).daily_budget_bytes + raised
        record(conn, actor=actor, role="operator", action="session.meter_raise", permit_id=key.permit_id or None,
               object_id=key.user, detail={"user": key.user, "day": key.day, "added_bytes": add_bytes,
                                           "budget_bytes": budget, "used_bytes": row["used_bytes"],
                                           "reason": reason[:500]})
    return {**row, "raised_bytes": raised, "budget_bytes": budget}


def meter_rows(engine: sa.Engine, permit_id: str | None = None, day: str | None = None,
               user: str | None = None) -> list[dict]:
    """Rows with their budget (the permit's daily budget plus the raise), newest day first."""
    c = session_meter.c
    q = sa.select(session_meter)
    for col, value in ((c.permit_id, permit_id), (c.day, day), (c.username, user)):
        if value is not None:
            q = q.where(col == value)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q.order_by(c.day.desc(), c.permit_id, c.username)).mappings()]
        budgets = {pid: permit_limits(conn, pid).daily_budget_bytes for pid in {r["permit_id"] for r in rows}}
        conn.rollback()
    for r in rows:
        r["budget_bytes"] = budgets[r["permit_id"]] + r["raised_bytes"]
    return rows


def totals_by_permit(conn: sa.Connection) -> dict[str, tuple[int, int]]:
    """permit -> (bytes served, bytes withheld) over every day kept (for the metrics)."""
    c = session_meter.c
    q = sa.select(c.permit_id, sa.func.sum(c.used_bytes), sa.func.sum(c.withheld_bytes)).group_by(c.permit_id)
    return {pid or "none": (int(u or 0), int(w or 0)) for pid, u, w in conn.execute(q)}


class MeterBook:
    """The recorder's in-memory meter: charged on the event loop (no I/O per message), loaded
    from the table on a key's first use and written back by `flush()` (called about every
    second from the recorder's writer thread), which also picks up operator raises."""

    LIMITS_TTL_SECONDS = 30.0

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.entries: dict[Key, Entry] = {}
        self._limits: dict[str, tuple[float, BrowserLimits]] = {}
        self._lock = threading.Lock()  # entries are charged on the loop and flushed from a thread

    def limits(self, permit_id: str) -> BrowserLimits:
        hit = self._limits.get(permit_id)
        if hit is None or time.monotonic() - hit[0] > self.LIMITS_TTL_SECONDS:
            with self.engine.connect() as conn:
                hit = (time.monotonic(), permit_limits(conn, permit_id) if permit_id else BrowserLimits())
                conn.rollback()
            self._limits[permit_id] = hit
        return hit[1]

    def entry(self, key: Key) -> Entry:
        entry = self.entries.get(key)
        if entry is None:
            base = self.limits(key.permit_id).daily_budget_bytes
            with self.engine.begin() as conn:
                row = _ensure_row(conn, key)
            entry = Entry(used=row["used_bytes"], withheld=row["withheld_bytes"], raised=row["raised_bytes"],
                          warned=bool(row["warned"]), base_budget=base)
            with self._lock:
                entry = self.entries.setdefault(key, entry)
        return entry

    def charge(self, key: Key, size: int, control: bool = False):
        entry = self.entry(key)
        with self._lock:
            return entry.charge(size, control)

    def flush(self) -> None:
        for key, entry in list(self.entries.items()):
            with self._lock:
                pending = entry.take_pending()
            try:
                if any(pending):
                    with self.engine.begin() as conn:
                        raised = add_counts(conn, key, *pending)
                else:  # nothing to add: only look for an operator's raise
                    with self.engine.connect() as conn:
                        raised = int(conn.execute(sa.select(session_meter.c.raised_bytes)
                                                  .where(_where(key))).scalar() or 0)
                        conn.rollback()
            except Exception:
                with self._lock:
                    entry.give_back(pending)
                raise
            with self._lock:
                entry.raise_to(raised)
                entry.base_budget = self.limits(key.permit_id).daily_budget_bytes
            if key.day < max(k.day for k in self.entries) and not (entry.pending_used or entry.pending_withheld):
                self.entries.pop(key, None)  # an earlier day: written, no longer charged
