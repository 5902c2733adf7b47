"""Each person's own mail preferences, mounted in the front office: `notifications` (a page with
a form) and `api/notifications` (JSON). A signed-in person sees their address (set by the IdP or
the operator; not changeable here, so a stolen session cannot divert someone's mail) and
chooses opt-out of non-mandatory mail and the daily digest. Every change is audited
(`notify.preferences`). Must not import `egress`.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from hub import audit
from hub.exceptions import InvalidInput
from hub.frontoffice.web.base import FrontOfficeHandler
from hub.notify import recipients


def _view(entry: dict | None) -> dict:
    entry = entry or {}
    return {"address": entry.get("address"), "opt_out": bool(entry.get("opt_out")),
            "digest": bool(entry.get("digest")), "groups": json.loads(entry.get("groups_json") or "[]")}


def get_preferences(engine: sa.Engine, username: str) -> dict:
    with engine.connect() as conn:
        return _view(recipients.person(conn, username))


def set_preferences(engine: sa.Engine, username: str, changes: dict) -> dict:
    """Apply `{"opt_out": bool, "digest": bool}` (either may be absent) for the person themselves."""
    unknown = sorted(set(changes) - {"opt_out", "digest"})
    if unknown:
        raise InvalidInput(f"unknown key(s) {', '.join(unknown)}: only opt_out and digest can be set here",
                           field=unknown[0])
    for key, value in changes.items():
        if not isinstance(value, bool):
            raise InvalidInput("must be true or false", field=key)
    with engine.begin() as conn:
        entry = recipients.set_person(conn, username, opt_out=changes.get("opt_out"), digest=changes.get("digest"))
        audit.record(conn, actor=username, action="notify.preferences", detail={"user": username, **changes})
    return _view(entry)


class NotificationsApiHandler(FrontOfficeHandler):
    api = True

    async def get(self):
        actor = self.actor()
        self.send_json(await self.call(get_preferences, self.fo.engine, actor.username))

    async def put(self):
        actor = self.actor()
        self.send_json(await self.call(set_preferences, self.fo.engine, actor.username, self.json_body()))


class NotificationsPageHandler(FrontOfficeHandler):
    async def get(self):
        actor = self.actor()
        prefs = await self.call(get_preferences, self.fo.engine, actor.username)
        self.page("notifications.html", prefs=prefs)

    async def post(self):
        actor = self.actor()
        changes = {"opt_out": self.get_body_argument("opt_out", "") == "on",
                   "digest": self.get_body_argument("digest", "") == "on"}
        await self.call(set_preferences, self.fo.engine, actor.username, changes)
        self.redirect(self.url("notifications?message=preferences+saved"))


def routes(prefix: str) -> list[tuple]:
    return [(prefix + r"notifications", NotificationsPageHandler),
            (prefix + r"api/notifications", NotificationsApiHandler)]
