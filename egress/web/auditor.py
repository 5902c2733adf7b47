"""Auditor pages of the egress service: the audit trail filtered by permit, user, action and
time, the timeline of one permit from provisioning to deletion, and its browser output meter
(bytes its workspaces sent to browsers per user and day), as pages in SPE's frame (a filter
form, a table) or as JSON (`format=json`). Read-only.

Only a hub user whose token model carries the `custom:spe:audit` scope gets in; anyone else
gets 403 (401 without a login). Every handler answers GET only — there is no write path, so
an auditor cannot change anything — and each view is itself recorded (`audit.view`): who
looked at what is evidence too.

Mount with `auditor_handlers(prefix, engine, base=BaseHandler)` where `base` is the egress
service's authenticated handler (its `get_current_user()` returns the hub user model).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import sqlalchemy as sa
from tornado import web

from hub.audit.pack import parse_time_bound
from hub.audit.store import record
from hub.audit.timeline import timeline
from hub.exceptions import Forbidden, InvalidInput, Refused
from hub.sessionlog.meterdb import meter_rows
from hub.ui.web import FrameMixin

TEMPLATES = Path(__file__).parent / "templates"
PAGE_CSP = "default-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"

SCOPE_AUDIT = "custom:spe:audit"
MAX_ROWS = 1000
COLUMNS = ("seq", "ts", "actor", "role", "action", "permit_id", "object_id", "outcome", "summary")


def check_can_audit(model: dict | None) -> str:
    """The auditor's name, or Forbidden (the same rule decides whether a page shows the link)."""
    if not model:
        raise Forbidden("log in through the hub first")
    if SCOPE_AUDIT not in set(model.get("scopes") or ()):
        raise Forbidden("the auditor role is required to read the audit trail")
    return model["name"]


def _filters(get) -> dict:
    limit_raw = get("limit", str(200))
    try:
        limit = int(limit_raw)
    except ValueError:
        raise InvalidInput(f"not a number: {limit_raw!r}", field="limit") from None
    if not 1 <= limit <= MAX_ROWS:
        raise InvalidInput(f"must be between 1 and {MAX_ROWS}", field="limit")
    action = get("action", None)
    if action is not None and (len(action) > 100 or not all(c.isalnum() or c in "._-" for c in action)):
        raise InvalidInput("letters, digits, '.', '_' or '-' only", field="action")
    for name in ("permit", "user"):
        v = get(name, None)
        if v is not None and len(v) > 200:
            raise InvalidInput("too long", field=name)
    return {"permit_id": get("permit", None) or None, "user": get("user", None) or None,
            "actions": ((action if action.endswith(".") or "." in action else action + "."),) if action else None,
            "ts_from": parse_time_bound(get("from", None) or None, "from"),
            "ts_to": parse_time_bound(get("to", None) or None, "to"), "limit": limit}


def query_events(engine: sa.Engine, f: dict) -> list[dict]:
    with engine.connect() as conn:
        out = []
        for row in timeline(conn, permit_id=f["permit_id"], user=f["user"], actions=f["actions"],
                            ts_from=f["ts_from"], ts_to=f["ts_to"]):
            out.append({k: row.get(k) for k in COLUMNS})
            if len(out) >= f["limit"]:
                break
        conn.rollback()
    return out


