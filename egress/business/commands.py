"""Commands of the egress business layer: the only way egress state changes.

submit, resubmit, review, release, withdraw, download, and a DP query (charged by
`egress.dp.service`; held for review as a request unless the permit auto-releases). Each asks a guard of `egress.workflow`
(the permit rules through `hub.permits.access`), then moves the request by the workflow's table
and writes its audit event in the SAME transaction (`RequestData.transition`), so the request and
the trail cannot disagree and two concurrent writers can never both move one request. Checks run
before the transaction (they are slow: provenance re-execution); a refused submission stores
nothing but its audit event, and a reviewer or releaser acting outside their role is audited
after the rollback.

`Commands` is a mixin of `egress.business.EgressService`: it uses the service's `engine`,
`permits`, `store`, `data` (RequestData), provenance limits and `today`, and answers with the
read model `get` of `egress.business.queries`. Must not import the web layer.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from egress import workflow as wf
from egress.business.data import sha256_of
from egress.dp.service import run_query
from egress.review.checking import KINDS, FileCheck, check_submission, overall_status, parse_released
from hub import audit
from hub.audit.store import utc_now_iso
from hub.db import transaction
from hub.exceptions import Conflict, Forbidden, InvalidInput, Refused
from hub.permits.model import Permit
from hub.provision.extracts import current_extract

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


class Commands:
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
            wf.check_can_submit(permit, actor, self.today)
            checks = self._check(permit, submission)
        except Refused as err:
            self.data.audit_refusal(actor, wf.AUDIT_ACTION[wf.SUBMIT], permit.id if permit else permit_id, None, err)
            raise
        request_id = "r-" + secrets.token_hex(8)
        now = utc_now_iso()
        self._put_blobs(checks)
        with transaction(self.engine) as conn:
            self.data.insert_request(conn, request_id, permit.id, actor.username, actor.server_name, now)
            audit.record(conn, actor=actor.username, role="researcher", action=wf.AUDIT_CREATE,
                         permit_id=permit.id, object_id=request_id,
                         detail={"kind": submission.kind, "files": [c.name for c in checks]})
            self.data.insert_version(conn, request_id, 1, submission.kind, submission.description, checks, now)
            row = self.data.row(conn, request_id)
            row = self.data.transition(conn, row, wf.SUBMIT, actor.username, "researcher", _files_detail(checks))
            self.data.transition(conn, row, wf.CHECK, SYSTEM_ACTOR, "system", _check_detail(checks))
        return self.get(actor, request_id)

    def resubmit(self, actor: wf.Actor, request_id: str, submission: Submission) -> dict:
        """A new version of a returned (or checked) request; its earlier reviews stay with their version."""
        permit = self.data.permit_of(request_id)
        with self.engine.connect() as conn:
            row = self.data.row(conn, request_id)
        try:
            wf.check_can_resubmit(self.data.facts(row, permit), actor)
            wf.check_can_submit(permit, actor, self.today)
            checks = self._check(permit, submission)
        except Refused as err:
            self.data.audit_refusal(actor, wf.AUDIT_ACTION[wf.RESUBMIT], permit.id, request_id, err, row["state"])
            raise
        self._put_blobs(checks)
        now = utc_now_iso()
        with transaction(self.engine) as conn:
            current = self.data.row(conn, request_id)
            if current["row_version"] != row["row_version"]:
                raise Conflict(f"request {request_id} changed while its new version was checked; submit again")
            wf.check_can_resubmit(self.data.facts(current, permit), actor)
            version = current["version"] + 1
            self.data.insert_version(conn, request_id, version, submission.kind, submission.description, checks, now)
            current = self.data.transition(conn, current, wf.RESUBMIT, actor.username, "researcher",
                                           dict(_files_detail(checks), version=version), new_version=version)
            self.data.transition(conn, current, wf.CHECK, SYSTEM_ACTOR, "system", _check_detail(checks))
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
        released = parse_released(self.data.released_files(permit.id))
        return check_submission(submission.files, kind=submission.kind, provenance=submission.provenance or {},
                                policy=permit.egress, extract_dir=extract_dir, extract_persons=persons,
                                released=released, timeout_seconds=self.provenance_timeout_seconds,
                                memory_limit=self.provenance_memory_limit)

    def _put_blobs(self, checks: list[FileCheck]) -> None:
        # Before the transaction: an orphan blob (if the transaction fails) is harmless, a row
        # pointing to a missing blob would not be.
        for check in checks:
            self.store.put(check.data)

    # --- reviewing and releasing ----------------------------------------------------------
    def review(self, actor: wf.Actor, request_id: str, *, version: int, decision: str, comment: str = "") -> dict:
        """One blinded review of `version`; the last required review decides (workflow.completion)."""
        try:
            return self._review(actor, request_id, version=version, decision=decision, comment=comment)
        except _Denied as denied:
            self.data.audit_refusal(actor, wf.AUDIT_ACTION[wf.REVIEW], denied.permit_id, request_id, denied.err,
                                    denied.state)
            raise denied.err from None

    def _review(self, actor: wf.Actor, request_id: str, *, version: int, decision: str, comment: str) -> dict:
        if not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS:
            raise InvalidInput(f"a comment is text of at most {MAX_COMMENT_CHARS} characters", field="comment")
        if decision in ("return", "reject") and not comment.strip():
            raise InvalidInput(f"say why you {decision} it: the author needs a reason", field="comment")
        if not isinstance(version, int) or isinstance(version, bool):
            raise InvalidInput("the version you reviewed is required", field="version")
        permit = self.data.permit_of(request_id)
        with transaction(self.engine) as conn:
            row = self.data.row(conn, request_id, for_update=True)
            facts = self.data.facts(row, permit, conn)
            _guard(wf.check_can_review, facts, actor, decision)
            if version != row["version"]:
                raise Conflict(f"you reviewed version {version} but the request is now at version {row['version']}: "
                               "reload the page and review the new version")
            self.data.insert_review(conn, request_id, version, actor.username, decision, comment.strip())
            row = self.data.transition(conn, row, wf.REVIEW, actor.username, "output_checker",
                                       {"version": version, "decision": decision})
            decisions = self.data.decisions(conn, request_id, version)
            outcome = wf.completion(decisions, permit.egress.reviewers_required)
            if outcome:
                self.data.transition(conn, row, outcome, SYSTEM_ACTOR, "system",
                                     {"version": version, "decisions": sorted(decisions)})
        return self.get(actor, request_id)

    def release(self, actor: wf.Actor, request_id: str) -> dict:
        try:
            return self._release(actor, request_id)
        except _Denied as denied:
            self.data.audit_refusal(actor, wf.AUDIT_ACTION[wf.RELEASE], denied.permit_id, request_id, denied.err,
                                    denied.state)
            raise denied.err from None

    def _release(self, actor: wf.Actor, request_id: str) -> dict:
        permit = self.data.permit_of(request_id)
        with transaction(self.engine) as conn:
            row = self.data.row(conn, request_id, for_update=True)
            _guard(wf.check_can_release, self.data.facts(row, permit, conn), actor)
            files = self.data.insert_release(conn, row, actor.username)
            self.data.transition(conn, row, wf.RELEASE, actor.username, "output_checker",
                                 {"version": row["version"], "files": files})
        return self.get(actor, request_id)

    def withdraw(self, actor: wf.Actor, request_id: str) -> dict:
        permit = self.data.permit_of(request_id)
        with transaction(self.engine) as conn:
            row = self.data.row(conn, request_id, for_update=True)
            wf.check_can_withdraw(self.data.facts(row, permit, conn), actor)
            self.data.transition(conn, row, wf.WITHDRAW, actor.username, "researcher", {"version": row["version"]})
        return self.get(actor, request_id)

    # --- DP queries ----------------------------------------------------------------------------
    def query_dp(self, actor: wf.Actor, spec: dict) -> dict:
        """A DP query from the actor's workspace (`egress.dp.service.run_query` charges and audits
        it). The answer comes back at once only when the permit says `dp.auto_release`; otherwise
        it becomes an egress request of the permit (the answer as a text file) that two checkers
        review like any other output, and this returns the request without the values."""
        permit = self.workspace_permit(actor)
        if permit is None:
            raise Forbidden("DP queries run from a permit's workspace (its server token names the permit)")
        wf.check_can_query(permit, actor, self.today)
        answer = run_query(self.engine, self.settings, permit, actor.username, spec, today=self.today)
        if answer.get("release") == "auto":
            return answer
        text = json.dumps(answer, indent=2, sort_keys=True, default=str).encode()
        name = f"dp-{answer['kind']}-{answer['query_hash'][:12]}.txt"
        request = self.submit(actor, Submission(
            files=[(name, text)], kind="text",
            description=f"DP {answer['kind']} on {answer['table']} (epsilon {answer['epsilon']:g}); "
                        "held for review: the permit does not allow automatic release of DP answers"), permit.id)
        return {"release": "review", "request_id": request["id"], "state": request["state"],
                "query_hash": answer["query_hash"], "charge_id": answer["charge_id"], "budget": answer["budget"]}

    # --- downloading ------------------------------------------------------------------------
    def download(self, actor: wf.Actor, request_id: str, name: str) -> tuple[bytes, str]:
        """(bytes, sha256) of a released file, for a member of the permit; every download audited."""
        permit = self.data.permit_of(request_id)
        with transaction(self.engine) as conn:
            row = self.data.row(conn, request_id)
            try:
                wf.check_can_download(self.data.facts(row, permit, conn), actor)
            except Refused as err:
                audit.record(conn, actor=actor.username, role="researcher", action=wf.AUDIT_DOWNLOAD,
                             permit_id=row["permit_id"], object_id=f"{request_id}/{name}", outcome="refused",
                             detail={"reason": str(err)})
                refused = err
            else:
                refused = None
                released, file_row = self.data.released_file(conn, request_id, name)
                data = self.store.get(file_row["sha256"])
                self.data.insert_download(conn, request_id, released, name, file_row["sha256"], actor.username)
                audit.record(conn, actor=actor.username, role="researcher", action=wf.AUDIT_DOWNLOAD,
                             permit_id=row["permit_id"], object_id=f"{request_id}/{name}",
                             detail={"sha256": file_row["sha256"], "version": released, "bytes": len(data)})
        if refused is not None:  # raised after the commit so the refusal stays in the trail
            raise refused
        return data, file_row["sha256"]


def _guard(check, facts: wf.RequestFacts, *args) -> None:
    """Run a guard; a Forbidden (someone acting outside their role: a checker on their own
    permit, an author on their own request) is audited after the rollback."""
    try:
        check(facts, *args)
    except Forbidden as err:
        raise _Denied(err, facts.permit_id, facts.state) from None


class _Denied(Exception):
    """Carries a Forbidden out of a rolled-back transaction so that it can be audited."""

    def __init__(self, err: Forbidden, permit_id: str, state: str):
        super().__init__(str(err))
        self.err = err
        self.permit_id = permit_id
        self.state = state


def _files_detail(checks: list[FileCheck]) -> dict:
    return {"files": {c.name: sha256_of(c.data) for c in checks}}


def _check_detail(checks: list[FileCheck]) -> dict:
    return {"status": overall_status(checks), "verified": all(c.verified for c in checks),
            "files": {c.name: c.status for c in checks}}
