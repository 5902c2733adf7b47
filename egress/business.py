"""The egress business layer: the only code that changes egress state.

Handlers (web, API, benchmarks, tests) call `EgressService` and map its exceptions to HTTP
codes; they never write rows. Every transition goes through `_transition`, which
compare-and-sets the request's `row_version` (optimistic lock) and appends the transition's
audit event in the SAME transaction, so the request and the trail cannot disagree and two
concurrent writers can never both move one request. Checks run before the transaction (they
are slow: provenance re-execution); a refused submission stores nothing but its audit event.

Must not import the web layer.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Sequence

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from egress import workflow as wf
from egress.review.checking import KINDS, FileCheck, check_submission, overall_status, parse_released, table_preview
from egress.store import BlobStore
from egress.tables import (egress_downloads, egress_files, egress_releases, egress_request_versions,
                           egress_requests, egress_reviews)
from hub import audit
from hub.audit.store import utc_now_iso
from hub.db import transaction
from hub.exceptions import Conflict, Forbidden, InvalidInput, NotFound, Refused
from hub.permits.access import is_workspace_of, permit_for_server
from hub.permits.model import Permit
from hub.permits.store import PermitStore
from hub.provision.extracts import current_extract
from hub.settings import Settings

log = logging.getLogger("spe.egress")

SYSTEM_ACTOR = "egress"
MAX_DESCRIPTION_CHARS = 5000
MAX_COMMENT_CHARS = 5000


@dataclass(frozen=True)
class Submission:
    """What an author sends: files (name, bytes), a description, the kind, SQL per table."""

    files: Sequence[tuple[str, bytes]]
    description: str
    kind: str = "frequency"
    provenance: dict | None = None  # file name -> provenance SQL


class EgressService:
    def __init__(self, engine: sa.Engine, settings: Settings, *, provenance_timeout_seconds: float = 30,
                 provenance_memory_limit: str = "512MB", today: date | None = None):
        self.engine = engine
        self.settings = settings
        self.permits = PermitStore(engine)
        self.store = BlobStore(settings.store_dir)
        self.provenance_timeout_seconds = provenance_timeout_seconds
        self.provenance_memory_limit = provenance_memory_limit
        self._today = today

    # --- submitting ------------------------------------------------------------------------
    def submit(self, actor: wf.Actor, submission: Submission, permit_id: str | None = None) -> dict:
        """New request from a workspace: checked, stored, and waiting for review (state checked)."""
        permit = None
        try:
            # The calling workspace's permit, even when the permit is named: a server name that
            # two permits share is refused, never guessed.
            workspace = self.workspace_permit(actor)
            if not (permit_id or workspace):
                raise Forbidden("submit from a permit's workspace (its server token names the permit)")
            permit = self.permits.get(permit_id) if permit_id else workspace
            wf.check_can_submit(permit, actor, self._today)
            checks = self._check(permit, submission)
        except Refused as err:
            self._audit_refusal(actor, wf.AUDIT_ACTION[wf.SUBMIT], permit.id if permit else permit_id, None, err)
            raise
        request_id = "r-" + secrets.token_hex(8)
        now = utc_now_iso()
        self._put_blobs(checks)
        with transaction(self.engine) as conn:
            conn.execute(egress_requests.insert().values(
                id=request_id, permit_id=permit.id, author=actor.username, server_name=actor.server_name,
                state=wf.DRAFT, version=1, row_version=1, created_at=now, updated_at=now))
            audit.record(conn, actor=actor.username, role="researcher", action=wf.AUDIT_CREATE,
                         permit_id=permit.id, object_id=request_id,
                         detail={"kind": submission.kind, "files": [c.name for c in checks]})
            self._insert_version(conn, request_id, 1, submission, checks, now)
            row = self._row(conn, request_id)
            row = self._transition(conn, row, wf.SUBMIT, actor.username, "researcher", _files_detail(checks))
            self._transition(conn, row, wf.CHECK, SYSTEM_ACTOR, "system", _check_detail(checks))
        return self.get(actor, request_id)

    def resubmit(self, actor: wf.Actor, request_id: str, submission: Submission) -> dict:
        """A new version of a returned (or checked) request; its earlier reviews stay with their version."""
        permit = self._permit_of(request_id)
        with self.engine.connect() as conn:
            row = self._row(conn, request_id)
        try:
            wf.check_can_resubmit(self._facts(row, permit), actor)
            wf.check_can_submit(permit, actor, self._today)
            checks = self._check(permit, submission)
        except Refused as err:
            self._audit_refusal(actor, wf.AUDIT_ACTION[wf.RESUBMIT], permit.id, request_id, err, row["state"])
            raise
        self._put_blobs(checks)
        now = utc_now_iso()
        with transaction(self.engine) as conn:
            current = self._row(conn, request_id)
            if current["row_version"] != row["row_version"]:
                raise Conflict(f"request {request_id} changed while its new version was checked; submit again")
            wf.check_can_resubmit(self._facts(current, permit), actor)
            version = current["version"] + 1
            self._insert_version(conn, request_id, version, submission, checks, now)
            current = self._transition(conn, current, wf.RESUBMIT, actor.username, "researcher",
                                       dict(_files_detail(checks), version=version), new_version=version)
            self._transition(conn, current, wf.CHECK, SYSTEM_ACTOR, "system", _check_detail(checks))
        return self.get(actor, request_id)

    def _check(self, permit: Permit, submission: Submission) -> list[FileCheck]:
        if not isinstance(submission.description, str) or not submission.description.strip():
            raise InvalidInput("describe the output: what it shows and how it was made", field="description")
        if len(submission.description) > MAX_DESCRIPTION_CHARS:
            raise InvalidInput(f"at most {MAX_DESCRIPTION_CHARS} characters", field="description")
        if submission.kind not in KINDS:
            raise InvalidInput(f"unknown output kind {submission.kind!r}; expected one of {', '.join(KINDS)}",
                               field="kind")
        extract = current_extract(self.engine, permit.id)
        extract_dir = Path(extract["path"]) if extract else None
        persons = extract["manifest"].get("persons") if extract else None
        released = parse_released(self.released_files(permit.id))
        return check_submission(submission.files, kind=submission.kind, provenance=submission.provenance or {},
                                policy=permit.egress, extract_dir=extract_dir, extract_persons=persons,
                                released=released, timeout_seconds=self.provenance_timeout_seconds,
                                memory_limit=self.provenance_memory_limit)

    def _put_blobs(self, checks: list[FileCheck]) -> None:
        # Before the transaction: an orphan blob (if the transaction fails) is harmless, a row
        # pointing to a missing blob would not be.
        for check in checks:
            self.store.put(check.data)

    def _insert_version(self, conn, request_id: str, version: int, submission: Submission,
                        checks: list[FileCheck], now: str) -> None:
        conn.execute(egress_request_versions.insert().values(
            request_id=request_id, version=version, kind=submission.kind, description=submission.description,
            check_status=overall_status(checks), verified=all(c.verified for c in checks), submitted_at=now))
        for check in checks:
            conn.execute(egress_files.insert().values(
                request_id=request_id, version=version, name=check.name, sha256=_sha(check.data),
                size_bytes=len(check.data), file_type=check.file_type, provenance_sql=check.provenance_sql,
                check_json=json.dumps(check.result, sort_keys=True, default=str)))

    # --- reviewing and releasing ----------------------------------------------------------
    def review(self, actor: wf.Actor, request_id: str, *, version: int, decision: str, comment: str = "") -> dict:
        """One blinded review of `version`; the last required review decides (workflow.completion)."""
        try:
            return self._review(actor, request_id, version=version, decision=decision, comment=comment)
        except _Denied as denied:
            self._audit_refusal(actor, wf.AUDIT_ACTION[wf.REVIEW], denied.permit_id, request_id, denied.err,
                                denied.state)
            raise denied.err from None

    def _review(self, actor: wf.Actor, request_id: str, *, version: int, decision: str, comment: str) -> dict:
        if not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS:
            raise InvalidInput(f"a comment is text of at most {MAX_COMMENT_CHARS} characters", field="comment")
        if decision in ("return", "reject") and not comment.strip():
            raise InvalidInput(f"say why you {decision} it: the author needs a reason", field="comment")
        if not isinstance(version, int) or isinstance(version, bool):
            raise InvalidInput("the version you reviewed is required", field="version")
        permit = self._permit_of(request_id)
        with transaction(self.engine) as conn:
            row = self._row(conn, request_id, for_update=True)
            facts = self._facts(row, permit, conn)
            self._guard(wf.check_can_review, facts, actor, decision)
            if version != row["version"]:
                raise Conflict(f"you reviewed version {version} but the request is now at version {row['version']}: "
                               "reload the page and review the new version")
            try:
                with conn.begin_nested():
                    conn.execute(egress_reviews.insert().values(
                        request_id=request_id, version=version, reviewer=actor.username, decision=decision,
                        comment=comment.strip(), created_at=utc_now_iso()))
            except IntegrityError:
                raise Conflict(f"{actor.username} has already reviewed version {version}") from None
            row = self._transition(conn, row, wf.REVIEW, actor.username, "output_checker",
                                   {"version": version, "decision": decision})
            decisions = [r.decision for r in conn.execute(
                sa.select(egress_reviews.c.decision).where(egress_reviews.c.request_id == request_id,
                                                           egress_reviews.c.version == version))]
            outcome = wf.completion(decisions, permit.egress.reviewers_required)
            if outcome:
                self._transition(conn, row, outcome, SYSTEM_ACTOR, "system",
                                 {"version": version, "decisions": sorted(decisions)})
        return self.get(actor, request_id)

    def release(self, actor: wf.Actor, request_id: str) -> dict:
        try:
            return self._release(actor, request_id)
        except _Denied as denied:
            self._audit_refusal(actor, wf.AUDIT_ACTION[wf.RELEASE], denied.permit_id, request_id, denied.err,
                                denied.state)
            raise denied.err from None

    def _release(self, actor: wf.Actor, request_id: str) -> dict:
        permit = self._permit_of(request_id)
        with transaction(self.engine) as conn:
            row = self._row(conn, request_id, for_update=True)
            self._guard(wf.check_can_release, self._facts(row, permit, conn), actor)
            files = conn.execute(sa.select(egress_files.c.name, egress_files.c.sha256).where(
                egress_files.c.request_id == request_id, egress_files.c.version == row["version"])).all()
            conn.execute(egress_releases.insert().values(
                request_id=request_id, version=row["version"], permit_id=row["permit_id"],
                released_by=actor.username, released_at=utc_now_iso()))
            self._transition(conn, row, wf.RELEASE, actor.username, "output_checker",
                             {"version": row["version"], "files": {f.name: f.sha256 for f in files}})
        return self.get(actor, request_id)

    def withdraw(self, actor: wf.Actor, request_id: str) -> dict:
        permit = self._permit_of(request_id)
        with transaction(self.engine) as conn:
            row = self._row(conn, request_id, for_update=True)
            wf.check_can_withdraw(self._facts(row, permit, conn), actor)
            self._transition(conn, row, wf.WITHDRAW, actor.username, "researcher", {"version": row["version"]})
        return self.get(actor, request_id)

    # --- downloading ------------------------------------------------------------------------
    def download(self, actor: wf.Actor, request_id: str, name: str) -> tuple[bytes, str]:
        """(bytes, sha256) of a released file, for a member of the permit; every download audited."""
        permit = self._permit_of(request_id)
        with transaction(self.engine) as conn:
            row = self._row(conn, request_id)
            try:
                wf.check_can_download(self._facts(row, permit, conn), actor)
            except Refused as err:
                audit.record(conn, actor=actor.username, role="researcher", action=wf.AUDIT_DOWNLOAD,
                             permit_id=row["permit_id"], object_id=f"{request_id}/{name}", outcome="refused",
                             detail={"reason": str(err)})
                refused = err
            else:
                refused = None
                released = conn.execute(sa.select(egress_releases.c.version)
                                        .where(egress_releases.c.request_id == request_id)).scalar_one()
                file_row = conn.execute(sa.select(egress_files).where(
                    egress_files.c.request_id == request_id, egress_files.c.version == released,
                    egress_files.c.name == name)).mappings().first()
                if file_row is None:
                    raise NotFound(f"request {request_id} has no released file {name!r}")
                data = self.store.get(file_row["sha256"])
                conn.execute(egress_downloads.insert().values(
                    request_id=request_id, version=released, name=name, sha256=file_row["sha256"],
                    username=actor.username, downloaded_at=utc_now_iso()))
                audit.record(conn, actor=actor.username, role="researcher", action=wf.AUDIT_DOWNLOAD,
                             permit_id=row["permit_id"], object_id=f"{request_id}/{name}",
                             detail={"sha256": file_row["sha256"], "version": released, "bytes": len(data)})
        if refused is not None:  # raised after the commit so the refusal stays in the trail
            raise refused
        return data, file_row["sha256"]

    # --- reading ------------------------------------------------------------------------------
    def get(self, actor: wf.Actor, request_id: str, *, with_previews: bool = False) -> dict:
        """Everything a page or the client shows about one request, blinded for this actor."""
        permit = self._permit_of(request_id)
        with self.engine.connect() as conn:
            row = self._row(conn, request_id)
            facts = self._facts(row, permit, conn)
            wf.check_can_view(facts, actor)
            versions = conn.execute(sa.select(egress_request_versions).where(
                egress_request_versions.c.request_id == request_id)
                .order_by(egress_request_versions.c.version)).mappings().all()
            files = conn.execute(sa.select(egress_files).where(egress_files.c.request_id == request_id)
                                 .order_by(egress_files.c.version, egress_files.c.name)).mappings().all()
            reviews = conn.execute(sa.select(egress_reviews).where(egress_reviews.c.request_id == request_id)
                                   .order_by(egress_reviews.c.version, egress_reviews.c.created_at)).mappings().all()
            release = conn.execute(sa.select(egress_releases).where(
                egress_releases.c.request_id == request_id)).mappings().first()
        content = wf.can_see_content(facts, actor)
        out = _request_dict(row)
        out["content_visible"] = content
        out["owner"] = wf.OWNER[row["state"]]
        out["reviewers_required"] = permit.egress.reviewers_required
        out["permit_title"] = permit.title
        out["released"] = dict(release) if release else None
        out["versions"] = []
        for v in versions:
            vfiles = []
            for f in files:
                if f["version"] != v["version"]:
                    continue
                item = {"name": f["name"], "sha256": f["sha256"], "size_bytes": f["size_bytes"],
                        "file_type": f["file_type"], "provenance_sql": f["provenance_sql"],
                        "check": json.loads(f["check_json"])}
                if not content:
                    item = _redacted_file(item)
                elif with_previews:
                    item["preview"] = table_preview(f["name"], self.store.get(f["sha256"]))
                vfiles.append(item)
            vreviews = [r for r in reviews if r["version"] == v["version"]]
            visible = _visible_reviews(facts, actor, vreviews, current=v["version"] == row["version"])
            out["versions"].append({"version": v["version"], "kind": v["kind"],
                                    "description": v["description"] if content else HIDDEN,
                                    "check_status": v["check_status"], "verified": bool(v["verified"]),
                                    "submitted_at": v["submitted_at"], "files": vfiles,
                                    "reviews_in": len(vreviews), "reviews": visible})
        out["can"] = {
            "review": wf.can_review(facts, actor, "return"),
            "approve": wf.can_review(facts, actor, "approve"),
            "release": wf.can_release(facts, actor),
            "resubmit": wf.can_resubmit(facts, actor),
            "withdraw": wf.can_withdraw(facts, actor),
            "download": wf.can_download(facts, actor),
        }
        return out

    def list_own(self, actor: wf.Actor) -> list[dict]:
        """The actor's own requests, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(egress_requests).where(egress_requests.c.author == actor.username)
                                .order_by(egress_requests.c.created_at.desc())).mappings().all()
            out = []
            for r in rows:
                item = self._summary(conn, r)
                inside = is_workspace_of(r["permit_id"], actor.server_name)
                if not inside and r["state"] != wf.RELEASED:
                    item["description"] = HIDDEN
                out.append(item)
            return out

    def queue(self, actor: wf.Actor) -> list[dict]:
        """Requests waiting for a checker that this actor may review or release (oldest first)."""
        if not (actor.has(wf.SCOPE_REVIEW) or actor.has(wf.SCOPE_RELEASE)):
            raise Forbidden(f"{actor.username} is not an output checker")
        permits = {p.id: p for p in self.permits.list()}
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(egress_requests).where(
                egress_requests.c.state.in_([wf.CHECKED, wf.IN_REVIEW, wf.APPROVED]))
                .order_by(egress_requests.c.updated_at)).mappings().all()
            out = []
            for r in rows:
                permit = permits[r["permit_id"]]
                facts = self._facts(r, permit, conn)
                if not (wf.can_review(facts, actor, "return") or wf.can_release(facts, actor)):
                    continue
                item = self._summary(conn, r)
                item["action"] = "release" if r["state"] == wf.APPROVED else "review"
                out.append(item)
            return out

    def released_for(self, actor: wf.Actor) -> list[dict]:
        """Released files of the permits the actor is a member of (the researcher's downloads)."""
        member_of = [p.id for p in self.permits.list() if p.is_member(actor.username)]
        if not member_of:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(egress_releases.c.request_id, egress_releases.c.permit_id, egress_releases.c.released_at,
                          egress_releases.c.version, egress_files.c.name, egress_files.c.sha256,
                          egress_files.c.size_bytes)
                .join(egress_files, sa.and_(egress_files.c.request_id == egress_releases.c.request_id,
                                            egress_files.c.version == egress_releases.c.version))
                .where(egress_releases.c.permit_id.in_(member_of))
                .order_by(egress_releases.c.released_at.desc(), egress_files.c.name)).mappings().all()
        return [dict(r) for r in rows]

    def permit_releases(self, permit_id: str, *, exclude: str | None = None) -> list[dict]:
        """Earlier releases of a permit (shown to checkers next to a new request)."""
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
                if r["request_id"] == exclude:
                    continue
                names = [f.name for f in conn.execute(sa.select(egress_files.c.name).where(
                    egress_files.c.request_id == r["request_id"], egress_files.c.version == r["version"]))]
                out.append(dict(r, files=names))
            return out

    def released_files(self, permit_id: str) -> list[tuple[str, bytes]]:
        """(name, bytes) of every released file of a permit, for differencing."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(egress_files.c.name, egress_files.c.sha256)
                .join(egress_releases, sa.and_(egress_files.c.request_id == egress_releases.c.request_id,
                                               egress_files.c.version == egress_releases.c.version))
                .where(egress_releases.c.permit_id == permit_id)).all()
        return [(r.name, self.store.get(r.sha256)) for r in rows]

    # --- internals ------------------------------------------------------------------------------
    @staticmethod
    def _guard(check, facts: wf.RequestFacts, *args) -> None:
        """Run a guard; a Forbidden (someone acting outside their role: a checker on their own
        permit, an author on their own request) is audited after the rollback."""
        try:
            check(facts, *args)
        except Forbidden as err:
            raise _Denied(err, facts.permit_id, facts.state) from None

    def workspace_permit(self, actor: wf.Actor) -> Permit | None:
        """The permit of the workspace whose server token the actor holds (None outside a
        workspace); NotFound / Conflict from `hub.permits.access.permit_for_server`."""
        if not actor.server_name:
            return None
        return permit_for_server(self.permits.list(), actor.server_name)

    def _permit_of(self, request_id: str) -> Permit:
        # Read before opening the caller's transaction: on SQLite every connection takes the
        # write lock (BEGIN IMMEDIATE), so a second connection inside one would wait for itself.
        with self.engine.connect() as conn:
            row = self._row(conn, request_id)
        return self.permits.get(row["permit_id"])

    def _row(self, conn, request_id: str, *, for_update: bool = False):
        if not isinstance(request_id, str) or len(request_id) > 40:
            raise NotFound("no such request")
        q = sa.select(egress_requests).where(egress_requests.c.id == request_id)
        if for_update and conn.dialect.name != "sqlite":  # SQLite: BEGIN IMMEDIATE already serialises
            q = q.with_for_update()
        row = conn.execute(q).mappings().first()
        if row is None:
            raise NotFound(f"no request {request_id!r}")
        return row

    def _facts(self, row, permit: Permit, conn=None) -> wf.RequestFacts:
        reviewed_by: frozenset = frozenset()
        if conn is not None:
            reviewed_by = frozenset(r.reviewer for r in conn.execute(
                sa.select(egress_reviews.c.reviewer).where(egress_reviews.c.request_id == row["id"],
                                                           egress_reviews.c.version == row["version"])))
            status = conn.execute(sa.select(egress_request_versions.c.check_status).where(
                egress_request_versions.c.request_id == row["id"],
                egress_request_versions.c.version == row["version"])).scalar()
        else:
            status = "pass"
        return wf.RequestFacts(id=row["id"], state=row["state"], author=row["author"], permit_id=row["permit_id"],
                               permit_status=permit.status,
                               permit_members=frozenset(m.username for m in permit.members),
                               version=row["version"], reviewers_required=permit.egress.reviewers_required,
                               check_status=status or "pass", reviewed_by=reviewed_by)

    def _transition(self, conn, row, action: str, actor: str, role: str, detail: dict,
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
        return self._row(conn, row["id"])

    def _summary(self, conn, row) -> dict:
        out = _request_dict(row)
        v = conn.execute(sa.select(egress_request_versions).where(
            egress_request_versions.c.request_id == row["id"],
            egress_request_versions.c.version == row["version"])).mappings().first()
        out.update(description=v["description"], kind=v["kind"], check_status=v["check_status"],
                   verified=bool(v["verified"]), owner=wf.OWNER[row["state"]])
        return out

    def _audit_refusal(self, actor: wf.Actor, action: str, permit_id: str | None, request_id: str | None,
                       err: Refused, state: str | None = None) -> None:
        """A refused submission (a tampered table is flagged here) or a forbidden review or release
        leaves one audit event (outcome refused) and nothing else."""
        try:
            with transaction(self.engine) as conn:
                audit.record(conn, actor=actor.username, role="researcher", action=action, permit_id=permit_id,
                             object_id=request_id, outcome="refused",
                             # from/to: the transition's schema (hub.audit.events); refused, it stays put
                             detail={"reason": str(err)[:500], "refusal": type(err).__name__,
                                     "from": state, "to": state})
        except Exception:  # the refusal itself must still reach the user
            log.exception("could not audit a refused submission")


class _Denied(Exception):
    """Carries a Forbidden out of a rolled-back transaction so that it can be audited."""

    def __init__(self, err: Forbidden, permit_id: str, state: str):
        super().__init__(str(err))
        self.err = err
        self.permit_id = permit_id
        self.state = state


HIDDEN = "(shown inside the permit's workspace and to output checkers until released)"


def _redacted_file(item: dict) -> dict:
    """What the author sees of a file outside the workspace before release: status, never content."""
    check = item["check"]
    rules = sorted({f["rule"] for c in check.get("cells", []) for f in c["findings"]}
                   | {f["rule"] for f in check.get("table", [])})
    return {"name": item["name"], "sha256": item["sha256"], "size_bytes": item["size_bytes"],
            "file_type": item["file_type"], "provenance_sql": None,
            "check": {"status": check.get("status"), "verified": check.get("verified"),
                      "cells_flagged": len(check.get("cells", [])), "rules": rules, "cells": [], "table": [],
                      "suggestions": [], "note": HIDDEN}}


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _request_dict(row) -> dict:
    return {"id": row["id"], "permit_id": row["permit_id"], "author": row["author"], "state": row["state"],
            "version": row["version"], "row_version": row["row_version"], "created_at": row["created_at"],
            "updated_at": row["updated_at"]}


def _files_detail(checks: list[FileCheck]) -> dict:
    return {"files": {c.name: _sha(c.data) for c in checks}}


def _check_detail(checks: list[FileCheck]) -> dict:
    return {"status": overall_status(checks), "verified": all(c.verified for c in checks),
            "files": {c.name: c.status for c in checks}}


def _visible_reviews(facts: wf.RequestFacts, actor: wf.Actor, reviews, *, current: bool) -> list[dict]:
    """Blinding: before all required reviews of the current version are in, a checker sees only
    their own review and the author sees none."""
    complete = len(reviews) >= facts.reviewers_required or not current or facts.state not in (wf.CHECKED, wf.IN_REVIEW)
    out = []
    for r in reviews:
        if complete or r["reviewer"] == actor.username:
            out.append({"reviewer": r["reviewer"], "decision": r["decision"], "comment": r["comment"],
                        "created_at": r["created_at"]})
    return out
