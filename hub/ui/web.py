"""The frame in tornado services (egress, front office) and in the hub's Jinja pages, and the
language switch.

`FrameMixin` puts `frame` (hub.ui.frame.Frame) and `_` (its translator) into every template's
namespace, from the hub identity the service authenticated (its scopes decide the roles) and the
request's language. `frame_handlers(prefix)` mounts the language switch (`<prefix>lang`, which
sets the `spe_lang` cookie for the whole site and goes back where the person was) and the
frame's stylesheet (`<prefix>ui/spe.css`). `hub_template_vars()` gives the hub's templates the
same frame (JupyterHub hands its template variables only the user, so the frame is built from
the handler the page reaches through `static_url`). Must not import `egress`.
"""

from __future__ import annotations

from pathlib import Path

from tornado import web

from hub.ui.frame import Frame, base_url_of, make_frame
from hub.ui.i18n import COOKIE, LANGUAGES, negotiate

STATIC = Path(__file__).parent / "static"
COOKIE_DAYS = 365
MAX_NEXT_CHARS = 2000


def check_next(raw: str, default: str) -> str:
    """A same-site path to go back to; anything else (another site, a scheme, `//host`) -> `default`."""
    if (not raw or len(raw) > MAX_NEXT_CHARS or not raw.startswith("/") or raw.startswith("//")
            or "\\" in raw or any(ord(c) < 32 for c in raw)):
        return default
    return raw


def request_language(request, get_cookie) -> str:
    return negotiate(request.headers.get("Accept-Language"), get_cookie(COOKIE))


class LanguageHandler(web.RequestHandler):
    """`GET <prefix>lang?lang=fr&next=/hub/home`: remember the choice, go back. No login needed."""

    def initialize(self, default_next: str):
        self.default_next = default_next

    def check_xsrf_cookie(self):  # GET only; a language choice protects nothing
        return

    def get(self):
        lang = self.get_argument("lang", "")
        if lang not in LANGUAGES:
            raise web.HTTPError(400, f"lang must be one of {', '.join(LANGUAGES)}")
        self.set_cookie(COOKIE, lang, path="/", expires_days=COOKIE_DAYS, samesite="Lax")
        self.redirect(check_next(self.get_argument("next", ""), self.default_next))


def frame_handlers(prefix: str) -> list[tuple]:
    """Routes: the language switch and the frame's stylesheet, below a service's prefix."""
    return [(prefix + "lang", LanguageHandler, {"default_next": base_url_of(prefix) + "hub/home"}),
            (prefix + r"ui/(spe\.css)", web.StaticFileHandler, {"path": str(STATIC)})]


class FrameMixin:
    """Mixed in before a service's authenticated handler: `frame` and `_` in every template."""

    frame_prefix_setting = "service_prefix"  # settings key holding the service's URL prefix

    def frame_prefix(self) -> str:
        """The service's URL prefix (`/services/egress/`)."""
        return self.settings[self.frame_prefix_setting]

    def spe_frame(self) -> Frame:
        cached = getattr(self, "_spe_frame", None)
        if cached is None:
            model = self.current_user or {}
            prefix = self.frame_prefix()
            cached = make_frame(model.get("name"), model.get("scopes") or (),
                                request_language(self.request, self.get_cookie),
                                base_url_of(prefix), self.request.uri)
            self._spe_frame = cached
        return cached

    def get_template_namespace(self):
        ns = super().get_template_namespace()
        frame = self.spe_frame()
        ns.update(frame=frame, _=frame.t, frame_css=self.frame_prefix() + "ui/spe.css")
        return ns


def frame_for_hub_handler(handler) -> Frame:
    """The frame of a JupyterHub page: roles from the session's expanded scopes."""
    user = handler.current_user
    return make_frame(user.name if user else None, handler.expanded_scopes if user else (),
                      request_language(handler.request, handler.get_cookie), handler.base_url, handler.request.uri)


def all_permits(db_url: str) -> list[dict]:
    """Every permit with its status, for the operator's home page (no data, only the register)."""
    from hub.db import make_engine
    from hub.permits.store import PermitStore

    return [{"id": p.id, "title": p.title, "status": p.status, "valid_until": str(p.valid_until)}
            for p in PermitStore(make_engine(db_url)).list()]


def hub_template_vars(db_url: str) -> dict:
    """Template variables for the hub's pages (`c.JupyterHub.template_vars`). A callable variable
    is called with the user on every page: these return functions the template calls when needed."""
    css = (STATIC / "spe.css").read_text()
    return {"spe_frame": lambda user: frame_for_hub_handler, "spe_css": css,
            "spe_all_permits": lambda user: (lambda: all_permits(db_url))}
