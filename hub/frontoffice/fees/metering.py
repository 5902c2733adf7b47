"""Metering of the SPE resources a permit uses: CPU-hours and storage.

CPU-hours: a workspace's CPU limit for as long as it ran, from the spawners' own audit events
(`workspace.spawn` ok ... `workspace.stop` / `workspace.terminate` / `workspace.cull`, per user and
server), clipped to the month; a workspace still running is counted until now. This is the CPU
reserved for the permit, which is what it costs the HDAB, not what the kernel happened to burn.
Storage: one sample a day per permit (`usage_samples`): the bytes of the current extract on disk
and of the permit's work volumes (Docker's volume sizes, when an engine is reachable); a month is
billed in GB-months, each day at its latest sample.

`cpu_hours` and `storage_gb_months` are pure; `record_usage` does the I/O. Must not import `egress`.
"""

from __future__ import annotations

import calendar
import json
import logging
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from hub import audit
from hub.audit.store import utc_now_iso
from hub.audit.tables import audit_events
from hub.frontoffice.tables import usage_samples
from hub.naming import safe_slug
from hub.permits.store import PermitStore
from hub.provision.extracts import current_extract

log = logging.getLogger("spe.fees")
STARTS = ("workspace.spawn",)
ENDS = ("workspace.stop", "workspace.terminate", "workspace.cull")
GB = Decimal(10**9)


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of 'YYYY-MM' in UTC."""
    year, mon = (int(x) for x in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=timezone.utc)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=timezone.utc)
    return start, end


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def cpu_hours(events: list[dict], start: datetime, end: datetime, now: datetime, default_cpu: float) -> Decimal:
    """CPU-hours of the workspaces in `events` (audit rows of one permit, in order) within [start, end)."""
    open_: dict[tuple[str, str], tuple[datetime, float]] = {}
    total = Decimal(0)

    def close(key, at: datetime):
        began, cpu = open_.pop(key)
        lo, hi = max(began, start), min(at, end)
        if hi > lo:
            nonlocal total
            total += Decimal(str(cpu)) * Decimal((hi - lo).total_seconds()) / 3600

    for e in events:
        if e.get("outcome", "ok") != "ok":
            continue
        detail = e.get("detail") or {}
        server = detail.get("server")
        if e["action"] in STARTS:
            key = (e["actor"], server)
            if key in open_:  # a second spawn without a stop (a restart): the first ended here
                close(key, _ts(e["ts"]))
            open_[key] = (_ts(e["ts"]), float(detail.get("cpu_limit") or default_cpu))
        elif e["action"] in ENDS:
            user = detail.get("user") or e["actor"]
            if (user, server) in open_:
                close((user, server), _ts(e["ts"]))
    for key in list(open_):
        close(key, min(now, end))
    return total.quantize(Decimal("0.01"))


def storage_gb_months(samples: list[tuple[date, int]], month: str, today: date) -> Decimal:
    """GB-months of one permit in `month` from daily samples [(day, bytes)] (each day at its latest
    sample; days before the first sample and after today count nothing)."""
    year, mon = (int(x) for x in month.split("-"))
    days_in_month = calendar.monthrange(year, mon)[1]
    ordered = sorted(samples)
    total = Decimal(0)
    i, current = 0, None
    for d in range(1, days_in_month + 1):
        day = date(year, mon, d)
        if day > today:
            break
        while i < len(ordered) and ordered[i][0] <= day:
            current = ordered[i][1]
            i += 1
        if current is not None:
            total += Decimal(current) / GB
    return (total / days_in_month).quantize(Decimal("0.0001"))


def permit_events(engine: sa.Engine, permit_id: str, until: datetime) -> list[dict]:
    """The workspace audit events of a permit up to `until`, in order."""
    q = (sa.select(audit_events.c.ts, audit_events.c.actor, audit_events.c.action, audit_events.c.outcome,
                   audit_events.c.detail)
         .where(audit_events.c.permit_id == permit_id, audit_events.c.action.in_(STARTS + ENDS),
                audit_events.c.ts < until.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
         .order_by(audit_events.c.seq))
    with engine.connect() as conn:
        return [{"ts": r.ts, "actor": r.actor, "action": r.action, "outcome": r.outcome,
                 "detail": json.loads(r.detail or "{}")} for r in conn.execute(q)]


def samples_of(engine: sa.Engine, permit_id: str) -> list[tuple[date, int]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(usage_samples).where(usage_samples.c.permit_id == permit_id)).all()
    return [(date.fromisoformat(r.day), int(r.extract_bytes) + int(r.work_bytes or 0)) for r in rows]


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def volume_bytes(docker_client, name_prefix: str) -> dict[str, int]:
    """Bytes of each SPE work volume by permit label (Docker's `system df`, one call)."""
    out: dict[str, int] = {}
    for vol in docker_client.df().get("Volumes") or []:
        labels = vol.get("Labels") or {}
        if labels.get("spe.deployment") != name_prefix or "spe.permit" not in labels:
            continue
        size = (vol.get("UsageData") or {}).get("Size", -1)
        if size and size > 0:
            out[labels["spe.permit"]] = out.get(labels["spe.permit"], 0) + int(size)
    return out


def record_usage(engine: sa.Engine, day: date, actor: str, docker_client=None, name_prefix: str = "spe") -> int:
    """Sample today's storage of every permit that has an extract; once a day (a second call the same
    day replaces the sample). Returns the permits sampled."""
    volumes = None
    if docker_client is not None:
        try:
            volumes = volume_bytes(docker_client, name_prefix)
        except Exception:  # the engine is gone: extracts are still metered
            log.warning("docker volume sizes unavailable; work volumes not metered today", exc_info=True)
    rows = []
    for permit in PermitStore(engine).list():
        ext = current_extract(engine, permit.id)
        if ext is None:
            continue
        work = None if volumes is None else volumes.get(safe_slug(permit.id, prefix="p"), 0)
        rows.append(dict(permit_id=permit.id, day=day.isoformat(), extract_bytes=tree_bytes(Path(ext["path"])),
                         work_bytes=work, sampled_at=utc_now_iso()))
    if not rows:
        return 0
    with engine.begin() as conn:
        for r in rows:
            conn.execute(usage_samples.delete().where(usage_samples.c.permit_id == r["permit_id"],
                                                      usage_samples.c.day == r["day"]))
            conn.execute(usage_samples.insert().values(**r))
        audit.record(conn, actor=actor, role="system", action="fees.meter",
                     detail={"day": day.isoformat(), "permits": len(rows),
                             "bytes": sum(r["extract_bytes"] + (r["work_bytes"] or 0) for r in rows),
                             "work_volumes_metered": volumes is not None})
    return len(rows)


def sampled_today(engine: sa.Engine, day: date) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(usage_samples)
                            .where(usage_samples.c.day == day.isoformat())).scalar() > 0
