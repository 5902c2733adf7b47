"""Errors of the workspace client: one clear line for the researcher, the service's reason kept.

Must not import `hub` or `egress` (the client is installed alone in the workspace image).
"""

from __future__ import annotations


class SpeClientError(Exception):
    """Base class of every client error."""


class NotConfigured(SpeClientError):
    """SPE_EGRESS_URL or JUPYTERHUB_API_TOKEN is missing: not inside an SPE workspace."""


class ServiceUnavailable(SpeClientError):
    """The egress service could not be reached or failed (5xx); nothing was submitted."""


class Refused(SpeClientError):
    """The service refused the request (4xx); `reason` names the rule, `field` the file or field."""

    def __init__(self, message: str, *, status: int, reason: str = "", field: str | None = None):
        self.status = status
        self.reason = reason
        self.field = field
        super().__init__(message)


class TooLarge(Refused):
    """The upload is larger than the service accepts (413)."""


class Forbidden(Refused):
    """Missing scope, not a member, not the author, or not submitted from the permit's workspace (403)."""


class Conflict(Refused):
    """The request moved on meanwhile (409): reload it with `spe.request(id)`."""


def from_response(status: int, body: dict | None, fallback: str) -> Refused:
    body = body or {}
    message = body.get("error") or fallback
    reason = body.get("reason") or ""
    field = body.get("field")
    cls = {413: TooLarge, 403: Forbidden, 409: Conflict}.get(status, Refused)
    text = f"egress refused ({status}): {message}"
    return cls(text, status=status, reason=reason, field=field)


# The name the DP client and the docs use for any refusal by the service.
SpeRefused = Refused
