"""Server-rendered pages: the researcher's home (own requests, released files to download),
the checker queue, and the request page (each table with failing cells highlighted and the
rule named, the author's context, earlier releases of the permit, and the review / release
buttons). Which buttons appear is decided by the same guards that protect the actions
(`EgressService.get()["can"]`), so a page never offers what the service would refuse.

Forms post back here (cookie session + XSRF token); the handlers call the business layer and
redirect (post/redirect/get). No JavaScript.
"""

from __future__ import annotations

from tornado import web

from egress import workflow as wf
from egress.web.base import BaseHandler
from hub.exceptions import InvalidInput


class PageHandler(BaseHandler):
    def page(self, template: str, **values) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
        self.render(template, prefix=self.settings["service_prefix"], actor=self.actor(), **values)


class HomeHandler(PageHandler):
    async def get(self):
        actor = self.actor()
        own = await self.call(self.service.list_own, actor)
        released = await self.call(self.service.released_for, actor) if actor.has(wf.SCOPE_DOWNLOAD) else []
        is_checker = actor.has(wf.SCOPE_REVIEW) or actor.has(wf.SCOPE_RELEASE)
        self.page("home.html", own=own, released=released, is_checker=is_checker)


class QueuePageHandler(PageHandler):
    async def get(self):
        actor = self.actor()
        self.page("queue.html", queue=await self.call(self.service.queue, actor))


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
