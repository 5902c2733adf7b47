"""What SPE's hub services with pages share (the front office, the citizens' pages): a request is
a hub login (OAuth for browsers, a hub token for the API) of a person holding the service's access
scope, blocking calls run off the event loop, and errors are one line (a refusal its 4xx, anything
else a 500 without detail), as JSON for the API and the service's `error.html` for pages.

A subclass names its settings keys (`prefix_setting`, `executor_setting`), its templates, the
line a person without the access scope reads (`forbidden_message`) and the values its error page
needs (`error_page_values`). Must not import `egress`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from jupyterhub.services.auth import HubOAuthenticated
from tornado import web

from hub.exceptions import Forbidden, InvalidInput, Refused, SpeError

log = logging.getLogger("spe.web")
FAILED = "the service failed; the operators have the details"


class LoginRequired(Exception):
    """A page needs a session: send the browser to the hub's login."""


class HubServiceHandler(HubOAuthenticated, web.RequestHandler):
    api = False  # True: answers are JSON, a missing login is a 401 instead of a redirect
    templates: Path
    prefix_setting = ""
    executor_setting = ""
    forbidden_message = "this service is not open to your account"
    error_page_values: dict = {}

    def get_template_path(self):
        # its own templates, whatever application mounts these handlers
        return str(self.templates)

    def check_hub_user(self, model):
        if model.get("kind", "user") != "user":
            return None
        # the service's access scope: another hub identity gets a 403, not a session without roles
        if not self.hub_auth.check_scopes(self.hub_scopes, model):
            raise Forbidden(self.forbidden_message)
        return model

    def check_xsrf_cookie(self):  # checked in prepare(), after authentication (token requests exempt)
        return

    async def prepare(self):
        try:
            model = await self.hub_auth.get_user(self, sync=False)
        except (web.HTTPError, Refused):
            raise
        except Exception:
            log.exception("hub authentication failed")
            raise web.HTTPError(503, "the hub cannot confirm who you are right now; try again") from None
        self._model = self.check_hub_user(model) if model else None
        if self._model and self.request.method not in ("GET", "HEAD") and not getattr(self, "_token_authenticated", False):
            self.hub_auth.check_xsrf_cookie(self)

    def get_current_user(self):
        return getattr(self, "_model", None)

    def require_login(self) -> dict:
        """The signed-in person's hub model; else a 401 (API) or the way to the hub's login (page)."""
        if not self.current_user:
            if self.api:
                raise web.HTTPError(401, "authenticate with a hub token (Authorization: token …)")
            raise LoginRequired()
        return self.current_user

    async def call(self, fn, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.settings[self.executor_setting], lambda: fn(*args, **kwargs))

    def url(self, path: str = "") -> str:
        return self.settings[self.prefix_setting] + path.lstrip("/")

    def send_json(self, obj, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(obj, sort_keys=True, default=str))

    def secure_page_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Security-Policy",
                        "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")

    # --- errors ----------------------------------------------------------------------------
    def error_body(self, status: int, message: str, exc: Exception | None) -> dict:
        """The JSON of an API error; a subclass may add to it."""
        return {"error": message, "status": status}

    def _handle_request_exception(self, e):
        if isinstance(e, LoginRequired):
            if not self._finished:
                self.redirect(self.get_login_url())
            return
        if isinstance(e, Refused):
            return self._error(e.http_status, str(e), e)
        if isinstance(e, SpeError):
            log.error("%s failure: %s", type(self).__name__, e, exc_info=e)
            return self._error(500, FAILED, e)
        return super()._handle_request_exception(e)

    def _error(self, status: int, message: str, exc: Exception | None) -> None:
        if self._finished:
            return
        self.clear()
        self.set_status(status)
        self._finish_error(status, message, self.error_body(status, message, exc))

    def write_error(self, status_code: int, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else (
            FAILED if status_code >= 500 else self._reason)
        self._finish_error(status_code, message, {"error": message, "status": status_code})

    def _finish_error(self, status: int, message: str, body: dict) -> None:
        if self.api:
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(json.dumps(body))
        else:
            self.render("error.html", prefix=self.url(), message=message, status=status, **self.error_page_values)


def field_of(exc: Exception | None) -> str | None:
    """The input field a refusal names, if any."""
    return exc.field if isinstance(exc, InvalidInput) else None
