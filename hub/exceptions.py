"""Errors of the control plane, flat (STYLE: one exceptions module per package).

A *refusal* is a policy or input decision the user can act on (bad YAML, a permit wider than
its dataset, a non-member spawning); a *failure* is the system breaking. Both carry a
one-line message meant for the user; details belong in the log.
"""


class SpeError(Exception):
    """Base class: `str(err)` is one clear line for the user."""

    exit_code = 1


class Refused(SpeError):
    """The request was understood and refused by policy or validation (HTTP 4xx, CLI exit 2)."""

    exit_code = 2
    http_status = 400


class InvalidInput(Refused):
    """Input (YAML, file, body, option) is malformed; `field` names where."""

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class NotFound(Refused):
    http_status = 404


class Forbidden(Refused):
    http_status = 403


class Conflict(Refused):
    """Stale version, concurrent change, or an illegal state transition."""

    http_status = 409


class Failure(SpeError):
    """The system failed (engine down, disk full); not the user's fault."""

    exit_code = 3
