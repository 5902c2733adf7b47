"""Data access of the egress business layer: the only code that reads or writes the egress tables.

`RequestData` turns rows into the facts the workflow guards judge (`egress.workflow.RequestFacts`)
and writes what a command decided, always on the caller's connection, so that a command's rows
and its audit events commit in one transaction. `transition` moves a request by the workflow's
table with a compare-and-set on `row_version` (optimistic lock) and appends the transition's
audit event. No decisions are taken here: guards are `egress.workflow`, commands are
`egress.business.commands`, read models `egress.business.queries`.

Must not import the web layer.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Sequence

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from egress import workflow as wf
from egress.review.checking import EarlierOutput, FileCheck, overall_status
from egress.store import BlobStore
from egress.tables import (egress_downloads, egress_files, egress_releases, egress_request_versions,
                           egress_requests, egress_reviews)
from hub import audit
from hub.audit.store import utc_now_iso
from hub.db import transaction
from hub.exceptions import Conflict, NotFound, Refused
from hub.permits.model import Permit
from hub.permits.store import PermitStore

log = logging.getLogger("spe.egress")

MAX_REQUEST_ID_CHARS = 40


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class RequestData:
    def __init__(self, engine: sa.Engine, store: BlobStore, permits: PermitStore):
        self.engine = engine
        self.store = store
        self.permits = permits

    # --- one request ------------------------------------------------------------------------
    def permit_of(self, request_id: str) -> Permit:
        # Read before opening the caller's transaction: on SQLite every connection takes the
        # write lock (BEGIN IMMEDIATE), so a second connection inside one would wait for itself.
        with self.engine.connect() as conn:
            row = self.row(conn, request_id)
        return self.permits.get(row["permit_id"])

    def row(self, conn, request_id: str, *, for_update: bool = False):
        if not isinstance(request_id, str) or len(request_id) > MAX_REQUEST_ID_CHARS:
            raise NotFound("no such request")
        q = sa.select(egress_requests).where(egress_requests.c.id == request_id)
        if for_update and conn.dialect.name != "sqlite":  # SQLite: BEGIN IMMEDIATE already serialises
            q = q.with_for_update()
        row = conn.execute(q).mappings().first()
        if row is None:
            raise NotFound(f"no request {request_id!r}")
        return row

    def facts(self, row, permit: Permit, conn=None) -> wf.RequestFacts:
        """What the guards know about the request; without `conn`, its reviews are not read."""
        reviewed_by: frozenset = frozenset()
        if conn is not None:
            reviewed_by = frozenset(r.reviewer for r in conn.execute(
                sa.select(egress_reviews.c.reviewer).where(egress_reviews.c.request_id == row["id"],
                                                           egress_reviews.c.version == row["version"])))
            status = conn.execute(sa.select(egress_request_versions.c.check_status).where(
                egress_request_versions.c.request_id == row["id"],
                egress_request_versions.c.version == row["version"])).scalar()
            checks = [(f["name"], json.loads(f["check_json"])) for f in self.version_files(conn, row)]
        else:
            status, checks = "pass", []
        unverified = tuple((name, (c.get("provenance") or {}).get("evidence_reason") or "not verified")
                           for name, c in checks if "provenance" in c and not c.get("verified"))
        return wf.RequestFacts(id=row["id"], state=row["state"], author=row["author"], permit_id=row["permit_id"],
                               permit_status=permit.status,
                               permit_members=frozenset(m.username for m in permit.members),
                               version=row["version"], reviewers_required=permit.egress.reviewers_required,
                               check_status=status or "pass", reviewed_by=reviewed_by,
                               unverified_tables=unverified, require_provenance=permit.egress.require_provenance,
                               has_suggestion=any(c.get("suppression") for _, c in checks))

    def current_version(self, conn, row):
        return conn.execute(sa.select(egress_request_versions).where(
            egress_request_versions.c.request_id == row["id"],
            egress_request_versions.c.version == row["version"])).mappings().first()

    def version_files(self, conn, row):
        """The file rows of the request's current version, by name."""
        return conn.execute(sa.select(egress_files).where(
            egress_files.c.request_id == row["id"], egress_files.c.version == row["version"])
            .order_by(egress_files.c.name)).mappings().all()

    def history(self, conn, request_id: str):
        """(versions, files, reviews, release) of one request, each in display order."""
        versions = conn.execute(sa.select(egress_request_versions).where(
            egress_request_versions.c.request_id == request_id)
            .order_by(egress_request_versions.c.version)).mappings().all()
        files = conn.execute(sa.select(egress_files).where(egress_files.c.request_id == request_id)
                             .order_by(egress_files.c.version, egress_files.c.name)).mappings().all()
        reviews = conn.execute(sa.select(egress_reviews).where(egress_reviews.c.request_id == request_id)
                               .order_by(egress_reviews.c.version, egress_reviews.c.created_at)).mappings().all()
        release = conn.execute(sa.select(egress_releases).where(
            egress_releases.c.request_id == request_id)).mappings().first()
        return versions, files, reviews, release

    def decisions(self, conn, request_id: str, version: int) -> list[str]:
        return [r.decision for r in conn.execute(
            sa.select(egress_reviews.c.decision).where(egress_reviews.c.request_id == request_id,
                                                       egress_reviews.c.version == version))]

    def released_file(self, conn, request_id: str, name: str):
        """(released version, file row) of a released request's file; NotFound if it has none of that name."""
        released = conn.execute(sa.select(egress_releases.c.version)
                                .where(egress_releases.c.request_id == request_id)).scalar_one()
        file_row = conn.execute(sa.select(egress_files).where(
            egress_files.c.request_id == request_id, egress_files.c.version == released,
            egress_files.c.name == name)).mappings().first()
        if file_row is None:
            raise NotFound(f"request {request_id} has no released file {name!r}")
        return released, file_row

    # --- lists --------------------------------------------------------------------------------
    def by_author(self, conn, username: str):
        return conn.execute(sa.select(egress_requests).where(egress_requests.c.author == username)
                            .order_by(egress_requests.c.created_at.desc())).mappings().all()

    def in_states(self, conn, states: Sequence[str]):
        """Requests in `states`, the longest waiting first."""
        return conn.execute(sa.select(egress_requests).where(egress_requests.c.state.in_(list(states)))
                            .order_by(egress_requests.c.updated_at)).mappings().all()

    def released_of_permits(self, permit_ids: Sequence[str]) -> list[dict]:
        """Every released file of these permits, newest release first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(egress_releases.c.request_id, egress_releases.c.permit_id, egress_releases.c.released_at,
                          egress_releases.c.version, egress_files.c.name, egress_files.c.sha256,
                          egress_files.c.size_bytes)
                .join(egress_files, sa.and_(egress_files.c.request_id == egress_releases.c.request_id,
                                            egress_files.c.version == egress_releases.c.version))
                .where(egress_releases.c.permit_id.in_(list(permit_ids)))
                .order_by(egress_releases.c.released_at.desc(), egress_files.c.name)).mappings().all()
        return [dict(r) for r in rows]

    def permit_releases(self, permit_id: str) -> list[dict]:
        """Releases of a permit, oldest first, with their description and file names."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(egress_releases, egress_request_versions.c.description)
                .join(egress_request_versions, sa.and_(
                    egress_request_versions.c.request_id == egress_releases.c.request_id,
                    egress_request_versions.c.version == egress_releases.c.version))
                .where(egress_releases.c.permit_id == permit_id)
                .order_by(egress_releases.c.released_at)).mappings().all()
            out = []
            for r in rows:
                names = [f.name for f in conn.execute(sa.select(egress_files.c.name).where(
                    egress_files.c.request_id == r["request_id"], egress_files.c.version == r["version"]))]
                out.append(dict(r, files=names))
            return out

    def earlier_outputs(self, permit_id: str, *, exclude: str | None = None) -> list[EarlierOutput]:
        """Every released file of a permit and every file of its pending requests (current
        version), for differencing and the linked suppression audit; `exclude`: a request id."""
        pending = (wf.SUBMITTED, wf.CHECKED, wf.IN_REVIEW, wf.APPROVED, wf.RETURNED)
        columns = (egress_files.c.request_id, egress_files.c.name, egress_files.c.sha256,
                   egress_files.c.provenance_sql)
        with self.engine.connect() as conn:
            released = conn.execute(
                sa.select(*columns)
                .join(egress_releases, sa.and_(egress_files.c.request_id == egress_releases.c.request_id,
                                               egress_files.c.version == egress_releases.c.version))
                .where(egress_releases.c.permit_id == permit_id)).all()
            waiting = conn.execute(
                sa.select(*columns)
                .join(egress_requests, sa.and_(egress_files.c.request_id == egress_requests.c.id,
                                               egress_files.c.version == egress_requests.c.version))
                .where(egress_requests.c.permit_id == permit_id, egress_requests.c.state.in_(pending))).all()
        return [EarlierOutput(r.name, self.store.get(r.sha256), r.provenance_sql, status, r.request_id)
                for status, rows in (("released", released), ("pending", waiting))
                for r in rows if r.request_id != exclude]

    # --- writing (on the caller's transaction) --------------------------------------------
    def insert_request(self, conn, request_id: str, permit_id: str, author: str, server_name: str | None,
                       now: str) -> None:
        conn.execute(egress_requests.insert().values(
            id=request_id, permit_id=permit_id, author=author, server_name=server_name,
            state=wf.DRAFT, version=1, row_version=1, created_at=now, updated_at=now))

    def insert_version(self, conn, request_id: str, version: int, kind: str, description: str,
                       checks: list[FileCheck], now: str) -> None:
        conn.execute(egress_request_versions.insert().values(
            request_id=request_id, version=version, kind=kind, description=description,
            check_status=overall_status(checks), verified=all(c.verified for c in checks), submitted_at=now))
        for check in checks:
            conn.execute(egress_files.insert().values(
                request_id=request_id, version=version, name=check.name, sha256=sha256_of(check.data),
                size_bytes=len(check.data), file_type=check.file_type, provenance_sql=check.provenance_sql,
                check_json=json.dumps(check.result, sort_keys=True, default=str)))

    def insert_review(self, conn, request_id: str, version: int, reviewer: str, decision: str, comment: str) -> None:
        try:
            with conn.begin_nested():
                conn.execute(egress_reviews.insert().values(
                    request_id=request_id, version=version, reviewer=reviewer, decision=decision,
                    comment=comment, created_at=utc_now_iso()))
        except IntegrityError:
            raise Conflict(f"{reviewer} has already reviewed version {version}") from None

    def insert_release(self, conn, row, released_by: str) -> tuple[dict[str, str], dict[str, list]]:
        """Release the request's current version: ({file name: sha256}, {table name: the cells
        it leaves empty, [row, column]}) of what it releases."""
        files = self.version_files(conn, row)
        conn.execute(egress_releases.insert().values(
            request_id=row["id"], version=row["version"], permit_id=row["permit_id"],
            released_by=released_by, released_at=utc_now_iso()))
        checks = {f["name"]: json.loads(f["check_json"]) for f in files}
        return ({f["name"]: f["sha256"] for f in files},
                {name: c["suppressed_cells"] for name, c in checks.items() if "suppressed_cells" in c})

    def insert_download(self, conn, request_id: str, version: int, name: str, sha256: str, username: str) -> None:
        conn.execute(egress_downloads.insert().values(
            request_id=request_id, version=version, name=name, sha256=sha256,
            username=username, downloaded_at=utc_now_iso()))

    def transition(self, conn, row, action: str, actor: str, role: str, detail: dict,
                   new_version: int | None = None):
        """Move one request by the table (compare-and-set on row_version) + its audit event."""
        new_state = wf.next_state(row["state"], action)
        values = {"state": new_state, "row_version": row["row_version"] + 1, "updated_at": utc_now_iso()}
        if new_version is not None:
            values["version"] = new_version
        updated = conn.execute(egress_requests.update().where(
            egress_requests.c.id == row["id"], egress_requests.c.row_version == row["row_version"]).values(**values))
        if updated.rowcount != 1:
            raise Conflict(f"request {row['id']} was changed by someone else; reload and try again")
        audit.record(conn, actor=actor, role=role, action=wf.AUDIT_ACTION[action], permit_id=row["permit_id"],
                     object_id=row["id"], detail=dict(detail, **{"from": row["state"], "to": new_state}))
        return self.row(conn, row["id"])

    def audit_refusal(self, actor: wf.Actor, action: str, permit_id: str | None, request_id: str | None,
                      err: Refused, state: str | None = None) -> None:
        """A refused submission (a tampered table is flagged here) or a forbidden review or release
        leaves one audit event (outcome refused) and nothing else, in its own transaction."""
        try:
            with transaction(self.engine) as conn:
                audit.record(conn, actor=actor.username, role="researcher", action=action, permit_id=permit_id,
                             object_id=request_id, outcome="refused",
                             # from/to: the transition's schema (hub.audit.events); refused, it stays put
                             detail={"reason": str(err)[:500], "refusal": type(err).__name__,
                                     "from": state, "to": state})
        except Exception:  # the refusal itself must still reach the user
            log.exception("could not audit a refused submission")
