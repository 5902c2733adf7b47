"""The lifecycle service's audit duties: a signed checkpoint every hour, a full verification every day.

On both backends the lifecycle service (hub.lifecycle) runs `audit_round` in each round; it
acts only when one is due, so a restart neither skips nor repeats work: the last periodic
checkpoint and the last verification are read back from the registry.

- checkpoint: `hub.audit.periodic.periodic_checkpoint` (its `checkpoint_due` rule: the chain grew
  and the period passed) signed by the audit signer process when it serves this SPE home, else
  with the operator key from SPE_HOME/keys (on Kubernetes the chart's keys Secret carries it);
  with neither it is skipped and said so in the log — the verification still runs, without signatures;
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
from hub.audit.checkpoint import KEY_FILE, load_or_create_signer
from hub.audit.periodic import periodic_checkpoint
from hub.audit.signer import SOCKET_NAME
from hub.audit.tables import audit_events

log = logging.getLogger("spe.lifecycle")
SYSTEM = "system"
CHECKPOINT_EVERY = timedelta(hours=1)
VERIFY_EVERY = timedelta(days=1)
_warned: list[bool] = []


def verify_due(last_verify: datetime | None, now: datetime, verify_every: timedelta = VERIFY_EVERY) -> bool:
    """Whether the whole trail is to be verified now (pure); never run means due."""
    return last_verify is None or now - last_verify >= verify_every


def _when(ts) -> datetime | None:
    if ts is None:
        return None
    when = datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def last_verified(engine: sa.Engine) -> datetime | None:
    """When the trail was last verified, from the registry."""
    with engine.connect() as conn:
        return _when(conn.execute(sa.select(sa.func.max(audit_events.c.ts))
                                  .where(audit_events.c.action == "audit.verify")).scalar())


def audit_round(engine: sa.Engine, keys_dir: Path, now: datetime | None = None,
                checkpoint_every: timedelta = CHECKPOINT_EVERY, verify_every: timedelta = VERIFY_EVERY,
                home: Path | None = None) -> list[str]:
    """Run what is due; the tasks done ("checkpoint", "verify")."""
    now = now or datetime.now(timezone.utc)
    has_key = (Path(keys_dir) / KEY_FILE).is_file()
    done = []
    if has_key or (home is not None and (Path(home) / SOCKET_NAME).exists()):
        cp = periodic_checkpoint(engine, keys_dir, actor=SYSTEM, now=now,
                                 every_seconds=checkpoint_every.total_seconds(), home=home)
        if cp is not None:
            log.info("signed audit checkpoint %s at event %s", cp["id"], cp["seq"])
            done.append("checkpoint")
    elif not _warned:
        log.warning("no audit signing key at %s and no signer process: no signed checkpoints", Path(keys_dir) / KEY_FILE)
        _warned.append(True)  # once per process, not every round
    if verify_due(last_verified(engine), now, verify_every):
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
        done.append("verify")
    return done
