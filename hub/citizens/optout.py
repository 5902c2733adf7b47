"""A citizen's own opt-out (EHDS Art. 71) and its propagation into live permits.

`opt_out` adds the person's keyed hash to the same register `spe optout import` fills (a second
opt-out is a 409, nothing stored twice) and schedules every active permit whose current extract
holds them for re-provisioning within `delay_days` (default 7). `withdraw` removes the entry;
the next provisioning includes the person again (nothing is re-provisioned for it).
`propagate_due` is one round: each due permit is re-provisioned (the register excludes the person),
then its older versions still holding an opted-out person are deleted, audited without saying who
left. Run by the citizens' service on a period and by `spe optout propagate`.
Must not import `egress`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from hub import audit
from hub.exceptions import Conflict, InvalidInput, NotFound
from hub.citizens.membership import current_permits_holding_any, stale_versions
from hub.citizens.tables import optout_propagations
from hub.permits.store import PermitStore
from hub.provision.extracts import delete_extract_versions
from hub.registry_tables import optouts

log = logging.getLogger("spe.citizens.optout")
DEFAULT_DELAY_DAYS = 7
MAX_DELAY_DAYS = 30
LIVE = ("active", "suspended")


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_delay(days) -> int:
    if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= MAX_DELAY_DAYS:
        raise InvalidInput(f"the propagation delay must be 0-{MAX_DELAY_DAYS} days", field="delay_days")
    return days


def status(engine: sa.Engine, id_hash: str) -> dict:
    with engine.connect() as conn:
        row = conn.execute(sa.select(optouts).where(optouts.c.id_hash == id_hash)).mappings().first()
    return {"opted_out": row is not None, "since": row["imported_at"] if row else None,
            "source": ("citizen" if row and row["batch"].startswith("citizen:") else "register") if row else None}


def opt_out(engine: sa.Engine, id_hash: str, actor: str, delay_days: int = DEFAULT_DELAY_DAYS,
            now: datetime | None = None) -> dict:
    """Register the opt-out and schedule propagation; returns {"permits_scheduled": n, "due_at": ...}."""
    check_delay(delay_days)
    now = now or datetime.now(timezone.utc)
    due = _iso(now + timedelta(days=delay_days))
    with engine.begin() as conn:
        already = conn.execute(sa.select(optouts.c.id_hash).where(optouts.c.id_hash == id_hash)).first()
        if already:  # the refusal is audited in its own transaction, nothing else changes
            audit.record(conn, actor=actor, role="citizen", action="optout.citizen", outcome="refused",
                         detail={"reason": "already opted out"})
    if already:
        raise Conflict("you have already opted out; nothing was changed")
    with engine.begin() as conn:
        if conn.execute(sa.select(optouts.c.id_hash).where(optouts.c.id_hash == id_hash)).first():
            raise Conflict("you have already opted out; nothing was changed")
        conn.execute(optouts.insert().values(id_hash=id_hash, imported_at=_iso(now), batch=f"citizen:{_iso(now)}"))
        scheduled = schedule(conn, now, due)
        audit.record(conn, actor=actor, role="citizen", action="optout.citizen",
                     detail={"permits_scheduled": len(scheduled), "due_at": due})
    return {"permits_scheduled": len(scheduled), "due_at": due}


def schedule(conn: sa.Connection, now: datetime, due: str) -> list[str]:
    """Every live permit whose current extract holds an opted-out person gets a propagation due by
    `due` (an earlier due date already pending is kept). Also picks up imported opt-outs."""
    live = _live_ids(conn)
    permits = [p for p in current_permits_holding_any(conn) if p in live]
    for pid in permits:
        row = conn.execute(sa.select(optout_propagations.c.due_at)
                           .where(optout_propagations.c.permit_id == pid)).first()
        if row is None:
            conn.execute(optout_propagations.insert().values(permit_id=pid, due_at=due, requested_at=_iso(now)))
        elif row.due_at > due:
            conn.execute(optout_propagations.update().where(optout_propagations.c.permit_id == pid)
                         .values(due_at=due))
    return permits


def _live_ids(conn: sa.Connection) -> set[str]:
    from hub.registry_tables import permits

    return {r[0] for r in conn.execute(sa.select(permits.c.id).where(permits.c.status.in_(LIVE)))}


def withdraw(engine: sa.Engine, id_hash: str, actor: str) -> None:
    with engine.begin() as conn:
        gone = conn.execute(optouts.delete().where(optouts.c.id_hash == id_hash)).rowcount
        if not gone:
            raise NotFound("you have not opted out; there is nothing to withdraw")
        audit.record(conn, actor=actor, role="citizen", action="optout.withdraw", detail={})


def propagate_due(engine: sa.Engine, settings, actor: str = "system", now: datetime | None = None,
                  delay_days: int = DEFAULT_DELAY_DAYS, all_now: bool = False, progress=lambda msg: None) -> list[dict]:
    """Re-provision every permit whose propagation is due (every pending one with `all_now`); delete
    its older versions holding an opted-out person. Opt-outs that came another way (`spe optout
    import`) are scheduled here, `delay_days` from now. One permit failing does not stop the others
    (it stays pending, logged)."""
    from hub.provision.run import provision

    now = now or datetime.now(timezone.utc)
    with engine.begin() as conn:
        schedule(conn, now, _iso(now + timedelta(days=check_delay(delay_days))))
        query = sa.select(optout_propagations.c.permit_id).order_by(optout_propagations.c.permit_id)
        if not all_now:
            query = query.where(optout_propagations.c.due_at <= _iso(now))
        due = [r.permit_id for r in conn.execute(query)]
    done = []
    for pid in due:
        progress(f"re-provisioning {pid} without the persons who opted out")
        try:
            result = provision(engine, settings, pid, actor)
        except Exception as err:  # noqa: BLE001 - the next round retries; the others go on
            log.error("propagation to %s failed: %s", pid, err)
            continue
        members = sorted(m.username for m in PermitStore(engine).get(pid).members)
        with engine.begin() as conn:
            removed = delete_extract_versions(conn, pid, stale_versions(conn, pid))
            conn.execute(optout_propagations.delete().where(optout_propagations.c.permit_id == pid))
            # who must learn that a new version exists (never who left); no e-mail is sent from here
            audit.record(conn, actor=actor, role="operator", action="optout.propagate", permit_id=pid,
                         object_id=f"{pid}/{result.extract_version}",
                         detail={"extract_version": result.extract_version, "removed_versions": removed,
                                 "members_to_tell": members})
        done.append({"permit_id": pid, "extract_version": result.extract_version, "removed_versions": removed})
    return done


def pending(engine: sa.Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(optout_propagations)
                                              .order_by(optout_propagations.c.permit_id)).mappings()]
