"""Retention of output requests: the files of requests that will never be released end, and
so do the working copies of released ones.

A permit may set `retention.egress_days`. A request of that permit that is withdrawn, rejected
or still a draft, and unchanged for that many days, has its files deleted from the blob store;
a released request that old keeps its released version's files and loses those of its other
(earlier, returned) versions. A blob that a kept file also uses stays. Each deletion is one
`retention.delete` audit event that keeps every file's name, SHA-256 and size, and the request
is marked in `egress_retention` so it is not deleted twice; its rows (states, reviews, audit
events) stay. The audit events follow their own retention (`spe audit purge`, ≥ 1 year).

`expired` is the pure rule; `run_retention` applies it (the `retention` hook of egress's
extension, run by `spe retention run [--dry-run]`). Must not import the web layer.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from egress import workflow as wf
from egress.store import BlobStore
from egress.tables import egress_files, egress_releases, egress_requests, metadata
from hub import audit
from hub.audit.store import utc_now_iso
from hub.permits.store import PermitStore

ENDING_STATES = (wf.WITHDRAWN, wf.REJECTED, wf.DRAFT)
AGEING_STATES = ENDING_STATES + (wf.RELEASED,)  # released: its working copies (other versions) only

egress_retention = sa.Table(
    "egress_retention",
    metadata,
    sa.Column("request_id", sa.String(40), primary_key=True),
    sa.Column("deleted_at", sa.String(32), nullable=False),
    sa.Column("audit_seq", sa.BigInteger, nullable=False),  # the retention.delete event
)


def _parse(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def expired(state: str, updated_at: str, days: int | None, now: datetime) -> bool:
    """True when a request in `state`, last changed at `updated_at`, is past `days` of retention."""
    return days is not None and state in AGEING_STATES and _parse(updated_at) + timedelta(days=days) <= now


def run_retention(engine: sa.Engine, settings, now: datetime | None = None, *, dry_run: bool = False,
                  actor: str = "system") -> list[dict]:
    """Delete the files of every expired request (or only list them with `dry_run`); one dict per request."""
    now = now or datetime.now(timezone.utc)
    days = {p.id: p.egress_retention_days for p in PermitStore(engine).list()}
    with engine.connect() as conn:
        done = {r[0] for r in conn.execute(sa.select(egress_retention.c.request_id))}
        requests = conn.execute(sa.select(egress_requests.c.id, egress_requests.c.permit_id, egress_requests.c.state,
                                          egress_requests.c.updated_at)).all()
        files = conn.execute(sa.select(egress_files.c.request_id, egress_files.c.version, egress_files.c.name,
                                       egress_files.c.sha256, egress_files.c.size_bytes)
                             .order_by(egress_files.c.request_id, egress_files.c.version, egress_files.c.name)).all()
        released = dict(conn.execute(sa.select(egress_releases.c.request_id, egress_releases.c.version)).all())

    def kept(f) -> bool:  # the released version of a released request is never a working copy
        return released.get(f.request_id) == f.version
    by_request: dict[str, list] = {}
    for f in files:
        by_request.setdefault(f.request_id, []).append(f)
    due = [r for r in requests if r.id not in done and expired(r.state, r.updated_at, days.get(r.permit_id), now)
           and any(not kept(f) for f in by_request.get(r.id, []))]
    gone = done | {r.id for r in due}
    kept_blobs = {f.sha256 for f in files if f.request_id not in gone or kept(f)}
    store = BlobStore(settings.store_dir)
    out = []
    for r in due:
        listed = [{"version": f.version, "name": f.name, "sha256": f.sha256, "size_bytes": f.size_bytes}
                  for f in by_request.get(r.id, []) if not kept(f)]
        blobs = sorted({f["sha256"] for f in listed} - kept_blobs)
        item = {"request": r.id, "permit_id": r.permit_id, "state": r.state, "since": r.updated_at,
                "retention_days": days[r.permit_id], "files": listed, "blobs": blobs}
        out.append(item)
        if dry_run:
            continue
        with engine.begin() as conn:
            seq = audit.record(conn, actor=actor, role="operator", action="retention.delete", permit_id=r.permit_id,
                               object_id=r.id, detail={k: item[k] for k in ("request", "state", "since",
                                                                           "retention_days", "files", "blobs")})
            conn.execute(egress_retention.insert().values(request_id=r.id, deleted_at=utc_now_iso(now),
                                                          audit_seq=seq))
    if not dry_run:
        # after the commits: a crash in between leaves blobs that the next run deletes (below)
        for item in out:
            for sha in item["blobs"]:
                store.delete(sha)
        leftover = {f.sha256 for f in files if f.request_id in done} - kept_blobs
        for sha in leftover:
            store.delete(sha)
    return out
