"""Audit retention: purge the events older than a cutoff and keep the rest verifiable.

EHDS Art. 73(1)(e) keeps logs "for at least one year": a cutoff that would purge younger events
is refused. A purge signs a `purge` checkpoint at the last removed event, which becomes the base
that `hub.audit.verification` starts from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from hub.audit.checkpoint import Signer, Verifier, make_checkpoint
from hub.audit.store import lock_head, record, utc_now_iso
from hub.audit.tables import audit_events
from hub.audit.verification import verify
from hub.exceptions import InvalidInput, Refused

MIN_RETENTION_DAYS = 365


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
        lock_head(conn)
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
