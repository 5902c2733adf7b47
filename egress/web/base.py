"""Request handling shared by every egress handler: hub authentication, the acting user and
their scopes, running the (blocking) business layer off the event loop, and errors.

Browsers authenticate through the hub (OAuth, `HubOAuth` cookie); workspaces and other API
clients send a hub token (`Authorization: token …`), which the hub introspects into the user
and the token's scopes. A named server's token carries `access:servers!server=<user>/<name>`,
which names the workspace (the server name is the permit id). Every action then requires its
own `custom:spe:*` scope, checked by the workflow guards, so a hub identity alone gets nothing.

Pages are framed (hub.ui.frame): the header shows the navigation the person's scopes allow, and
an error page (a 403 too) sits in the same frame and lists what the person can do instead.

Errors: a refusal (`hub.exceptions.Refused`) becomes its 4xx with the one-line reason; any
other exception becomes a 500 with no detail (the log has it). Never a traceback to a user.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any, Callable

from jupyterhub.services.auth import HubOAuthenticated
from tornado import web

from egress.workflow import Actor
from hub.exceptions import InvalidInput, Refused, SpeError
from hub.ui.web import FrameMixin

log = logging.getLogger("spe.egress.web")

_SERVER_SCOPE = re.compile(r"^access:servers!server=([^/]+)/(.+)$")


def make_actor(model: dict) -> Actor:
    """The acting user from the hub's token model; `server_name` only for a named server's own token."""
    name = model["name"]
    scopes = frozenset(model.get("scopes") or ())
    servers = {m.group(2) for m in (_SERVER_SCOPE.match(s) for s in scopes) if m and m.group(1) == name}
    # A server token is scoped to exactly one server; a broader token names no workspace.
    broad = any(s in ("access:servers", f"access:servers!user={name}", "inherit") for s in scopes)
    server = next(iter(servers)) if len(servers) == 1 and not broad else None
    return Actor(username=name, scopes=scopes, server_name=server)


class BaseHandler(FrameMixin, HubOAuthenticated, web.RequestHandler):
    api = False  # JSON errors (API) or HTML errors (pages)

    @property
    def service(self):
        return self.settings["egress_service"]

    def check_hub_user(self, model):
        # Any hub identity may reach the service; each action checks its custom:spe:* scope.
        # (Requiring access:services!service=egress would lock out workspace server tokens.)
        if model.get("kind", "user") != "user":
            return None
        return model

    def check_xsrf_cookie(self):
        # Checked in prepare(), after authentication: token requests are exempt, cookie ones not.
        return

    async def prepare(self):
        model = None
        try:
            model = await self.hub_auth.get_user(self, sync=False)
        except web.HTTPError:
            raise
        except Exception:
            log.exception("hub authentication failed")
            raise web.HTTPError(503, "the hub cannot confirm who you are right now; try again") from None
        if model:
            model = self.check_hub_user(model)
        self._hub_model = model
        self._token_authenticated = bool(getattr(self, "_token_authenticated", False))
        if model and self.request.method not in ("GET", "HEAD", "OPTIONS") and not self._token_authenticated:
            self.hub_auth.check_xsrf_cookie(self)

    def get_current_user(self):
        return getattr(self, "_hub_model", None)

    def actor(self) -> Actor:
        model = self.current_user
        if not model:
            if self.api:
                raise web.HTTPError(401, "authenticate with a hub token (Authorization: token …)")
            raise _LoginRedirect()
        return make_actor(model)

    async def call(self, fn: Callable, *args: Any, **kwargs: Any):
        """Run a blocking business call in the service's thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.settings["egress_executor"], lambda: fn(*args, **kwargs))

    def url(self, *parts: str) -> str:
        return self.settings["service_prefix"] + "/".join(p.strip("/") for p in parts if p)

    # --- errors ------------------------------------------------------------------------------
    def _handle_request_exception(self, e):
        if isinstance(e, _LoginRedirect):
            if not self._finished:
                self.redirect(self.get_login_url())
            return
        if isinstance(e, Refused):
            self._refusal(e)
            return
        if isinstance(e, SpeError):  # Failure: the system, not the user
            log.error("egress failure: %s", e, exc_info=e)
            self._send_error(500, "the egress service failed; the operators have the details", "Failure")
            return
        super()._handle_request_exception(e)

    def _refusal(self, err: Refused) -> None:
        field = getattr(err, "field", None) if isinstance(err, InvalidInput) else None
        self._send_error(getattr(err, "http_status", 400), str(err), type(err).__name__, field)

    def _send_error(self, status: int, message: str, reason: str, field: str | None = None) -> None:
        if self._finished:
            return
        self.clear()
        self.set_status(status)
        if self.api:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"error": message, "reason": reason, "field": field, "status": status}))
        else:
            self.finish(self.render_string("error.html", status=status, message=message, user=None,
                                           prefix=self.settings["service_prefix"]))

    def write_error(self, status_code: int, **kwargs):
        message = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        elif status_code >= 500:
            message = "the egress service failed; the operators have the details"
        if self.api:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"error": message, "reason": self._reason, "status": status_code}))
        else:
            self.finish(self.render_string("error.html", status=status_code, message=message, user=None,
                                           prefix=self.settings["service_prefix"]))


class _LoginRedirect(Exception):
    """Raised by `actor()` on a page without a hub session: send the browser to the hub login."""
