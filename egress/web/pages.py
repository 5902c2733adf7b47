"""Server-rendered pages: the researcher's home (own requests, released files to download),
the checker queue, and the request page (each table with failing cells highlighted and the
rule named, the author's context, earlier releases of the permit, and the review / release
buttons). Which buttons appear is decided by the same guards that protect the actions
(`EgressService.get()["can"]`), so a page never offers what the service would refuse.

Forms post back here (cookie session + XSRF token); the handlers call the business layer and
redirect (post/redirect/get). No JavaScript.
"""

from __future__ import annotations

from datetime import datetime, timezone

from tornado import web

from egress import workflow as wf
from egress.web.base import BaseHandler
from hub.exceptions import InvalidInput


def waiting_for(since, now: datetime) -> tuple[int, str]:
    """How long a request has waited, as (amount, unit) with unit "d", "h" or "min" (pure)."""
    if isinstance(since, str):
        try:
            since = datetime.fromisoformat(since)
        except ValueError:
            return (0, "min")
    if since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    minutes = max(0, int((now - since).total_seconds() // 60))
    if minutes >= 24 * 60:
        return (minutes // (24 * 60), "d")
    if minutes >= 60:
        return (minutes // 60, "h")
    return (minutes, "min")


class PageHandler(BaseHandler):
    def page(self, template: str, **values) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
        self.render(template, prefix=self.settings["service_prefix"], actor=self.actor(), **values)


class HomeHandler(PageHandler):
    """The egress home is each role's own work: a researcher's requests and released files; a
    checker who submits nothing lands on the queue, an auditor on the audit trail."""

    async def get(self):
        actor = self.actor()
        can_submit, can_download = actor.has(wf.SCOPE_SUBMIT), actor.has(wf.SCOPE_DOWNLOAD)
        is_checker = actor.has(wf.SCOPE_REVIEW) or actor.has(wf.SCOPE_RELEASE)
        if not (can_submit or can_download):
            if is_checker:
                return self.redirect(self.url("queue"))
            if actor.has(wf.SCOPE_AUDIT):
                return self.redirect(self.url("audit/events"))
        own = await self.call(self.service.list_own, actor)
        released = await self.call(self.service.released_for, actor) if can_download else []
        self.page("home.html", own=own, released=released, is_checker=is_checker, can_submit=can_submit,
                  can_download=can_download)


QUEUE_FILTERS = ("all", "review", "release")


class QueuePageHandler(PageHandler):
    """The checker's home: what waits for them, how long it has waited, counts per next action."""

    async def get(self):
        actor = self.actor()
        show = self.get_argument("show", "all")
        if show not in QUEUE_FILTERS:
            raise InvalidInput(f"show must be one of {', '.join(QUEUE_FILTERS)}", field="show")
        queue = await self.call(self.service.queue, actor)
        counts = {k: sum(1 for r in queue if k == "all" or r["action"] == k) for k in QUEUE_FILTERS}
        now = datetime.now(timezone.utc)
        rows = [{**r, "waiting": waiting_for(r["updated_at"], now)} for r in queue
                if show == "all" or r["action"] == show]
        self.page("queue.html", queue=rows, counts=counts, show=show, filters=QUEUE_FILTERS)


class RequestPageHandler(PageHandler):
    async def get(self, request_id: str):
        actor = self.actor()
        req = await self.call(self.service.get, actor, request_id, with_previews=True)
        earlier = await self.call(self.service.permit_releases, req["permit_id"], exclude=request_id)
        current = req["versions"][-1]
        self.page("request.html", req=req, current=current, earlier=earlier, cell_marks=cell_marks,
                  message=self.get_argument("message", ""))


class ReviewFormHandler(PageHandler):
    async def post(self, request_id: str):
        actor = self.actor()
        try:
            version = int(self.get_body_argument("version"))
        except (ValueError, web.MissingArgumentError):
            raise InvalidInput("the version you reviewed is required", field="version") from None
        await self.call(self.service.review, actor, request_id, version=version,
                        decision=self.get_body_argument("decision", ""), comment=self.get_body_argument("comment", ""))
        self.redirect(self.url("requests", request_id) + "?message=review+recorded")


class ReleaseFormHandler(PageHandler):
    async def post(self, request_id: str):
        await self.call(self.service.release, self.actor(), request_id)
        self.redirect(self.url("requests", request_id) + "?message=released")


class WithdrawFormHandler(PageHandler):
    async def post(self, request_id: str):
        await self.call(self.service.withdraw, self.actor(), request_id)
        self.redirect(self.url("requests", request_id) + "?message=withdrawn")


class ApplySuggestionFormHandler(PageHandler):
    async def post(self, request_id: str):
        await self.call(self.service.apply_suggestion, self.actor(), request_id)
        self.redirect(self.url("requests", request_id) + "?message=suggested+suppression+applied")


def cell_marks(check: dict) -> dict:
    """`{(row, column): (status, "rule: message; …")}` for highlighting a table's cells."""
    marks = {}
    for cell in check.get("cells", []):
        text = "; ".join(f"{f['rule']}: {f['message']}" for f in cell["findings"])
        marks[(cell["row"], cell["column"])] = (cell["status"], text,
                                                ", ".join(sorted({f["rule"] for f in cell["findings"]})))
    for cell in (check.get("suppression") or {}).get("cells", []):
        key = (cell["row"], cell["column"])
        status, text, rules = marks.get(key, ("pass", "", ""))
        note = f"suggested suppression ({cell['reason']})"
        marks[key] = (status + " suggested", f"{text}; {note}" if text else note,
                      f"{rules}, suggested" if rules else "suggested")
    return marks
