"""Audit store: append events to the chain and read them back. The only code that writes audit rows.

Writers serialise on the single `audit_head` row (BEGIN IMMEDIATE on SQLite, SELECT ... FOR
UPDATE on PostgreSQL), so the hub, the egress service and the CLI, in different processes,
extend one chain and never fork it. Verification is `hub.audit.verification`, signed
checkpoints `hub.audit.checkpoint`, purging by retention `hub.audit.retention`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Iterator

import sqlalchemy as sa

from hub.audit.attestation import with_attestation
from hub.audit.chain import FIELDS, GENESIS, SCHEMA_VERSION, canonical_detail, content_hash_values, link_hash
from hub.audit.events import event_type, missing_keys
from hub.audit.tables import audit_events, audit_head
from hub.exceptions import InvalidInput

log = logging.getLogger("spe.audit")

OUTCOMES = ("ok", "refused", "failed")
# Column order of a chain row read for verification (content fields follow the links).
ROW_COLUMNS = ("seq", "prev_hash", "hash", "schema_version", "ts", "actor", "role", "action",
               "permit_id", "object_id", "outcome", "detail")


def ensure_head(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        if conn.execute(sa.select(audit_head.c.id)).first() is None:
            conn.execute(audit_head.insert().values(id=1, seq=0, hash=GENESIS))


def utc_now_iso(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lock_head(conn: sa.Connection):
    """The chain head (seq, hash), locked until the caller's transaction ends."""
    q = sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
    if conn.dialect.name != "sqlite":
        q = q.with_for_update()
    return conn.execute(q).one()


def param_mark(dialect) -> str:
    return "?" if dialect.paramstyle == "qmark" else "%s"


def _statements(dialect) -> tuple[str, str, str]:
    """Plain driver SQL for the append path (built once per dialect: this is the hot path,
    and SQLAlchemy expression construction cost more than the database work)."""
    m = param_mark(dialect)
    lock = " FOR UPDATE" if dialect.name != "sqlite" else ""
    head = f"SELECT seq, hash FROM audit_head WHERE id = 1{lock}"
    insert = (f"INSERT INTO audit_events (seq, prev_hash, hash, {', '.join(FIELDS)}) "
              f"VALUES ({', '.join([m] * (3 + len(FIELDS)))})")
    update = f"UPDATE audit_head SET seq = {m}, hash = {m} WHERE id = 1 AND seq = {m}"
    return head, insert, update


_SQL_CACHE: dict[str, tuple[str, str, str]] = {}
_CONTROL = {chr(c) for c in range(32)} | {"\x7f"}
# Column widths (hub.audit.tables); values from outside (a login name, an object path) are
# escaped and shortened to fit rather than refused: an attacker must not be able to dodge the
# trail with a hostile name. Code-defined fields (action, role, ts) are refused instead.
_LIMITS = {"actor": 200, "permit_id": 100, "object_id": 300}
_STRICT = {"action": 100, "role": 50, "ts": 32}


def _escape(value: str) -> str:
    return "".join(f"\\u{ord(ch):04x}" if ch in _CONTROL else ch for ch in value)


