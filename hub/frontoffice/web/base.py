"""What every front-office handler shares: hub OAuth (browser) or hub token (API) authentication
into an `Actor` with roles, blocking business calls off the event loop, and errors (a refusal is
its 4xx with the one-line reason; anything else a 500 without detail). Public pages (catalogue,
harvest endpoint) work without a login. Must not import `egress`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from jupyterhub.services.auth import HubOAuthenticated
from tornado import web

from hub.exceptions import Forbidden, InvalidInput, Refused, SpeError
from hub.frontoffice.roles import Actor, actor_from_scopes
from hub.ui.web import FrameMixin

log = logging.getLogger("spe.frontoffice.web")
MAX_JSON_BYTES = 512 * 1024
TEMPLATES = Path(__file__).parent / "templates"


class _Login(Exception):
    """A page needs a session: send the browser to the hub's login."""


class FrontOfficeHandler(FrameMixin, HubOAuthenticated, web.RequestHandler):
    api = False
    frame_prefix_setting = "frontoffice_prefix"  # pages in SPE's frame (hub.ui)

    @property
    def fo(self):
        return self.settings["frontoffice"]

    def get_template_path(self):
        # its own templates, whatever application mounts these handlers (the portal has its own)
        return str(TEMPLATES)

    def check_hub_user(self, model):
        if model.get("kind", "user") != "user":
            return None
        # the access scope of this service (every SPE group's but the citizens'): other hub
        # identities (a citizen's token, a token issued without it) get a 403, not a session
        if not self.hub_auth.check_scopes(self.hub_scopes, model):
            raise Forbidden("the front office is for applicants, the HDAB and SPE's staff; "
                            "ask an operator to add you to a group")
        return model

    def check_xsrf_cookie(self):  # checked in prepare(), after authentication (token requests exempt)
        return

    async def prepare(self):
        try:
            model = await self.hub_auth.get_user(self, sync=False)
        except web.HTTPError:
            raise
        except Exception:
            log.exception("hub authentication failed")
            raise web.HTTPError(503, "the hub cannot confirm who you are right now; try again") from None
        self._model = self.check_hub_user(model) if model else None
        if self._model and self.request.method not in ("GET", "HEAD") and not getattr(self, "_token_authenticated", False):
            self.hub_auth.check_xsrf_cookie(self)

    def get_current_user(self):
        return getattr(self, "_model", None)

    def actor(self, required: bool = True) -> Actor | None:
        model = self.current_user
        if not model:
            if not required:
                return None
            if self.api:
                raise web.HTTPError(401, "authenticate with a hub token (Authorization: token …)")
            raise _Login()
        return actor_from_scopes(model["name"], frozenset(model.get("scopes") or ()))

    async def call(self, fn, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.settings["frontoffice_executor"], lambda: fn(*args, **kwargs))

    def url(self, path: str = "") -> str:
        return self.settings["frontoffice_prefix"] + path.lstrip("/")

    def json_body(self) -> dict:
        if len(self.request.body) > MAX_JSON_BYTES:
            raise InvalidInput(f"the body is larger than {MAX_JSON_BYTES} bytes", field="(body)")
        try:
            body = json.loads(self.request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput("the body is not JSON", field="(body)") from None
        if not isinstance(body, dict):
            raise InvalidInput("the body must be a JSON object", field="(body)")
        return body

    def send_json(self, obj, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(obj, sort_keys=True, default=str))

    def page(self, template: str, **values) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
        self.render(template, prefix=self.settings["frontoffice_prefix"], actor=self.actor(required=False),
                    message=self.get_argument("message", ""), **values)

    # --- errors ----------------------------------------------------------------------------
    def _handle_request_exception(self, e):
        if isinstance(e, _Login):
            if not self._finished:
                self.redirect(self.get_login_url())
            return
        if isinstance(e, Refused):
            field = e.field if isinstance(e, InvalidInput) else None
            return self._error(e.http_status, str(e), type(e).__name__, field)
        if isinstance(e, SpeError):
            log.error("front office failure: %s", e, exc_info=e)
            return self._error(500, "the service failed; the operators have the details", "Failure")
        return super()._handle_request_exception(e)

    def _error(self, status: int, message: str, reason: str, field: str | None = None) -> None:
        if self._finished:
            return
        self.clear()
        self.set_status(status)
        if self.api:
            self.finish(json.dumps({"error": message, "reason": reason, "field": field, "status": status}))
        else:
            self.render("error.html", prefix=self.settings["frontoffice_prefix"], actor=None, message=message,
                        status=status)

    def write_error(self, status_code: int, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else (
            "the service failed; the operators have the details" if status_code >= 500 else self._reason)
        if self.api:
            self.finish(json.dumps({"error": message, "status": status_code}))
        else:
            self.render("error.html", prefix=self.settings["frontoffice_prefix"], actor=None, message=message,
                        status=status_code)
