"""The lifecycle service's audit duties: a signed checkpoint every hour, a full verification every day.

On both backends the lifecycle service (hub.lifecycle) runs `audit_round` in each round; it
acts only when one is due (`due_tasks`, pure), so a restart neither skips nor repeats work:
the last periodic checkpoint and the last verification are read back from the registry.

- checkpoint: `hub.audit.checkpoint.checkpoint` with the operator key from SPE_HOME/keys
  (on Kubernetes the chart's keys Secret carries it); with no key it is skipped and said so
  once per round in the log — the verification still runs, without signatures;
- verification: `hub.audit.verify` over the whole trail (signatures checked when the key is
  there), recorded as `audit.verify` by `system`: its outcome is the metric
  `spe_audit_last_verification_ok` and the chart's alert rules fire on it.

Must not import `egress`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from hub.audit import record, verify
from hub.audit.checkpoint import KEY_FILE, checkpoint, load_or_create_signer
from hub.audit.tables import audit_checkpoints, audit_events

log = logging.getLogger("spe.lifecycle")
SYSTEM = "system"
CHECKPOINT_EVERY = timedelta(hours=1)
VERIFY_EVERY = timedelta(days=1)


def due_tasks(last_checkpoint: datetime | None, last_verify: datetime | None, now: datetime,
              checkpoint_every: timedelta = CHECKPOINT_EVERY, verify_every: timedelta = VERIFY_EVERY) -> list[str]:
    """Which of "checkpoint" and "verify" are due now (pure); never run means due."""
    out = []
    if last_checkpoint is None or now - last_checkpoint >= checkpoint_every:
        out.append("checkpoint")
    if last_verify is None or now - last_verify >= verify_every:
        out.append("verify")
    return out


def _when(ts) -> datetime | None:
    if ts is None:
        return None
    when = datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def last_done(engine: sa.Engine) -> tuple[datetime | None, datetime | None]:
    """(last periodic checkpoint, last verification) from the registry."""
    with engine.connect() as conn:
        cp = conn.execute(sa.select(sa.func.max(audit_checkpoints.c.ts))
                          .where(audit_checkpoints.c.kind == "periodic")).scalar()
        ver = conn.execute(sa.select(sa.func.max(audit_events.c.ts))
                           .where(audit_events.c.action == "audit.verify")).scalar()
    return _when(cp), _when(ver)


def audit_round(engine: sa.Engine, keys_dir: Path, now: datetime | None = None,
                checkpoint_every: timedelta = CHECKPOINT_EVERY, verify_every: timedelta = VERIFY_EVERY) -> list[str]:
    """Run what is due; the tasks done ("checkpoint", "verify")."""
    now = now or datetime.now(timezone.utc)
    has_key = (Path(keys_dir) / KEY_FILE).is_file()
    done = []
    for task in due_tasks(*last_done(engine), now, checkpoint_every, verify_every):
        if task == "checkpoint":
            if not has_key:
                log.warning("no audit signing key at %s: no signed checkpoint this round", Path(keys_dir) / KEY_FILE)
                continue
            cp = checkpoint(engine, load_or_create_signer(keys_dir), actor=SYSTEM)
            log.info("signed audit checkpoint %s at event %s", cp["id"], cp["seq"])
        else:
            verifier = load_or_create_signer(keys_dir).verifier() if has_key else None
            result = verify(engine, verifier=verifier)
            detail = {"ok": result.ok, "events": result.events, "head_seq": result.head_seq,
                      "signatures_checked": result.signatures_checked, "scheduled": True}
            if result.damage:
                detail.update(damage_kind=result.damage.kind, damage_seq=result.damage.seq)
            with engine.begin() as conn:
                record(conn, actor=SYSTEM, role="system", action="audit.verify",
                       outcome="ok" if result.ok else "failed", detail=detail)
            (log.info if result.ok else log.error)("audit verification: %s", result.describe())
        done.append(task)
    return done
