"""Errors of the egress package, flat (STYLE: one exceptions module per package).

Each class subclasses the matching `hub.exceptions` class, so the web layer and the CLI map
them to HTTP 4xx / exit codes without knowing this package. A *refusal* says what the user
must change (a bad file, a disclosive table, a query outside the supported form); a
*failure* is the system breaking (the extract is missing, DuckDB crashed).

Must not import anything from `egress` (every egress module imports this one).
"""

from hub.exceptions import Failure, InvalidInput, Refused


class FileRefused(InvalidInput):
    """An output file breaks the file policy (type, size, name, content); `field` names the file."""


class ProvenanceRefused(Refused):
    """The provenance SQL is not allowed: not one SELECT, reads or writes outside the extract."""


class ProvenanceLimit(Refused):
    """Re-executing the provenance SQL broke its time, memory or result-size limit."""

    http_status = 422


class TableMismatch(Refused):
    """The submitted table differs from the result of its provenance SQL (tampered or stale)."""

    http_status = 422


class ExtractUnavailable(Failure):
    """The permit's extract directory or one of its Parquet files cannot be opened."""


class _SandboxError(Refused):
    """The message is "the query <reason>"; a caller may name the query ("the provenance query")."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"the query {reason}")


class SandboxRefused(_SandboxError):
    """A statement in the extract sandbox (`egress.sandbox`) tried a file outside the extract."""


class SandboxLimit(_SandboxError):
    """A statement in the extract sandbox broke its time or memory limit."""

    http_status = 422


def first_line(err: BaseException, max_chars: int = 300) -> str:
    """The first line of an error's message, bounded: what a user is shown (detail: the log)."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:max_chars]