def _clean(name: str, value):
    """Outside text: control characters escaped (they would make the canonical content
    ambiguous and forge log lines), then shortened to the column width with a marker."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"must be text, not {type(value).__name__}", field=name)
    value = _escape(value)
    limit = _LIMITS[name]
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _check_plain(name: str, value) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidInput(f"must be text, not {type(value).__name__}", field=name)
    if len(value) > _STRICT[name] or any(ch in _CONTROL for ch in value):
        raise InvalidInput(f"must be at most {_STRICT[name]} characters without control characters", field=name)


def make_event(*, actor: str, action: str, role: str | None = None, permit_id: str | None = None,
               object_id: str | None = None, outcome: str = "ok", detail: dict | None = None,
               ts: str | None = None) -> tuple:
    """Validate one event against the schema registry; its field values in FIELDS order."""
    if outcome not in OUTCOMES:
        raise InvalidInput(f"must be one of {OUTCOMES}, not {outcome!r}", field="outcome")
    if not actor or not action:
        raise InvalidInput("actor and action are required", field="actor" if not actor else "action")
    for name, value in (("action", action), ("role", role), ("ts", ts)):
        _check_plain(name, value)
    detail = with_attestation(actor, detail)  # who the local operator really is (hub.identity)
    actor, permit_id, object_id = _clean("actor", actor), _clean("permit_id", permit_id), _clean("object_id", object_id)
    missing = missing_keys(action, detail)
    if missing:
        raise InvalidInput(f"audit event {action!r} lacks required detail key(s): {', '.join(missing)}",
                           field="detail")
    etype = event_type(action)
    if etype is None:
        log.warning("audit action %r is not registered in hub.audit.events", action)
    elif etype.version != 1:
        detail = {**(detail or {}), "v": etype.version}
    return (SCHEMA_VERSION, ts or utc_now_iso(), actor, role, action, permit_id, object_id, outcome,
            canonical_detail(detail))


def record(conn: sa.Connection, *, actor: str, action: str, role: str | None = None,
           permit_id: str | None = None, object_id: str | None = None, outcome: str = "ok",
           detail: dict | None = None, ts: str | None = None) -> int:
    """Append one event in the caller's transaction; returns its sequence number.

    A registered action (hub.audit.events) must carry its required detail keys; a missing
    key raises InvalidInput and, because the caller's transaction rolls back, the state
    change it was meant to document does not happen either (fail closed).
    """
    values = make_event(actor=actor, action=action, role=role, permit_id=permit_id, object_id=object_id,
                        outcome=outcome, detail=detail, ts=ts)
    return _append(conn, [values])


def record_many(conn: sa.Connection, events: list[dict]) -> int:
    """Append several events (dicts of `record`'s keyword arguments) in order, in the caller's
    transaction, taking the head lock once (for buffered writers such as the session recorder).
    Returns the seq of the last one."""
    if not events:
        raise InvalidInput("no events to record", field="events")
    return _append(conn, [make_event(**e) for e in events])


def _append(conn: sa.Connection, events: list[tuple]) -> int:
    sql = _SQL_CACHE.get(conn.dialect.name)
    if sql is None:
        sql = _SQL_CACHE[conn.dialect.name] = _statements(conn.dialect)
    head_sql, insert_sql, update_sql = sql
    head_seq, prev = conn.exec_driver_sql(head_sql).one()
    seq = head_seq
    rows = []
    for values in events:
        seq += 1
        digest = link_hash(prev, content_hash_values(values))
        rows.append((seq, prev, digest, *values))
        prev = digest
    if len(rows) == 1:
        conn.exec_driver_sql(insert_sql, rows[0])
    else:
        conn.exec_driver_sql(insert_sql, rows)
    updated = conn.exec_driver_sql(update_sql, (seq, prev, head_seq))
    if updated.rowcount != 1:  # only possible without the head lock
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


def iter_raw_rows(engine: sa.Engine, *, after_seq: int = 0, upto_seq: int | None = None,
                  batch: int = 50000) -> Iterator[tuple]:
    """Chain rows as plain tuples in `ROW_COLUMNS` order (for evidence packs)."""
    yield from paged_rows(engine, ", ".join(ROW_COLUMNS), after_seq=after_seq, upto_seq=upto_seq, batch=batch)


def paged_rows(engine: sa.Engine, select_list: str, *, after_seq: int, upto_seq: int | None,
               batch: int) -> Iterator[tuple]:
    """`SELECT <select_list> FROM audit_events` (first column: seq) for after_seq < seq <= upto_seq,
    in seq order, keyset-paginated on a raw DBAPI cursor.

    Verification of a million events is dominated by row materialisation; plain tuples avoid
    the ORM row overhead, and the raw connection does not open a write transaction (on SQLite
    every SQLAlchemy transaction is BEGIN IMMEDIATE, which would block writers for the walk).
    """
    mark = param_mark(engine.dialect)
    sql = (f"SELECT {select_list} FROM audit_events WHERE seq > {mark}"
           + (f" AND seq <= {mark}" if upto_seq is not None else "") + f" ORDER BY seq LIMIT {int(batch)}")
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        last = after_seq
        while True:
            cur.execute(sql, (last, upto_seq) if upto_seq is not None else (last,))
            rows = cur.fetchall()
            if not rows:
                break
            yield from rows
            last = rows[-1][0]
            if len(rows) < batch:
                break
        cur.close()
        try:
            raw.rollback()
        except Exception:  # autocommit SQLite connection: nothing to roll back
            pass
    finally:
        raw.close()
