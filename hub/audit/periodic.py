"""Periodic checkpoints: the lifecycle service signs the chain head on a schedule.

Without them a checkpoint exists only when someone runs `spe audit checkpoint`, and the register
(`hub.audit.anchors`) would publish nothing to hold the operator to. `checkpoint_due` is the pure
rule: sign when the chain has grown past the last periodic checkpoint and that one is at least
`every_seconds` old (or there is none: then the oldest event is). Checkpoints of exports do not
count: a pack's checkpoint must not hold back the published series. `periodic_checkpoint` applies it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from hub.audit.checkpoint import checkpoint, load_or_create_signer
from hub.audit.signer import signer_for
from hub.audit.tables import audit_checkpoints, audit_events, audit_head

EVERY_SECONDS = 3600


def _parse(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def checkpoint_due(*, head_seq: int, last_seq: int | None, last_periodic_ts: str | None, now: datetime,
                   every_seconds: float = EVERY_SECONDS, first_ts: str | None = None) -> bool:
    """True when a periodic checkpoint should be signed now: the chain grew since the last
    checkpoint, and the last periodic one (or, before any, the oldest event) is `every_seconds` old."""
    if head_seq == 0 or (last_seq is not None and head_seq <= last_seq + 1):
        return False  # nothing new (one event past a checkpoint is the audit.checkpoint record itself)
    since = last_periodic_ts or first_ts
    if since is None:
        return True
    return (now - _parse(since)).total_seconds() >= every_seconds


def periodic_checkpoint(engine: sa.Engine, keys_dir: Path, *, actor: str, now: datetime | None = None,
                        every_seconds: float = EVERY_SECONDS, home: Path | None = None) -> dict | None:
    """Sign the head when `checkpoint_due`; the new checkpoint, or None. With `home`, the audit
    signer process serving that SPE home signs, when it runs (`hub.audit.signer`)."""
    now = now or datetime.now(timezone.utc)
    with engine.connect() as conn:
        head_seq = conn.execute(sa.select(audit_head.c.seq)).scalar() or 0
        # the periodic series only: checkpoints of exports (every `spe audit export` signs one)
        # must not hold back the schedule the register publishes
        periodic = audit_checkpoints.c.kind == "periodic"
        last_seq = conn.execute(sa.select(sa.func.max(audit_checkpoints.c.seq)).where(periodic)).scalar()
        last_periodic = conn.execute(sa.select(sa.func.max(audit_checkpoints.c.ts)).where(periodic)).scalar()
        first_ts = conn.execute(sa.select(audit_events.c.ts).order_by(audit_events.c.seq).limit(1)).scalar()
        conn.rollback()
    if not checkpoint_due(head_seq=head_seq, last_seq=last_seq, last_periodic_ts=last_periodic, now=now,
                          every_seconds=every_seconds, first_ts=first_ts):
        return None
    signer = signer_for(home, keys_dir) if home is not None else load_or_create_signer(keys_dir)
    return checkpoint(engine, signer, actor=actor, kind="periodic")