class AuditorMixin(FrameMixin):
    """Mixed in front of the service's authenticated base handler; pages in SPE's frame."""

    def initialize(self, engine: sa.Engine, frame_prefix: str = "/", **kwargs):
        self.engine = engine
        self._frame_prefix = frame_prefix
        parent = getattr(super(), "initialize", None)
        if parent is not None and kwargs:
            parent(**kwargs)

    def check_xsrf_cookie(self):  # GET only; nothing to protect
        return

    def frame_prefix(self) -> str:
        return self._frame_prefix

    def get_template_path(self):
        return str(TEMPLATES)

    async def _guarded(self, build):
        try:
            auditor = check_can_audit(self.get_current_user())
            filters = _filters(self.get_argument)
            payload = await asyncio.get_running_loop().run_in_executor(None, build, filters)
            await asyncio.get_running_loop().run_in_executor(None, self._record_view, auditor, filters)
        except Refused as err:
            if (not self.get_current_user() and self.get_argument("format", "html") != "json"
                    and hasattr(self, "hub_auth")):  # a browser without a hub session: to the login
                self.redirect(self.get_login_url())
                return
            status = 401 if (isinstance(err, Forbidden) and not self.get_current_user()) else err.http_status
            self.set_status(status)
            self._send({"error": str(err), "status": status}, title="Not allowed")
            return
        self._send(payload, title=payload.get("title", "Audit trail"))

    def _record_view(self, auditor: str, filters: dict) -> None:
        with self.engine.begin() as conn:
            # The permit goes in the detail, not the permit column: a view is not part of the permit's history.
            record(conn, actor=auditor, role="auditor", action="audit.view",
                   detail={"path": self.request.path[:200],
                           "filters": {k: v for k, v in filters.items() if v is not None}})

    def _send(self, payload: dict, title: str) -> None:
        if self.get_argument("format", "html") == "json" or "error" in payload and self.request.path.endswith(".json"):
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(json.dumps(payload, indent=2, default=str))
            return
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Security-Policy", PAGE_CSP)
        prefix = self.frame_prefix()
        if "error" in payload:
            self.finish(self.render_string("error.html", status=payload["status"], message=payload["error"],
                                           prefix=prefix))
            return
        if "rows" in payload:
            self.finish(self.render_string("meter.html", title=title, payload=payload, prefix=prefix))
            return
        form = {k: self.get_argument(k, "") for k in ("permit", "user", "action", "from", "to", "limit")}
        self.finish(self.render_string("audit.html", title=title, payload=payload, columns=COLUMNS, form=form,
                                       prefix=prefix))


class EventsMixin(AuditorMixin):
    async def get(self):
        await self._guarded(lambda f: {"title": "Audit trail", "events": query_events(self.engine, f)})


class PermitTimelineMixin(AuditorMixin):
    async def get(self, permit_id: str):
        def build(f):
            f = {**f, "permit_id": permit_id, "limit": f["limit"] if "limit" in self.request.arguments else MAX_ROWS}
            return {"title": f"Timeline of permit {permit_id}", "permit_id": permit_id,
                    "events": query_events(self.engine, f)}

        await self._guarded(build)


METER_COLUMNS = ("day", "username", "used_bytes", "budget_bytes", "withheld_bytes", "raised_bytes", "warned")


class PermitMeterMixin(AuditorMixin):
    """The browser output meter of one permit (hub.sessionlog.meterdb): per user and day."""

    async def get(self, permit_id: str):
        def build(f):
            rows = meter_rows(self.engine, permit_id=permit_id, user=f["user"])
            return {"title": f"Browser output meter of permit {permit_id}", "permit_id": permit_id,
                    "columns": METER_COLUMNS, "rows": [{c: r[c] for c in METER_COLUMNS} for r in rows]}

        await self._guarded(build)


class _PlainBase(web.RequestHandler):
    """Default base without hub authentication: nobody is an auditor (fail closed)."""

    def get_current_user(self):
        return None


def auditor_handlers(prefix: str, engine: sa.Engine, base: type = _PlainBase, base_kwargs: dict | None = None) -> list[tuple]:
    """Routes: `<prefix>/audit/events`, `<prefix>/audit/permits/<id>/timeline` and
    `<prefix>/audit/permits/<id>/meter` (GET only)."""
    root = prefix.rstrip("/")
    events = type("AuditEventsHandler", (EventsMixin, base), {})
    permit = type("AuditPermitTimelineHandler", (PermitTimelineMixin, base), {})
    meter = type("AuditPermitMeterHandler", (PermitMeterMixin, base), {})
    kw = {"engine": engine, "frame_prefix": root + "/", **(base_kwargs or {})}
    return [
        (root + "/audit/events", events, kw),
        (root + r"/audit/permits/([A-Za-z0-9._-]{1,64})/timeline", permit, kw),
        (root + r"/audit/permits/([A-Za-z0-9._-]{1,64})/meter", meter, kw),
    ]
