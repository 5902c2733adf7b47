"""Read models of the egress business layer: what pages, the API and the workspace client show.

One request blinded for its viewer (`get`: content only inside the permit's workspace or to an
independent checker, reviews hidden until all required ones are in, the buttons the workflow
guards would allow), the author's list, the checkers' queue, a member's released files, a
permit's earlier releases, DP budgets, and the permit of the calling workspace. Nothing here
changes state.

`ReadModels` is a mixin of `egress.business.EgressService`: it uses the service's `engine`,
`permits`, `store`, `data` (RequestData) and `today`. Must not import the web layer.
"""

from __future__ import annotations

import json

from egress import workflow as wf
from egress.dp.service import budget
from egress.review.checking import table_preview
from hub.exceptions import Forbidden, InvalidInput
from hub.permits.access import is_workspace_of, permit_for_server
from hub.permits.model import Permit

HIDDEN = "(shown inside the permit's workspace and to output checkers until released)"
WAITING_FOR_CHECKERS = (wf.CHECKED, wf.IN_REVIEW, wf.APPROVED)


class ReadModels:
    def workspace_permit(self, actor: wf.Actor) -> Permit | None:
        """The permit of the workspace whose server token the actor holds (None outside a
        workspace); NotFound / Conflict from `hub.permits.access.permit_for_server`."""
        if not actor.server_name:
            return None
        return permit_for_server(self.permits.list(), actor.server_name)

    def get(self, actor: wf.Actor, request_id: str, *, with_previews: bool = False) -> dict:
        """Everything a page or the client shows about one request, blinded for this actor."""
        permit = self.data.permit_of(request_id)
        with self.engine.connect() as conn:
            row = self.data.row(conn, request_id)
            facts = self.data.facts(row, permit, conn)
            wf.check_can_view(facts, actor)
            versions, files, reviews, release = self.data.history(conn, request_id)
        content = wf.can_see_content(facts, actor)
        out = _request_dict(row)
        out["content_visible"] = content
        out["owner"] = wf.OWNER[row["state"]]
        out["reviewers_required"] = permit.egress.reviewers_required
        out["approval_blocked"] = ([f"{name}: {reason}" for name, reason in facts.unverified_tables]
                                   if facts.require_provenance else [])
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
                elif with_previews and not self.store.has(f["sha256"]):  # deleted under retention (egress.retention)
                    item["preview"], item["deleted"] = None, True
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
            "apply_suggestion": wf.can_apply_suggestion(facts, actor),
            "download": wf.can_download(facts, actor),
        }
        return out

    def list_own(self, actor: wf.Actor) -> list[dict]:
        """The actor's own requests, newest first."""
        with self.engine.connect() as conn:
            out = []
            for r in self.data.by_author(conn, actor.username):
                item = self._summary(conn, r)
                if not is_workspace_of(r["permit_id"], actor.server_name) and r["state"] != wf.RELEASED:
                    item["description"] = HIDDEN
                out.append(item)
            return out

    def queue(self, actor: wf.Actor) -> list[dict]:
        """Requests waiting for a checker that this actor may review or release (oldest first)."""
        if not (actor.has(wf.SCOPE_REVIEW) or actor.has(wf.SCOPE_RELEASE)):
            raise Forbidden(f"{actor.username} is not an output checker")
        permits = {p.id: p for p in self.permits.list()}
        with self.engine.connect() as conn:
            out = []
            for r in self.data.in_states(conn, WAITING_FOR_CHECKERS):
                facts = self.data.facts(r, permits[r["permit_id"]], conn)
                if not (wf.can_review(facts, actor, "return") or wf.can_release(facts, actor)):
                    continue
                item = self._summary(conn, r)
                item["action"] = "release" if r["state"] == wf.APPROVED else "review"
                out.append(item)
            return out

    def released_for(self, actor: wf.Actor) -> list[dict]:
        """Released files of the permits the actor is a member of (the researcher's downloads)."""
        member_of = [p.id for p in self.permits.list() if p.is_member(actor.username)]
        return self.data.released_of_permits(member_of) if member_of else []

    def permit_releases(self, permit_id: str, *, exclude: str | None = None) -> list[dict]:
        """Earlier releases of a permit (shown to checkers next to a new request)."""
        return [r for r in self.data.permit_releases(permit_id) if r["request_id"] != exclude]

    def dp_budget(self, actor: wf.Actor, permit_id: str | None = None):
        """DP budget of `permit_id` (default: the calling workspace's permit): an operator who is
        not a member sees every budget row of the permit, anyone else her own while she may query."""
        permit = self.permits.get(permit_id) if permit_id else self.workspace_permit(actor)
        if permit is None:
            raise InvalidInput("name the permit (?permit=...) or call from its workspace", field="permit")
        if actor.has(wf.SCOPE_OPERATE) and not permit.is_member(actor.username):
            return budget(self.engine, permit, None)
        return budget(self.engine, permit, actor.username, today=self.today)

    def _summary(self, conn, row) -> dict:
        out = _request_dict(row)
        v = self.data.current_version(conn, row)
        out.update(description=v["description"], kind=v["kind"], check_status=v["check_status"],
                   verified=bool(v["verified"]), owner=wf.OWNER[row["state"]])
        return out


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


def _request_dict(row) -> dict:
    return {"id": row["id"], "permit_id": row["permit_id"], "author": row["author"], "state": row["state"],
            "version": row["version"], "row_version": row["row_version"], "created_at": row["created_at"],
            "updated_at": row["updated_at"]}


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
