"""Audit store: append events to the chain, verify it, sign checkpoints, purge by retention.

This is the only code that writes audit rows. Writers serialise on the single `audit_head`
row (BEGIN IMMEDIATE on SQLite, SELECT ... FOR UPDATE on PostgreSQL), so the hub, the egress
service and the CLI, in different processes, extend one chain and never fork it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterator

import sqlalchemy as sa

from hub.audit.chain import (FIELDS, GENESIS, NULL, SCHEMA_VERSION, SEP, ChainWalker, Damage, canonical_detail,
                              content_hash_values, link_hash)
from hub.audit.checkpoint import Signer, Verifier, chain_base, check_signatures, load_checkpoints, make_checkpoint
from hub.audit.events import event_type, missing_keys
from hub.audit.tables import audit_events, audit_head
from hub.exceptions import InvalidInput, Refused

log = logging.getLogger("spe.audit")

OUTCOMES = ("ok", "refused", "failed")
# EHDS Art. 73(1)(e): logs kept "for at least one year".
MIN_RETENTION_DAYS = 365
DEFAULT_RETENTION_DAYS = 365
# Column order of a chain row read for verification (content fields follow the links).
_ROW_COLUMNS = ("seq", "prev_hash", "hash", "schema_version", "ts", "actor", "role", "action",
                "permit_id", "object_id", "outcome", "detail")


def ensure_head(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        if conn.execute(sa.select(audit_head.c.id)).first() is None:
            conn.execute(audit_head.insert().values(id=1, seq=0, hash=GENESIS))


def utc_now_iso(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lock_head(conn: sa.Connection):
    q = sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
    if conn.dialect.name != "sqlite":
        q = q.with_for_update()
    return conn.execute(q).one()


def _mark(dialect) -> str:
    return "?" if dialect.paramstyle == "qmark" else "%s"


def _statements(dialect) -> tuple[str, str, str]:
    """Plain driver SQL for the append path (built once per dialect: this is the hot path,
    and SQLAlchemy expression construction cost more than the database work)."""
    m = _mark(dialect)
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
    """Chain rows as plain tuples in `_ROW_COLUMNS` order, keyset-paginated on a raw DBAPI cursor.

    Verification of a million events is dominated by row materialisation; plain tuples avoid
    the ORM row overhead, and the raw connection does not open a write transaction (on SQLite
    every SQLAlchemy transaction is BEGIN IMMEDIATE, which would block writers for the walk).
    """
    mark = _mark(engine.dialect)
    sql = (f"SELECT {', '.join(_ROW_COLUMNS)} FROM audit_events WHERE seq > {mark}"
           + (f" AND seq <= {mark}" if upto_seq is not None else "") + f" ORDER BY seq LIMIT {int(batch)}")
    yield from _paged(engine, sql, after_seq, upto_seq, batch)


def chain_tuples(rows) -> Iterator[tuple]:
    """(seq, prev_hash, hash, content_hash) for the walker, from `_ROW_COLUMNS` tuples."""
    chv = content_hash_values
    for r in rows:
        yield (r[0], r[1], r[2], chv(r[3:]))


def iter_chain_rows(engine: sa.Engine, *, after_seq: int = 0, upto_seq: int | None = None,
                    batch: int = 50000) -> Iterator[tuple]:
    """(seq, prev_hash, hash, content_hash) with the canonical content string built by the
    database (string concatenation in C is several times faster than in Python)."""
    ch = "char" if engine.dialect.name == "sqlite" else "chr"
    sep, null = f"{ch}({ord(SEP)})", f"{ch}({ord(NULL)})"
    parts = []
    for f in FIELDS:
        col = "CAST(schema_version AS TEXT)" if f == "schema_version" else f
        parts.append(f"COALESCE({col}, {null})")
    content_sql = f" || {sep} || ".join(parts)
    mark = _mark(engine.dialect)
    sql = (f"SELECT seq, prev_hash, hash, {content_sql} FROM audit_events WHERE seq > {mark}"
           + (f" AND seq <= {mark}" if upto_seq is not None else "") + f" ORDER BY seq LIMIT {int(batch)}")
    sha = hashlib.sha256
    for seq, prev, h, content in _paged(engine, sql, after_seq, upto_seq, batch):
        yield (seq, prev, h, sha(content.encode("utf-8")).hexdigest())  # content_hash_of_string, inlined


def _paged(engine: sa.Engine, sql: str, after_seq: int, upto_seq: int | None, batch: int) -> Iterator[tuple]:
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


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events: int
    damage: Damage | None = None
    head_seq: int = 0
    base_seq: int = 0  # events up to here were purged under retention (0: none)
    checkpoints: int = 0
    signatures_checked: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        if not self.ok:
            return f"audit trail DAMAGED at event {self.damage.seq} ({self.damage.kind}): {self.damage.message}"
        sig = "signatures checked" if self.signatures_checked else "signatures NOT checked (no key)"
        base = f", starting after purged event {self.base_seq}" if self.base_seq else ""
        return (f"audit trail verified: {self.events} events up to {self.head_seq}{base}, chain intact, "
                f"{self.checkpoints} checkpoint(s), {sig}")

    def as_dict(self) -> dict:
        return {"ok": self.ok, "events": self.events, "head_seq": self.head_seq, "base_seq": self.base_seq,
                "checkpoints": self.checkpoints, "signatures_checked": self.signatures_checked,
                "damage": None if self.damage is None else
                {"seq": self.damage.seq, "kind": self.damage.kind, "message": self.damage.message}}


def _walk_segment(url: str, start_prev: str, after_seq: int, upto_seq: int, checkpoints: dict,
                  batch: int) -> tuple[bool, int, str | None]:
    """Worker: verify one seq range on its own connection -> (intact, events, last hash)."""
    engine = sa.create_engine(url)  # a plain engine: read-only work, no table creation
    try:
        walker = ChainWalker(start_prev=start_prev, after_seq=after_seq, checkpoints=checkpoints)
        walker.walk(iter_chain_rows(engine, after_seq=after_seq, upto_seq=upto_seq, batch=batch))
        return walker.damage is None, walker.count, walker.prev_hash
    finally:
        engine.dispose()


def _hash_at_or_before(engine: sa.Engine, seq: int) -> str | None:
    with engine.connect() as conn:
        h = conn.execute(sa.select(audit_events.c.hash).where(audit_events.c.seq <= seq)
                         .order_by(audit_events.c.seq.desc()).limit(1)).scalar()
        conn.rollback()
    return h


def _verify_parallel(engine, workers, base_seq, start_prev, head, cps, batch) -> int | None:
    """Events verified when every segment is intact and the segments link; None otherwise.

    Each event's own hash and its link to the previous row are independent of the rest, so
    seq ranges can be checked side by side; the segment seams are then compared here.
    """
    import multiprocessing as mp

    span = head.seq - base_seq
    bounds = [base_seq + span * i // workers for i in range(workers + 1)]
    starts = [start_prev] + [_hash_at_or_before(engine, b) for b in bounds[1:-1]]
    if any(h is None for h in starts):
        return None
    url = engine.url.render_as_string(hide_password=False)
    ctx = mp.get_context("spawn")  # never fork a process that may hold threads (the hub)
    with ctx.Pool(workers) as pool:
        results = pool.starmap(_walk_segment, [
            (url, starts[i], bounds[i], bounds[i + 1], {s: h for s, h in cps.items() if bounds[i] < s <= bounds[i + 1]},
             batch) for i in range(workers)])
    for i, (intact, _n, last_hash) in enumerate(results):
        if not intact:
            return None
        seam = starts[i + 1] if i + 1 < workers else head.hash
        if last_hash != seam:
            return None
    return sum(n for _ok, n, _h in results)


def verify(engine: sa.Engine, *, verifier: Verifier | None = None, batch: int = 50000,
           workers: int = 1) -> VerifyResult:
    """Walk the stored chain from its base (genesis, or the latest signed purge checkpoint).

    With `verifier` (the operator's public key) every checkpoint signature is checked and a
    whole-chain rewrite shows as a checkpoint hash mismatch; without it only the links are.
    `workers` > 1 checks seq ranges in parallel processes (for large trails); if anything is
    wrong the chain is walked again in one pass to name the first damage exactly.
    """
    with engine.connect() as conn:
        head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).one()
        checkpoints = load_checkpoints(conn)
        conn.rollback()
    common = {"head_seq": head.seq, "checkpoints": len(checkpoints), "signatures_checked": verifier is not None}
    bad = check_signatures(checkpoints, verifier)
    if bad is not None:
        return VerifyResult(ok=False, events=0, damage=bad, **common)
    base = chain_base(checkpoints)
    base_seq, start_prev = (base["seq"], base["hash"]) if base else (0, GENESIS)
    cps = {cp["seq"]: cp["hash"] for cp in checkpoints if cp["seq"] > base_seq}
    if workers > 1 and head.seq - base_seq >= 10 * batch and not any(s > head.seq for s in cps):
        count = _verify_parallel(engine, workers, base_seq, start_prev, head, cps, batch)
        if count is not None and count == head.seq - base_seq:
            return VerifyResult(ok=True, events=count, base_seq=base_seq, **common)
    walker = ChainWalker(start_prev=start_prev, after_seq=base_seq, checkpoints=cps)
    # Read only up to the head seen above: events appended meanwhile are not part of this check.
    walker.walk(iter_chain_rows(engine, after_seq=base_seq, upto_seq=head.seq, batch=batch))
    damage = walker.finish((head.seq, head.hash))
    return VerifyResult(ok=damage is None, events=walker.count, damage=damage, base_seq=base_seq, **common)


def checkpoint(engine: sa.Engine, signer: Signer, *, actor: str, kind: str = "periodic") -> dict:
    """Sign the current head, store the checkpoint and audit the act (one transaction)."""
    with engine.begin() as conn:
        cp = make_checkpoint(conn, signer, kind=kind, ts=utc_now_iso())
        record(conn, actor=actor, role="operator", action="audit.checkpoint", object_id=str(cp["id"]),
               detail={"seq": cp["seq"], "hash": cp["hash"], "kind": kind, "key_id": signer.key_id})
    return cp


def checkpoint_if_due(engine: sa.Engine, signer: Signer, *, actor: str, interval_seconds: float,
                      now: datetime | None = None) -> dict | None:
    """A periodic checkpoint when the last one is older than `interval_seconds` and the head moved."""
    now = now or datetime.now(timezone.utc)
    with engine.connect() as conn:
        cps = load_checkpoints(conn)
        head = conn.execute(sa.select(audit_head.c.seq)).scalar_one()
        conn.rollback()
    if cps:
        latest = max(cps, key=lambda c: c["ts"])
        if latest["seq"] >= head - 1 or latest["ts"] > utc_now_iso(now - timedelta(seconds=interval_seconds)):
            return None
    return checkpoint(engine, signer, actor=actor)


def retention_cutoff(*, retention_days: int | None = None, before: datetime | None = None,
                     now: datetime | None = None) -> datetime:
    """The purge cutoff; refuses anything that would keep less than MIN_RETENTION_DAYS."""
    now = now or datetime.now(timezone.utc)
    if (retention_days is None) == (before is None):
        raise InvalidInput("give exactly one of --before or --retention-days", field="before")
    if retention_days is not None:
        if retention_days < MIN_RETENTION_DAYS:
            raise Refused(f"retention of {retention_days} days is below the minimum of {MIN_RETENTION_DAYS} days "
                          f"(EHDS Art. 73(1)(e): logs are kept at least one year)")
        return now - timedelta(days=retention_days)
    if before.tzinfo is None:
        before = before.replace(tzinfo=timezone.utc)
    if before > now - timedelta(days=MIN_RETENTION_DAYS):
        raise Refused(f"cutoff {before.date()} would purge events younger than the minimum retention of "
                      f"{MIN_RETENTION_DAYS} days (latest allowed: {(now - timedelta(days=MIN_RETENTION_DAYS)).date()})")
    return before


@dataclass(frozen=True)
class PurgeResult:
    events: int
    through_seq: int
    checkpoint: dict | None


def purge(engine: sa.Engine, signer: Signer, *, actor: str, cutoff: datetime,
          verifier: Verifier | None = None) -> PurgeResult:
    """Remove the contiguous prefix of events older than `cutoff`, keeping the rest verifiable.

    Refused when the chain is damaged (purging would destroy the evidence). In one transaction:
    sign a `purge` checkpoint at the last removed event (the new chain base), delete the prefix,
    and record `audit.purge`.
    """
    result = verify(engine, verifier=verifier or signer.verifier())
    if not result.ok:
        raise Refused(f"refusing to purge a damaged audit trail: {result.describe()}")
    cutoff_iso = utc_now_iso(cutoff)
    with engine.begin() as conn:
        _lock_head(conn)
        first_kept = conn.execute(sa.select(sa.func.min(audit_events.c.seq))
                                  .where(audit_events.c.ts >= cutoff_iso)).scalar()
        oldest = conn.execute(sa.select(sa.func.min(audit_events.c.seq))).scalar()
        if oldest is None:
            return PurgeResult(0, 0, None)
        through = (first_kept - 1) if first_kept is not None else conn.execute(
            sa.select(sa.func.max(audit_events.c.seq))).scalar()
        if through < oldest:
            return PurgeResult(0, through, None)
        last_hash = conn.execute(sa.select(audit_events.c.hash).where(audit_events.c.seq == through)).scalar_one()
        cp = make_checkpoint(conn, signer, kind="purge", seq=through, hash_=last_hash, ts=utc_now_iso())
        deleted = conn.execute(audit_events.delete().where(audit_events.c.seq <= through)).rowcount
        record(conn, actor=actor, role="operator", action="audit.purge", object_id=str(cp["id"]),
               detail={"before": cutoff_iso, "through_seq": through, "events": deleted,
                       "checkpoint_id": cp["id"], "base_hash": last_hash})
    return PurgeResult(deleted, through, cp)
