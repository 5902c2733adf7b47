"""What every front-office handler adds to hub.webservice (hub login with the service's access
scope, calls off the event loop, one-line errors): the person as an `Actor` with roles, JSON
bodies, pages in SPE's frame, API errors naming the refused field. Public pages (catalogue,
harvest endpoint) work without a login. Must not import `egress`.
"""

from __future__ import annotations

import json
from pathlib import Path

from hub.exceptions import InvalidInput, Refused
from hub.frontoffice.roles import Actor, actor_from_scopes
from hub.ui.web import FrameMixin
from hub.webservice import HubServiceHandler, field_of

MAX_JSON_BYTES = 512 * 1024
TEMPLATES = Path(__file__).parent / "templates"


class FrontOfficeHandler(FrameMixin, HubServiceHandler):
    frame_prefix_setting = "frontoffice_prefix"  # pages in SPE's frame (hub.ui)
    prefix_setting, executor_setting = "frontoffice_prefix", "frontoffice_executor"
    templates = TEMPLATES
    # every SPE group holds the access scope but the citizens'
    forbidden_message = "the front office is for applicants, the HDAB and SPE's staff; ask an operator to add you to a group"
    error_page_values = {"actor": None}

    @property
    def fo(self):
        return self.settings["frontoffice"]

    def actor(self, required: bool = True) -> Actor | None:
        if not self.current_user and not required:
            return None
        model = self.require_login()
        return actor_from_scopes(model["name"], frozenset(model.get("scopes") or ()))

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

    def page(self, template: str, **values) -> None:
        self.secure_page_headers()
        self.render(template, prefix=self.url(), actor=self.actor(required=False),
                    message=self.get_argument("message", ""), **values)

    def error_body(self, status: int, message: str, exc: Exception | None) -> dict:
        reason = type(exc).__name__ if isinstance(exc, Refused) else "Failure"
        return {"error": message, "reason": reason, "field": field_of(exc), "status": status}
